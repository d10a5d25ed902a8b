"""The sonic-annotator backend: its CSV parser on the tool's real output, the way it runs the
tool (a stand-in script records the call). The real tool: test_sonic_live.py."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from genre_erkennung.core.config import FeatureSettings
from genre_erkennung.core.errors import ToolMissing
from genre_erkennung.core.features import TRANSFORMS, frame_counts, get_backend
from genre_erkennung.core.features.sonic import (
    WIDTHS,
    SonicBackend,
    csv_name,
    find_binary,
    parse_csv,
)

SHARED = Path(__file__).resolve().parent / "data"
CSV_DIR = SHARED / "sonic-annotator-csv"
GOLDEN = SHARED / "golden"
KEYS = {TRANSFORMS[0]: "mfcc", TRANSFORMS[1]: "sc_peaks", TRANSFORMS[2]: "sc_valleys"}
STAMPS = {TRANSFORMS[0]: "mfcc_timestamps", TRANSFORMS[1]: "sc_timestamps"}
STAMPS[TRANSFORMS[2]] = "sc_timestamps"


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_parse_real_csv_against_golden(transform: str) -> None:
    """The real CSVs hold the golden numbers to 6 significant digits."""
    gold = np.load(GOLDEN / "noise_oddlen_44k.npz")
    times, values = parse_csv(CSV_DIR / csv_name("noise_oddlen_44k", transform), WIDTHS[transform])
    assert values.dtype == np.float32 and times.dtype == np.float64
    assert values.shape == gold[KEYS[transform]].shape
    np.testing.assert_allclose(values, gold[KEYS[transform]], rtol=5.01e-6, atol=0)
    np.testing.assert_allclose(times, gold[STAMPS[transform]], rtol=0, atol=1e-6)


def test_parse_csv_with_file_name_column() -> None:
    """--csv-stdout puts the quoted file name in a first column (empty after the first row)."""
    plain = parse_csv(CSV_DIR / csv_name("noise_oddlen_44k", TRANSFORMS[0]), 20)
    named = parse_csv(CSV_DIR / "noise_oddlen_44k_mfcc_csv-stdout.csv", 20)
    np.testing.assert_array_equal(named[0], plain[0])
    np.testing.assert_array_equal(named[1], plain[1])


def test_parse_csv_rejects_other_widths(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("0.000000000,1,2,3\n")
    with pytest.raises(Exception, match="timestamp and 7 values"):
        parse_csv(bad, 7)


FAKE = '''#!{python}
"""Stands in for sonic-annotator: records its call, writes CSVs like the real one."""
import json, math, os, struct, sys
args = sys.argv[1:]
if args in (["-l"], ["-v"]):  # the transforms its plugins provide; its version
    print("\\n".join({transforms}) if args == ["-l"] else "1.0")
    sys.exit(0)
log = os.environ["FAKE_SONIC_LOG"]
with open(log, "a") as f:
    f.write(json.dumps({{"argv": args, "vamp_path": os.environ.get("VAMP_PATH")}}) + "\\n")
if os.environ.get("FAKE_SONIC_FAIL"):
    sys.stderr.write(os.environ["FAKE_SONIC_FAIL"] + "\\n")
    sys.exit(1)
transforms, inputs, i = [], [], 0
while i < len(args):
    a = args[i]
    if a in ("-d", "-w", "--csv-basedir"):
        if a == "-d":
            transforms.append(args[i + 1])
        if a == "--csv-basedir":
            outdir = args[i + 1]
        i += 2
    elif a == "--csv-force":
        i += 1
    else:
        inputs.append(a)
        i += 1
widths = {{"coefficients": 20, "peaks": 7, "valleys": 7}}
for path in inputs:
    with open(path, "rb") as f:
        head = f.read(44)
        first = struct.unpack("<f", f.read(4))[0]
    tag, channels, rate = struct.unpack("<HHI", head[20:28])
    bits = struct.unpack("<H", head[34:36])[0]
    assert (tag, channels, bits) == (3, 1, 32), "not a 32-bit float mono WAV"
    n = struct.unpack("<I", head[40:44])[0] // 4
    stem = os.path.splitext(os.path.basename(path))[0]
    for t in transforms:
        out = t.split(":")[-1]
        step = 1024 if out == "coefficients" else 512
        rows = math.ceil(n / 16384) * 16384 // step  # as sonic-annotator 1.0 padded
        with open(os.path.join(outdir, stem + "_" + t.replace(":", "_") + ".csv"), "w") as f:
            for k in range(rows):
                vals = [first * (c + 1) for c in range(widths[out])]
                f.write("%.9f," % (k * step / rate) + ",".join("%g" % v for v in vals) + "\\n")
'''


@pytest.fixture
def fake_sonic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `sonic-annotator` first on PATH; returns the log of its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "sonic-annotator"
    exe.write_text(FAKE.format(python=sys.executable, transforms=list(TRANSFORMS)))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SONIC_LOG", str(log))
    return log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_batch_runs_one_process_for_all_chunks(fake_sonic: Path, monkeypatch) -> None:
    monkeypatch.setenv("VAMP_PATH", "/opt/vamp")
    chunks = np.zeros((3, 22050 + 5), np.float32)
    chunks[:, 0] = [0.1, 0.2, 0.3]
    batch = get_backend(FeatureSettings(backend="sonic-annotator")).batch(chunks, 22050)
    t_mfcc, t_sc = frame_counts(chunks.shape[1])
    assert batch.mfcc.shape == (3, t_mfcc, 20)
    assert batch.peaks.shape == batch.valleys.shape == (3, t_sc, 7)
    for i, first in enumerate([0.1, 0.2, 0.3]):  # each chunk got its own file's numbers
        np.testing.assert_allclose(batch.mfcc[i, :, 3], first * 4, rtol=1e-5)
        np.testing.assert_allclose(batch.valleys[i, :, 6], first * 7, rtol=1e-5)
    (call,) = calls(fake_sonic)
    argv = call["argv"]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-d"] == list(TRANSFORMS)
    assert argv[argv.index("-w") + 1] == "csv" and "--csv-force" in argv
    assert "--csv-basedir" in argv and "--csv-stdout" not in argv
    assert sum(a.endswith(".wav") for a in argv) == 3
    assert call["vamp_path"] == "/opt/vamp"  # the environment reaches the tool


def test_whole_file_through_the_tool(fake_sonic: Path, audio_file, tmp_path: Path) -> None:
    song = audio_file(tmp_path / "s.flac", 2.0, channels=2)
    out = SonicBackend().whole_file(song, 8000)
    assert int(out["sample_rate"]) == 8000 and int(out["n_samples"]) == 16000
    assert out["mfcc"].shape == (frame_counts(16000)[0], 20)
    assert out["sc_peaks"].shape == out["sc_valleys"].shape == (frame_counts(16000)[1], 7)
    assert out["sc_timestamps"][1] == pytest.approx(512 / 8000, abs=1e-9)


def test_missing_plugin_says_what_to_install(fake_sonic: Path, monkeypatch) -> None:
    monkeypatch.setenv(
        "FAKE_SONIC_FAIL",
        'ERROR: Failed to load plugin for transform "vamp:bbc-vamp-plugins:bbc-spectral-contrast:peaks"',
    )
    with pytest.raises(ToolMissing, match="install bbc-vamp-plugins") as exc:
        SonicBackend().batch(np.zeros((1, 4096), np.float32), 44100)
    assert "\n" not in str(exc.value)


def test_other_failures_name_the_error(fake_sonic: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_SONIC_FAIL", "ERROR: Feature extraction failed: disk full")
    with pytest.raises(Exception, match="disk full"):
        SonicBackend().batch(np.zeros((1, 4096), np.float32), 44100)


def test_missing_binary_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match="install it"):
        find_binary("")
    with pytest.raises(ToolMissing, match="not an executable"):
        find_binary(str(tmp_path / "nowhere" / "sonic-annotator"))
    with pytest.raises(ToolMissing):
        get_backend(FeatureSettings(backend="sonic-annotator"))
