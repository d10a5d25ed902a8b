"""`genre doctor` on this machine (no GPU, no sonic-annotator), without ffmpeg, and with bad settings."""

import asyncio
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import genre_in_process

from genre_erkennung.core import doctor


def _by_name(doc: dict) -> dict[str, dict]:
    return {c["name"]: c for c in doc["checks"]}


def test_doctor_on_this_machine(tmp_path: Path) -> None:
    proc = genre_in_process("doctor", "--json", "--workspace", tmp_path / "ws")
    doc = json.loads(proc.stdout)
    checks = _by_name(doc)
    assert proc.returncode == 0 and doc["ok"] is True
    assert checks["ffmpeg"]["status"] == "ok"
    assert checks["codecs"]["status"] == "ok"
    assert all(c in checks["codecs"]["detail"] for c in ("mp3", "opus/webm", "m4a/aac", "flac", "ogg"))
    assert checks["js-runtime"]["status"] == "ok" and checks["js-runtime"]["detail"].startswith("deno ")
    assert checks["yt-dlp"]["status"] in ("ok", "warn") and checks["yt-dlp-ejs"]["status"] == "ok"
    assert checks["workspace"]["status"] == "ok" and str(tmp_path / "ws") in checks["workspace"]["detail"]
    assert checks["tensor-ops"]["status"] == "ok" and "cpu" in checks["tensor-ops"]["detail"]
    import torch

    if not torch.cuda.is_available():
        assert "0 GPUs visible" in checks["torch"]["detail"]
    sonic = checks["sonic-annotator"]
    if shutil.which("sonic-annotator") is None:
        assert sonic["status"] == "warn" and "optional" in sonic["detail"] and "install" in sonic["fix"]
    else:  # make test puts the real host from ../shared/vamp on PATH
        assert sonic["status"] == "ok" and checks["vamp-plugins"]["status"] in ("ok", "warn")
    for c in doc["checks"]:
        assert c["status"] == "ok" or c["fix"], f"{c['name']} reports a problem without a fix"

    plain = genre_in_process("doctor", "--workspace", tmp_path / "ws")
    lines = plain.stdout.splitlines()
    assert len(lines) == len(doc["checks"])
    assert all(line.split()[0] in ("ok", "WARN", "FAIL") for line in lines)
    assert "everything the default commands need is here" in plain.stderr


def test_no_ffmpeg_anywhere_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """A PATH without ffmpeg and no imageio-ffmpeg wheel (its import fails, as when not installed);
    run as `python -m genre_erkennung`."""
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    no_wheel = tmp_path / "site" / "imageio_ffmpeg"
    no_wheel.mkdir(parents=True)
    (no_wheel / "__init__.py").write_text('raise ImportError("imageio-ffmpeg is not installed")\n')
    env = {k: v for k, v in os.environ.items() if k != "GENRE_FFMPEG"}
    env |= {"PATH": str(empty_bin), "PYTHONPATH": str(no_wheel.parent)}
    proc = subprocess.run(
        [sys.executable, "-m", "genre_erkennung", "doctor", "--workspace", str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    about_ffmpeg = [line for line in proc.stdout.splitlines() if line.split()[1] in ("ffmpeg", "codecs")]
    assert about_ffmpeg == [
        "FAIL  ffmpeg          ffmpeg not found -> install it (apt install ffmpeg, brew install ffmpeg) "
        "or pip install imageio-ffmpeg"
    ]
    assert "Traceback" not in proc.stderr
    assert "1 missing" in proc.stderr


def test_a_bad_config_is_a_finding_and_the_rest_still_runs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[query]\nmax_seconds = -5\n")
    proc = genre_in_process("doctor", "--json", "--config", bad, "--workspace", tmp_path / "ws")
    checks = _by_name(json.loads(proc.stdout))
    assert proc.returncode == 1
    assert (
        checks["config"]["status"] == "fail"
        and "query.max_seconds must be between" in checks["config"]["detail"]
    )
    assert checks["ffmpeg"]["status"] == "ok"


def test_sonic_annotator_and_its_transforms(tmp_path: Path) -> None:
    """The transform check reads `sonic-annotator -l`; a stand-in that lists only the MFCC plugin."""
    tool = tmp_path / "sonic-annotator"
    tool.write_text("#!/bin/sh\necho vamp:qm-vamp-plugins:qm-mfcc:coefficients\n")
    tool.chmod(0o755)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[features]\nbackend = "sonic-annotator"\nsonic_annotator = "{tool}"\n')
    report = doctor.diagnose(cfg, tmp_path / "ws")
    checks = {c.name: c for c in report.checks}
    assert checks["sonic-annotator"].status == "ok" and checks["sonic-annotator"].detail.startswith(str(tool))
    vamp = checks["vamp-plugins"]
    assert vamp.status == "fail" and vamp.detail == (
        "missing vamp:bbc-vamp-plugins:bbc-spectral-contrast:peaks, "
        "vamp:bbc-vamp-plugins:bbc-spectral-contrast:valleys"
    )
    assert "bbc-vamp-plugins" in vamp.fix and "VAMP_PATH" in vamp.fix
    assert not report.ok
    cfg.write_text(f'[features]\nsonic_annotator = "{tmp_path / "nowhere"}"\n')
    checks = {c.name: c for c in doctor.diagnose(cfg, tmp_path / "ws").checks}
    assert (
        checks["sonic-annotator"].status == "warn"
        and "features.sonic_annotator" in checks["sonic-annotator"].detail
    )


@pytest.mark.parametrize(
    ("version", "days"), [("2026.10.26", 36), ("2026.10.26.1", 36), ("2026.12.01", 0), ("unknown", None)]
)
def test_yt_dlp_age(version: str, days: int | None) -> None:
    assert doctor.yt_dlp_age(version, dt.date(2026, 12, 1)) == days


def test_the_tui_shows_the_report_from_the_palette(tmp_path: Path) -> None:
    from textual.widgets import Static

    from genre_erkennung.core.config import Settings
    from genre_erkennung.tui.app import GenreApp
    from genre_erkennung.tui.screens.doctor import DoctorScreen

    async def body() -> None:
        settings = Settings(workspace=str(tmp_path / "ws"))
        app = GenreApp(settings, device="CPU", scan_on_mount=False, load_models=False)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("ctrl+p")
            await pilot.pause(0.2)
            await pilot.press(*"Doctor")
            await pilot.pause(0.5)
            await pilot.press("enter")
            for _ in range(600):
                await pilot.pause(0.1)
                if isinstance(app.screen, DoctorScreen) and app.screen.report is not None:
                    break
            screen = app.screen
            assert isinstance(screen, DoctorScreen) and screen.report is not None
            rows = [str(s.render()) for s in screen.query(".doctor-check").results(Static)]
            assert len(rows) == len(screen.report.checks)
            assert any(r.startswith("ok    ffmpeg") for r in rows)
            assert "Everything the default commands need is here" in str(
                screen.query_one("#doctor-summary").render()
            )
            await pilot.press("escape")
            await pilot.pause(0.2)
            assert not isinstance(app.screen, DoctorScreen)

    asyncio.run(body())
