"""The real-music benchmark's code paths on a tiny generated stand-in.

CI never downloads the Debian packages: these tests build small real .deb files (dpkg-deb)
holding generated audio and a generated ProTracker module, run bench/music/build.py on them in
offline mode (--debs), then bench/accuracy.py on the dataset it made.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_audio

from genre_erkennung.core import audio

BENCH = Path(__file__).resolve().parents[1] / "bench"
pytestmark = pytest.mark.slow  # builds packages, extracts and trains: ~20-40 s on 2 cores


def protracker_module(title: str, period: int, orders: int = 2) -> bytes:
    """A minimal 4-channel ProTracker module: one looping square-wave sample, one note per beat.

    One pattern is 64 rows at speed 6 / 125 BPM, 7.68 s; `orders` plays it that many times.
    """
    sample = bytes([0x40] * 16 + [0xC0] * 16)  # signed 8-bit square wave, 32 bytes
    head = title.encode()[:20].ljust(20, b"\0")
    head += b"square".ljust(22, b"\0") + (len(sample) // 2).to_bytes(2, "big")
    head += bytes([0, 64]) + (0).to_bytes(2, "big") + (len(sample) // 2).to_bytes(2, "big")
    head += bytes(30) * 30  # the 30 unused sample slots
    head += bytes([orders, 127]) + bytes(128) + b"M.K."
    rows = b""
    for row in range(64):
        note = bytes([period >> 8, period & 0xFF, 0x10, 0x00]) if row % 4 == 0 else bytes(4)
        rows += note + bytes(12)  # sample 1 on channel 1, the other channels silent
    return head + rows + sample


def _deb(debs: Path, work: Path, package: str, files: dict[str, bytes]) -> None:
    tree = work / package
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: stand-in music\n"
    )
    for rel, data in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    out = debs / f"{package}_1.0-1_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(tree), str(out)], check=True, capture_output=True
    )


def _song(work: Path, name: str, seconds: float, **kw: object) -> bytes:
    return make_audio(work / "gen" / name, seconds, **kw).read_bytes()  # type: ignore[arg-type]


SOURCES = """
min_seconds = 5.0
[[source]]
package = "tone-a"
version = "1.0-1"
genre = "tone"
split = "train"
artists = ["Ann"]
license = "CC0-1.0"
files = ["usr/share/tone/*"]
exclude = ["*.txt"]
evidence = "stand-in: sine tones"
[[source]]
package = "tone-b"
version = "1.0-1"
genre = "tone"
split = "test"
artists = ["Bob"]
license = "CC0-1.0"
files = ["usr/share/tone/music.pk3!music/*.ogg"]
evidence = "stand-in: a sine tone inside a zip"
[[source]]
package = "noise-a"
version = "1.0-1"
genre = "noise"
split = "train"
artists = ["Cleo"]
license = "CC0-1.0"
files = ["usr/share/noise/*.flac"]
evidence = "stand-in: white noise"
[[source]]
package = "noise-b"
version = "1.0-1"
genre = "noise"
split = "test"
artists = ["Dan"]
license = "CC0-1.0"
files = ["usr/share/noise/*.mp3"]
evidence = "stand-in: white noise"
[[source]]
package = "mod-a"
version = "1.0-1"
genre = "tracker"
split = "train"
artists = ["Eve"]
license = "CC0-1.0"
files = ["usr/share/mods/*.mod"]
evidence = "stand-in: ProTracker modules"
[[source]]
package = "mod-b"
version = "1.0-1"
genre = "tracker"
split = "test"
artists = ["Fay"]
license = "CC0-1.0"
files = ["usr/share/mods/*.mod"]
evidence = "stand-in: a ProTracker module"
"""


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, subprocess.CompletedProcess]:
    """(debs, sources.toml, dataset root, the build run)."""
    import io
    import zipfile

    work = tmp_path_factory.mktemp("standin")
    debs = work / "debs"
    debs.mkdir()
    tones = {
        "usr/share/tone/calm": _song(work, "t1.ogg", 12, freq=330),  # no extension, like blobwars
        "usr/share/tone/bright.ogg": _song(work, "t2.ogg", 11, freq=660),
        "usr/share/tone/jingle.ogg": _song(work, "t3.ogg", 2, freq=880),  # too short: skipped
        "usr/share/tone/README.txt": b"not music",
    }
    _deb(debs, work, "tone-a", tones)
    pk3 = io.BytesIO()
    with zipfile.ZipFile(pk3, "w") as z:
        z.writestr("music/far.ogg", _song(work, "t4.ogg", 12, freq=440))
        z.writestr("sound/click.wav", b"RIFF")
    _deb(debs, work, "tone-b", {"usr/share/tone/music.pk3": pk3.getvalue()})
    noise = {
        f"usr/share/noise/n{i}.flac": _song(work, f"n{i}.flac", 12, kind="white", seed=i) for i in (1, 2)
    }
    _deb(debs, work, "noise-a", noise)
    _deb(debs, work, "noise-b", {"usr/share/noise/n3.mp3": _song(work, "n3.mp3", 12, kind="white", seed=3)})
    mods = {f"usr/share/mods/m{i}.mod": protracker_module(f"tune {i}", 428 - 60 * i) for i in (1, 2)}
    _deb(debs, work, "mod-a", mods)
    _deb(debs, work, "mod-b", {"usr/share/mods/m3.mod": protracker_module("tune 3", 254)})
    table = work / "sources.toml"
    table.write_text(SOURCES)
    root = work / "ds"
    proc = _build(root, table, work / "cache", debs)
    return debs, table, root, proc


def _build(root: Path, table: Path, cache: Path, debs: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(BENCH / "music" / "build.py"), str(root), "--sources", str(table)]
    cmd += ["--cache", str(cache), "--debs", str(debs)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_build_writes_the_layout_and_manifest(standin: tuple) -> None:
    _, _, root, proc = standin
    assert proc.returncode == 0, proc.stderr
    assert "skip tone-a: usr/share/tone/jingle.ogg (shorter than 5 s)" in proc.stdout
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    got = {(r["split"], r["genre"], r["path"]) for r in rows}
    assert got == {
        ("train", "tone", "train/tone/tone-a/bright.ogg"),
        ("train", "tone", "train/tone/tone-a/calm.ogg"),
        ("test", "tone", "test/tone/tone-b/far.ogg"),
        ("train", "noise", "train/noise/noise-a/n1.flac"),
        ("train", "noise", "train/noise/noise-a/n2.flac"),
        ("test", "noise", "test/noise/noise-b/n3.mp3"),
        ("train", "tracker", "train/tracker/mod-a/m1.flac"),
        ("train", "tracker", "train/tracker/mod-a/m2.flac"),
        ("test", "tracker", "test/tracker/mod-b/m3.flac"),
    }
    far = next(r for r in rows if r["path"].endswith("far.ogg"))
    assert far["member"] == "usr/share/tone/music.pk3!music/far.ogg" and far["version"] == "1.0-1"
    assert far["artists"] == "Bob" and far["evidence"] == "stand-in: a sine tone inside a zip"
    m1 = next(r for r in rows if r["path"].endswith("m1.flac"))
    assert m1["title"] == "tune 1"  # the module's own title, read by ffmpeg
    info = audio.probe(root / m1["path"])
    assert info.codec == "flac" and abs(info.duration - 15.36) < 0.2  # two 7.68 s patterns
    assert abs(float(m1["duration"]) - info.duration) < 0.01
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == sorted([r["path"] for r in rows] + ["manifest.csv"])


def test_build_is_deterministic_and_refuses_a_source_on_both_sides(standin: tuple, tmp_path: Path) -> None:
    debs, table, root, _ = standin
    again = _build(tmp_path / "again", table, tmp_path / "cache", debs)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "manifest.csv").read_bytes() == (root / "manifest.csv").read_bytes()
    bad = tmp_path / "bad.toml"
    bad.write_text(table.read_text().replace('artists = ["Fay"]', 'artists = ["Eve"]'))
    proc = _build(tmp_path / "bad", bad, tmp_path / "cache", debs)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: {bad}: artist 'Eve' is on both sides; a source belongs to one split"
    ]


def test_accuracy_bench_trains_seeds_and_reports_the_baseline(standin: tuple, tmp_path: Path) -> None:
    _, _, root, _ = standin
    out = tmp_path / "scores.json"
    cmd = [sys.executable, str(BENCH / "accuracy.py"), "--dataset", str(root), "--seeds", "2"]
    cmd += ["--set", "training.epochs=2", "--workspace", str(tmp_path / "ws"), "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "3 genres, 3 test songs, seeds 0-1" in proc.stdout
    for label in ("song accuracy (majority vote)", "song accuracy (mean probability)", "chunk accuracy"):
        assert label in proc.stdout
    assert "load average" in proc.stdout and "query.min_confidence" in proc.stdout
    doc = json.loads(out.read_text())
    assert [s["seed"] for s in doc["seeds"]] == [0, 1] and doc["settings"] == {"training.epochs": 2}
    for s in doc["seeds"]:
        assert s["epochs"] <= 2 and s["metrics"]["songs"] == 3 and s["baseline"]["songs"] == 3
    assert not list((tmp_path / "ws" / "models").iterdir())  # removed without --keep
