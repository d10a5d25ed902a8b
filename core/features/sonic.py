"""The sonic-annotator backend: the original pipeline's tool, on 32-bit float mono WAVs.

One host process per song runs all three transforms (`-d` each) over all of the song's chunk
files, writing one CSV per input and transform into a temp folder (`-w csv --csv-basedir DIR
--csv-force`): starting the host and loading the plugins is paid once per song, never per chunk
or per transform. Not `--csv-stdout`: with several transforms its rows interleave and peaks and
valleys, both 7 wide, cannot be told apart. The WAVs are float: 16-bit would turn near-silent
frames into exact zeros. The process inherits the environment, so VAMP_PATH reaches it; it runs
in its own session so that a Ctrl-C meant for us does not kill it and look like a failed song.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import audio
from ..errors import AudioError, Cancelled, GenreError, ToolMissing
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
#: Chunks per host run: a whole song up to 20 minutes of 30-s chunks; a longer mix gets one run
#: per 40 chunks, so its temp WAVs stay near 200 MB (at 44.1 kHz) instead of the whole mix.
CHUNKS_PER_RUN = 40
PLUGIN_DOWNLOADS = "https://vamp-plugins.org/download.html"
_STREAM_BLOCK = 1 << 20
_MISSING_PLUGIN = re.compile(r'Failed to (?:load plugin|add default feature extractor)[^"]*"(vamp:[^"]+)"')
#: Signals that come from outside (a user, the OOM killer): the song is not to blame, retry it.
_KILLED = {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
_checked: set[tuple[str, str | None]] = set()
_checked_lock = threading.Lock()


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


@dataclass(frozen=True)
class HostStatus:
    """What `sonic-annotator` is installed, and which of our transforms its plugins provide."""

    path: str
    version: str
    transforms: dict[str, bool]  # each of TRANSFORMS: listed by `sonic-annotator -l`?
    vamp_path: str | None  # the VAMP_PATH it ran with (None: unset, the host's default folders)

    @property
    def missing(self) -> list[str]:
        return [t for t, found in self.transforms.items() if not found]

    def problem(self) -> str | None:
        """One line saying which transforms are missing and how to fix it; None when all are there."""
        if not self.missing:
            return None
        return _missing_message(self.path, self.missing, self.vamp_path)


def _missing_message(binary: str, transforms: list[str], vamp_path: str | None) -> str:
    libs = sorted({t.split(":")[1] for t in transforms})
    where = (
        f"now VAMP_PATH={vamp_path}"
        if vamp_path
        else "VAMP_PATH is unset, so only ~/vamp, /usr/local/lib/vamp and /usr/lib/vamp are searched"
    )
    return (
        f"{binary} cannot load the Vamp transform(s) {', '.join(transforms)}: install "
        f"{' and '.join(libs)} ({PLUGIN_DOWNLOADS}) and set VAMP_PATH to the folder holding "
        f"the .so files ({where})"
    )


def _listed(binary: str) -> set[str]:
    """The transform ids `sonic-annotator -l` prints (those of every plugin it can load)."""
    try:
        proc = subprocess.run(
            [binary, "-l"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolMissing(f"cannot run {binary} -l: {exc}") from None
    if proc.returncode != 0:
        raise ToolMissing(f"{binary} -l failed (exit {proc.returncode}): is it sonic-annotator?")
    return {line.strip() for line in proc.stdout.splitlines()}


def host_status(configured: str = "") -> HostStatus:
    """The host's path and version and whether it lists each transform (for `genre doctor`).

    Raises ToolMissing when there is no host to ask.
    """
    binary = find_binary(configured)
    listed = _listed(binary)
    try:
        version = subprocess.run(
            [binary, "-v"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        version = ""
    transforms = {t: t in listed for t in TRANSFORMS}
    return HostStatus(binary, version or "unknown", transforms, os.environ.get("VAMP_PATH"))


def _check_transforms(binary: str) -> None:
    """Fail before any song when a plugin is missing; asked once per host and VAMP_PATH."""
    key = (binary, os.environ.get("VAMP_PATH"))
    with _checked_lock:
        if key in _checked:
            return
    listed = _listed(binary)
    missing = [t for t in TRANSFORMS if t not in listed]
    if missing:
        raise ToolMissing(_missing_message(binary, missing, key[1]))
    with _checked_lock:
        _checked.add(key)


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


def _run(binary: str, wavs: list[Path], out_dir: Path, cancel: threading.Event | None = None) -> None:
    """One sonic-annotator process for all `wavs`, all transforms; killed if `cancel` is set."""
    cmd = [binary]
    for transform in TRANSFORMS:
        cmd += ["-d", transform]
    cmd += ["-w", "csv", "--csv-basedir", str(out_dir), "--csv-force", *map(str, wavs)]
    # stderr to a file: the host writes a progress line per percent and file, and polling for
    # `cancel` leaves nobody to drain a pipe.
    with tempfile.TemporaryFile(dir=out_dir) as log:
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        except OSError as exc:
            raise ToolMissing(f"cannot run {binary}: {exc.strerror}") from None
        _wait(proc, cancel)
        log.seek(0)
        stderr = log.read().decode("utf-8", "replace")
    _check_exit(proc.returncode, stderr, binary, out_dir.parent)


def _wait(proc: subprocess.Popen, cancel: threading.Event | None) -> None:
    """Wait for the host; kill it (and raise Cancelled) as soon as `cancel` is set."""
    try:
        while True:
            try:
                proc.wait(timeout=None if cancel is None else 0.1)
                return
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("extraction cancelled") from None
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def _check_exit(returncode: int, stderr: str, binary: str, temp: Path) -> None:
    """Turn the host's failures into one line: a missing plugin, a kill, a crash, an error."""
    missing = list(dict.fromkeys(_MISSING_PLUGIN.findall(stderr)))
    if missing:
        raise ToolMissing(_missing_message(binary, missing, os.environ.get("VAMP_PATH")))
    if returncode < 0:
        sig = signal.Signals(-returncode)
        if sig in _KILLED:
            raise GenreError(f"sonic-annotator was killed ({sig.name}) mid-song; run again")
        raise AudioError(
            f"sonic-annotator crashed ({sig.name}) on this song: try again with --retry-failed, "
            "or use the native backend"
        )
    if returncode != 0:
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if "ERROR" in ln] or lines or ["no message"]
        why = errors[-1].replace(f"{temp}{os.sep}", "").replace(f"{temp}", "")
        raise AudioError(f"sonic-annotator failed (exit {returncode}) on our temp WAV: {why}")


def _read_outputs(out_dir: Path, stem: str, n_samples: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The three transforms' (timestamps, values) for one input, cut to the expected frames.

    sonic-annotator 1.0 and older padded to 16384 samples, giving extra all-padding frames
    at the end; they are dropped so that every version gives the same shapes. Fewer frames
    than expected mean the host did not read the whole WAV: an error, never a short entry.
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
                f"sonic-annotator gave {len(times)} {transform} frames for {stem} of {n_samples} "
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
    """Write float32 mono blocks as a WAV, one block in memory at a time; returns the length.

    A plain write, not an atomic one: the file lives in our own temp folder and only the host
    reads it, after it is closed.
    """
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
        _check_transforms(self.binary)

    def stream(
        self,
        chunks: Iterable[np.ndarray],
        sample_rate: int,
        cancel: threading.Event | None = None,
    ) -> Iterator[FeatureBatch]:
        """A song's chunks in, one FeatureBatch per chunk out, through one host run per song.

        Each chunk is written to its own WAV as it arrives (one chunk in memory at a time); the
        host runs when the song ends, or every CHUNKS_PER_RUN chunks of a long mix.
        """
        with tempfile.TemporaryDirectory(prefix="genre-sonic-") as tmp:
            folder = Path(tmp)
            wavs: list[tuple[Path, int]] = []
            for i, chunk in enumerate(chunks):
                if chunk.ndim != 1:
                    raise ValueError(f"a chunk must be 1-D, got shape {chunk.shape}")
                wav = folder / f"chunk-{i:05d}.wav"
                wavs.append((wav, _write_wav_stream(wav, [chunk], sample_rate)))
                if len(wavs) == CHUNKS_PER_RUN:
                    yield from self._features(wavs, folder, cancel)
                    wavs = []
            if wavs:
                yield from self._features(wavs, folder, cancel)

    def _features(
        self, wavs: list[tuple[Path, int]], folder: Path, cancel: threading.Event | None
    ) -> Iterator[FeatureBatch]:
        out_dir = folder / "csv"
        out_dir.mkdir(exist_ok=True)  # sonic-annotator does not create --csv-basedir
        _run(self.binary, [w for w, _ in wavs], out_dir, cancel)
        for wav, n in wavs:
            out = _read_outputs(out_dir, wav.stem, n)
            mfcc, peaks, valleys = (out[t][1][None] for t in TRANSFORMS)
            yield FeatureBatch(mfcc, peaks, valleys)
        for wav, _ in wavs:  # a long mix's next run starts with an empty folder
            wav.unlink()
        shutil.rmtree(out_dir)

    def batch(self, chunks: np.ndarray, sample_rate: int) -> FeatureBatch:
        """Each chunk as its own WAV, all of them through one sonic-annotator process."""
        if chunks.ndim != 2:
            raise ValueError(f"chunks must be [B, n], got shape {chunks.shape}")
        rows = list(self.stream(chunks, sample_rate))
        return FeatureBatch(
            *(np.concatenate([getattr(r, k) for r in rows]) for k in ("mfcc", "peaks", "valleys"))
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
