"""The sonic-annotator backend: the original pipeline's tool, on 32-bit float mono WAVs.

One process per call with all three transforms (`-d` each) and all its input files, writing one
CSV per input and transform into a temp folder (`-w csv --csv-basedir DIR --csv-force`). Not
`--csv-stdout`: with several transforms its rows interleave and peaks and valleys, both 7 wide,
cannot be told apart. The WAVs are float: 16-bit would turn near-silent frames into exact zeros.
The process inherits the environment, so VAMP_PATH reaches it.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .. import audio
from ..errors import AudioError, GenreError, ToolMissing
from . import (
    MFCC_TRANSFORM,
    PEAKS_TRANSFORM,
    TRANSFORMS,
    VALLEYS_TRANSFORM,
    FeatureBatch,
    frame_counts,
)

NAME = "sonic-annotator"
WIDTHS = {MFCC_TRANSFORM: 20, PEAKS_TRANSFORM: 7, VALLEYS_TRANSFORM: 7}
_STREAM_BLOCK = 1 << 20
_MISSING_PLUGIN = re.compile(r'Failed to (?:load plugin|add default feature extractor)[^"]*"vamp:([^:"]+)')


def find_binary(configured: str = "") -> str:
    """`configured` (features.sonic_annotator) if set, else sonic-annotator on PATH."""
    if configured:
        found = shutil.which(os.path.expanduser(configured))
        if not found:
            raise ToolMissing(
                f"features.sonic_annotator = {configured!r} is not an executable: "
                "fix the path or set it to '' to search PATH"
            )
        return found
    found = shutil.which(NAME)
    if not found:
        raise ToolMissing(
            "sonic-annotator not found on PATH: install it (https://vamp-plugins.org/"
            "sonic-annotator/) with the qm-vamp-plugins and bbc-vamp-plugins, or use the "
            "native backend"
        )
    return found


def csv_name(stem: str, transform: str) -> str:
    """sonic-annotator's CSV name for an input `stem`.wav: ':' in the transform id become '_'."""
    return f"{stem}_{transform.replace(':', '_')}.csv"


def parse_csv(path: str | Path, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps float64 [T], values float32 [T, width]) of one sonic-annotator CSV.

    Rows are a timestamp in seconds then the values. A leading file-name column (as with
    --csv-stdout: quoted on the first row, empty after) is recognised and dropped.
    """
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    if rows and len(rows[0]) == width + 2:
        rows = [r[1:] for r in rows]
    try:
        table = np.array(rows, dtype=np.float64).reshape(len(rows), width + 1)
    except ValueError:
        raise GenreError(
            f"{path}: not a sonic-annotator CSV with a timestamp and {width} values per row"
        ) from None
    return table[:, 0], table[:, 1:].astype(np.float32)


def _run(binary: str, wavs: list[Path], out_dir: Path) -> None:
    """One sonic-annotator process for all `wavs`, all transforms."""
    cmd = [binary]
    for transform in TRANSFORMS:
        cmd += ["-d", transform]
    cmd += ["-w", "csv", "--csv-basedir", str(out_dir), "--csv-force", *map(str, wavs)]
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
    except OSError as exc:
        raise ToolMissing(f"cannot run {binary}: {exc.strerror}") from None
    missing = _MISSING_PLUGIN.search(proc.stderr)
    if missing:
        lib = missing.group(1)
        raise ToolMissing(
            f"sonic-annotator cannot load the Vamp plugin library {lib}: install {lib} "
            "(https://vamp-plugins.org) into a folder on VAMP_PATH"
        )
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if "ERROR" in ln] or lines or ["no message"]
        raise AudioError(f"sonic-annotator failed (exit {proc.returncode}): {errors[-1]}")


def _read_outputs(out_dir: Path, stem: str, n_samples: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The three transforms' (timestamps, values) for one input, cut to the expected frames.

    sonic-annotator 1.0 and older padded to 16384 samples, giving extra all-padding frames
    at the end; they are dropped so that every version gives the same shapes.
    """
    t_mfcc, t_sc = frame_counts(n_samples)
    counts = {MFCC_TRANSFORM: t_mfcc, PEAKS_TRANSFORM: t_sc, VALLEYS_TRANSFORM: t_sc}
    out = {}
    for transform in TRANSFORMS:
        path = out_dir / csv_name(stem, transform)
        if not path.is_file():
            raise AudioError(f"sonic-annotator wrote no {transform} output for {stem}")
        times, values = parse_csv(path, WIDTHS[transform])
        want = counts[transform]
        if len(times) < want:
            raise AudioError(
                f"sonic-annotator gave {len(times)} {transform} frames for {n_samples} "
                f"samples, expected {want}"
            )
        out[transform] = times[:want], values[:want]
    return out


def _wav_header(n_samples: int, sample_rate: int) -> bytes:
    """RIFF header of a mono 32-bit IEEE float WAV."""
    data = n_samples * 4
    if data + 36 >= 1 << 32:
        raise AudioError("too long for one WAV file (over 4 GiB of 32-bit samples)")
    fmt = (3).to_bytes(2, "little") + (1).to_bytes(2, "little")
    fmt += sample_rate.to_bytes(4, "little") + (sample_rate * 4).to_bytes(4, "little")
    fmt += (4).to_bytes(2, "little") + (32).to_bytes(2, "little")
    return (
        b"RIFF"
        + (36 + data).to_bytes(4, "little")
        + b"WAVE"
        + b"fmt "
        + (16).to_bytes(4, "little")
        + fmt
        + b"data"
        + data.to_bytes(4, "little")
    )


def _write_wav_stream(path: Path, blocks: Iterable[np.ndarray], sample_rate: int) -> int:
    """Write float32 mono blocks as a WAV, one block in memory at a time; returns the length."""
    n = 0
    with open(path, "wb") as f:
        f.write(_wav_header(0, sample_rate))
        for block in blocks:
            f.write(np.ascontiguousarray(block, dtype="<f4").tobytes())
            n += len(block)
        f.seek(0)
        f.write(_wav_header(n, sample_rate))
    return n


class SonicBackend:
    """Features computed by the real sonic-annotator and Vamp plugins."""

    name = NAME

    def __init__(self, configured: str = "") -> None:
        self.binary = find_binary(configured)

    def batch(self, chunks: np.ndarray, sample_rate: int) -> FeatureBatch:
        """Each chunk as its own WAV, all of them through one sonic-annotator process."""
        if chunks.ndim != 2:
            raise ValueError(f"chunks must be [B, n], got shape {chunks.shape}")
        with tempfile.TemporaryDirectory(prefix="genre-sonic-") as tmp:
            wavs = [Path(tmp) / f"chunk-{i:04d}.wav" for i in range(len(chunks))]
            for wav, chunk in zip(wavs, chunks, strict=True):
                audio.write_wav(wav, chunk, sample_rate)
            out_dir = Path(tmp) / "csv"
            out_dir.mkdir()
            _run(self.binary, wavs, out_dir)
            outs = [_read_outputs(out_dir, wav.stem, chunks.shape[1]) for wav in wavs]
        return FeatureBatch(
            *(np.stack([o[t][1] for o in outs]) for t in TRANSFORMS)  # mfcc, peaks, valleys
        )

    def whole_file(self, path: str | Path, sample_rate: int | None) -> dict[str, np.ndarray]:
        """The whole file decoded to a temp WAV (streamed: memory stays flat), then one run."""
        info = audio.probe(path)
        sr = sample_rate or info.sample_rate
        with tempfile.TemporaryDirectory(prefix="genre-sonic-") as tmp:
            wav = Path(tmp) / "song.wav"
            n = _write_wav_stream(wav, audio.stream(path, sr, _STREAM_BLOCK, info), sr)
            if n == 0:
                raise AudioError(f"{path}: no audio decoded")
            out_dir = Path(tmp) / "csv"
            out_dir.mkdir()
            _run(self.binary, [wav], out_dir)
            out = _read_outputs(out_dir, wav.stem, n)
        (mfcc_t, mfcc), (sc_t, peaks), (_, valleys) = (out[t] for t in TRANSFORMS)
        return {
            "mfcc": mfcc,
            "mfcc_timestamps": mfcc_t,
            "sc_peaks": peaks,
            "sc_valleys": valleys,
            "sc_timestamps": sc_t,
            "sample_rate": np.asarray(sr),
            "n_samples": np.asarray(n),
        }
