"""`genre features SONG --out PATH [--format npz|csv] [--backend ...] [--sample-rate HZ]`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from conftest import run_genre
from typer.testing import CliRunner

from genre_erkennung.core import audio
from genre_erkennung.core.features import TRANSFORMS, frame_counts
from genre_erkennung.core.features.sonic import csv_name, parse_csv
from genre_erkennung.tui.commands import features as command

SHARED_CSV = Path(__file__).resolve().parent / "data" / "sonic-annotator-csv"
GOLDEN_WAV = SHARED_CSV.parent / "golden" / "noise_oddlen_44k.wav"

app = typer.Typer()
app.command()(command.features)


def run(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def song(tmp_path: Path) -> Path:
    """A stereo song whose name a shell or a parser could trip on."""
    path = tmp_path / "-[live] Song ü.wav"
    rng = np.random.default_rng(1)
    audio.write_wav(path, (rng.standard_normal(3 * 44100) * 0.1).astype(np.float32), 44100)
    return path


def test_npz_has_the_golden_keys(song: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "f.npz"
    result = run(song, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    data = np.load(out)
    t_mfcc, t_sc = frame_counts(3 * 44100)
    assert data["mfcc"].shape == (t_mfcc, 20) and data["mfcc"].dtype == np.float32
    assert data["sc_peaks"].shape == data["sc_valleys"].shape == (t_sc, 7)
    np.testing.assert_allclose(data["mfcc_timestamps"], np.arange(t_mfcc) * 1024 / 44100)
    np.testing.assert_allclose(data["sc_timestamps"], np.arange(t_sc) * 512 / 44100)
    assert int(data["sample_rate"]) == 44100
    assert [p.name for p in out.parent.iterdir()] == ["f.npz"]  # no temp file left behind


def test_sample_rate_flag(song: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.npz"
    assert run(song, "--out", out, "--sample-rate", "22050").exit_code == 0
    data = np.load(out)
    assert int(data["sample_rate"]) == 22050
    assert data["mfcc"].shape[0] == frame_counts(3 * 22050)[0]


def test_csv_like_sonic_annotator(song: Path, tmp_path: Path) -> None:
    out = tmp_path / "csv"
    result = run(song, "--out", out, "--format", "csv")
    assert result.exit_code == 0, result.output
    names = [csv_name(song.stem, t) for t in TRANSFORMS]
    assert result.stdout.split("\n")[:3] == [str(out / n) for n in names]
    first = (out / names[0]).read_text().splitlines()[0].split(",")
    assert first[0] == "0.000000000" and len(first) == 21
    npz = tmp_path / "f.npz"
    run(song, "--out", npz)
    data = np.load(npz)
    for name, key, width in zip(names, ("mfcc", "sc_peaks", "sc_valleys"), (20, 7, 7), strict=True):
        times, values = parse_csv(out / name, width)
        np.testing.assert_allclose(values, data[key], rtol=5.01e-6, atol=1e-30)
        np.testing.assert_allclose(times, data[key.split("_")[0] + "_timestamps"], atol=1e-9)


def test_csv_holds_against_the_real_tool(tmp_path: Path) -> None:
    """Our CSV of a golden file lines up with sonic-annotator's own, row for row."""
    out = tmp_path / "csv"
    assert run(GOLDEN_WAV, "--out", out, "--format", "csv", "--sample-rate", "44100").exit_code == 0
    for t in TRANSFORMS:
        ours = (out / csv_name("noise_oddlen_44k", t)).read_text().splitlines()
        theirs = (SHARED_CSV / csv_name("noise_oddlen_44k", t)).read_text().splitlines()
        assert [r.split(",")[0] for r in ours] == [r.split(",")[0] for r in theirs]
        a = np.array([r.split(",")[1:] for r in ours], dtype=float)
        b = np.array([r.split(",")[1:] for r in theirs], dtype=float)
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_errors_are_one_line(song: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = run(tmp_path / "nope.mp3", "--out", tmp_path / "x.npz")
    assert missing.exit_code == 1 and "no such file" in missing.stderr
    assert missing.stdout == ""
    bad_rate = run(song, "--out", tmp_path / "x.npz", "--sample-rate", "100")
    assert bad_rate.exit_code == 2 and "sample_rate" in bad_rate.stderr
    monkeypatch.setenv("PATH", str(tmp_path))
    no_tool = run(song, "--out", tmp_path / "x.npz", "--backend", "sonic-annotator")
    assert no_tool.exit_code == 1 and "sonic-annotator not found" in no_tool.stderr
    assert not (tmp_path / "x.npz").exists()


def test_installed_genre_command(song: Path, tmp_path: Path) -> None:
    """The real `genre features`, as registered in tui/cli.py."""
    out = tmp_path / "real.npz"
    proc = run_genre("features", song, "--out", out, check=True)
    assert proc.stdout.strip() == str(out)
    assert np.load(out)["mfcc"].shape == (frame_counts(3 * 44100)[0], 20)
