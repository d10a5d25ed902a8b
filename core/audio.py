"""ffmpeg: find it, probe files with it alone, and stream float32 mono through a pipe.

Mono is the arithmetic mean of the channels (what the Vamp hosts do), made with a `pan` filter
whose weights are 1/N for the probed channel count; ffmpeg's `-ac 1` would scale stereo by
1/sqrt(2) instead. Inputs are passed as `file:PATH` so no name is read as an option or protocol.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO

import numpy as np

from .atomic import atomic_write_bytes
from .errors import AudioError, GenreError, ToolMissing

_LAYOUTS = {
    "mono": 1,
    "stereo": 2,
    "2.1": 3,
    "3.0": 3,
    "3.0(back)": 3,
    "4.0": 4,
    "quad": 4,
    "quad(side)": 4,
    "3.1": 4,
    "5.0": 5,
    "5.0(side)": 5,
    "4.1": 5,
    "5.1": 6,
    "5.1(side)": 6,
    "6.0": 6,
    "6.0(front)": 6,
    "hexagonal": 6,
    "6.1": 7,
    "6.1(back)": 7,
    "6.1(front)": 7,
    "7.0": 7,
    "7.0(front)": 7,
    "7.1": 8,
    "7.1(wide)": 8,
    "7.1(wide-side)": 8,
    "octagonal": 8,
    "downmix": 2,
}


@lru_cache(maxsize=1)
def find_ffmpeg() -> str:
    """ffmpeg from $GENRE_FFMPEG, PATH, or the imageio-ffmpeg wheel, in that order."""
    env = os.environ.get("GENRE_FFMPEG")
    if env:
        if shutil.which(env):
            return shutil.which(env) or env
        raise ToolMissing(f"GENRE_FFMPEG={env} is not an executable: fix or unset it")
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        raise ToolMissing(
            "ffmpeg not found: install it (apt install ffmpeg, brew install ffmpeg) "
            "or pip install imageio-ffmpeg"
        ) from None


def ffmpeg_input(path: str | Path) -> str:
    """The `-i` argument for a local file: `file:` keeps '-x.mp3' or 'a:b.mp3' from misreading."""
    return "file:" + os.fspath(Path(path).absolute())


@dataclass(frozen=True)
class AudioInfo:
    """What ffmpeg says about a file's first audio stream."""

    path: str
    format: str
    codec: str
    sample_rate: int
    channels: int
    duration: float | None


_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_INPUT = re.compile(r"Input #0, ([^,]+(?:,[^,]+)*?), from ")
_AUDIO = re.compile(r"Stream #0:\d+(?:\[\w+\])?(?:\([^)]*\))?: Audio: ([^,\s]+)[^,]*, (\d+) Hz, ([^,]+)")


def _reason(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in reversed(lines):
        low = ln.lower()
        if "invalid data" in low or "no such file" in low or "permission denied" in low:
            return ln.split(": ")[-1]
    return lines[-1].split(": ")[-1] if lines else "ffmpeg failed"


#: Probes by (path, size, mtime): a query probes its song twice (decoding it early while torch
#: loads, then for the result) and each probe is a whole ffmpeg start.
_PROBED: dict[tuple[str, int, int], AudioInfo] = {}


def probe(path: str | Path) -> AudioInfo:
    """Format, codec, rate, channels and duration, from `ffmpeg -i` alone (no ffprobe)."""
    p = Path(path)
    if not p.is_file():
        raise AudioError(f"{p}: no such file")
    st = p.stat()
    if st.st_size == 0:
        raise AudioError(f"{p}: empty file (0 bytes)")
    stamp = (str(p.absolute()), st.st_size, st.st_mtime_ns)
    known = _PROBED.get(stamp)
    if known is not None:
        return dataclasses.replace(known, path=str(p))
    info = _probe(p)
    if len(_PROBED) >= 1024:
        _PROBED.clear()
    _PROBED[stamp] = info
    return info


def _probe(p: Path) -> AudioInfo:
    proc = subprocess.run(
        [find_ffmpeg(), "-nostdin", "-hide_banner", "-i", ffmpeg_input(p)],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
        start_new_session=True,  # as in stream(): our Ctrl-C must not look like a bad file
    )
    err = proc.stderr
    if proc.returncode < 0:
        raise GenreError(f"{p}: ffmpeg was stopped by signal {-proc.returncode}; run again")
    m = _AUDIO.search(err)
    if not m:
        if "Input #0" in err:
            raise AudioError(f"{p}: no audio stream (is it an audio file?)")
        raise AudioError(f"{p}: not readable audio ({_reason(err)})")
    codec, rate, layout = m.group(1), int(m.group(2)), m.group(3).strip()
    n = re.match(r"(\d+) channels", layout)
    channels = int(n.group(1)) if n else _LAYOUTS.get(layout.split()[0], 0)
    if channels <= 0:
        raise AudioError(f"{p}: unknown channel layout {layout!r}")
    d = _DURATION.search(err)
    duration = int(d.group(1)) * 3600 + int(d.group(2)) * 60 + float(d.group(3)) if d else None
    fm = _INPUT.search(err)
    return AudioInfo(str(p), fm.group(1) if fm else "?", codec, rate, channels, duration)


def mono_filter(channels: int) -> list[str]:
    """ffmpeg args that average `channels` into one (nothing for mono input)."""
    if channels == 1:
        return []
    w = 1.0 / channels
    terms = "+".join(f"{w:.17g}*c{i}" for i in range(channels))
    # aformat first: pan on 16-bit input would round the mean back to 16 bits.
    return ["-af", f"aformat=sample_fmts=fltp,pan=mono|c0={terms}"]


class _StderrTail(threading.Thread):
    """Drains ffmpeg's stderr so a chatty file cannot block the pipe; keeps the last lines."""

    def __init__(self, stream) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: deque[str] = deque(maxlen=20)

    def run(self) -> None:
        for raw in self.stream:
            self.lines.append(raw.decode("utf-8", "replace"))

    def text(self) -> str:
        return "".join(self.lines)


def stream(
    path: str | Path, sample_rate: int, block: int, info: AudioInfo | None = None
) -> Iterator[np.ndarray]:
    """Yield float32 mono blocks of exactly `block` samples (the last may be shorter).

    Memory stays flat: only one block is held, however long the file.
    """
    info = info or probe(path)
    cmd = [
        find_ffmpeg(),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        ffmpeg_input(path),
        "-map",
        "0:a:0",
        "-vn",
        *mono_filter(info.channels),
        "-ar",
        str(sample_rate),
        "-f",
        "f32le",
        "-acodec",
        "pcm_f32le",
        "pipe:1",
    ]
    # Own session: a Ctrl-C meant for us must not kill ffmpeg and look like a bad file.
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    tail = _StderrTail(proc.stderr)
    tail.start()
    assert proc.stdout is not None
    _widen_pipe(proc.stdout)
    nbytes = block * 4
    at_eof = False
    try:
        while not at_eof:
            samples = _read_block(proc.stdout, nbytes)
            at_eof = samples.nbytes < nbytes
            if samples.size:
                yield samples
    finally:
        if not at_eof:
            proc.kill()
        proc.wait()
        tail.join(timeout=1)
    if proc.returncode < 0:
        raise GenreError(f"{path}: ffmpeg was stopped by signal {-proc.returncode}; run again")
    if proc.returncode != 0:
        raise AudioError(f"{path}: cannot decode ({_reason(tail.text())})")


def _widen_pipe(f: IO[bytes]) -> None:
    """Ask for a 1 MiB pipe (Linux; 64 KiB by default): a 30-s chunk then takes 6 reads, not
    80, and each read is a moment the reading thread needs the GIL back from a busy one."""
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):
            fcntl.fcntl(f.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)


def _read_block(f: IO[bytes], nbytes: int) -> np.ndarray:
    """Fill one block from the pipe straight into a writable array (no extra copy)."""
    buf = bytearray(nbytes)
    view = memoryview(buf)
    got = 0
    while got < nbytes:
        n = f.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return np.frombuffer(buf, dtype="<f4", count=got // 4)


def decode(path: str | Path, sample_rate: int) -> np.ndarray:
    """A whole file as float32 mono (for short files and tests; use `stream` for long ones)."""
    blocks = list(stream(path, sample_rate, block=sample_rate * 60))
    if not blocks:
        raise AudioError(f"{path}: no audio decoded")
    return np.concatenate(blocks)


@dataclass(frozen=True)
class Chunk:
    """A fixed-length piece of a song; `length` is its true length before zero padding."""

    index: int
    start: float
    samples: np.ndarray
    length: int

    def end(self, sample_rate: int) -> float:
        return self.start + self.length / sample_rate


def chunks(
    path: str | Path,
    sample_rate: int,
    chunk_seconds: float,
    min_chunk_seconds: float,
    info: AudioInfo | None = None,
) -> Iterator[Chunk]:
    """Fixed-length chunks with their start times; a short tail is padded or dropped.

    Raises AudioError if the song is shorter than one minimum chunk.
    """
    size = round(chunk_seconds * sample_rate)
    min_len = round(min_chunk_seconds * sample_rate)
    index = 0
    for block in stream(path, sample_rate, size, info):
        length = len(block)
        if length < size:  # the last block: keep reading so stream() checks ffmpeg's exit
            if length < min_len:
                continue
            block = np.concatenate([block, np.zeros(size - length, dtype=np.float32)])
        yield Chunk(index, float(index * chunk_seconds), block, length)
        index += 1
    if index == 0:
        raise AudioError(
            f"{path}: too short (under {min_chunk_seconds:g} s of audio, the shortest chunk kept)"
        )


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """32-bit float mono WAV, atomically (temp file + rename)."""
    data = np.ascontiguousarray(samples, dtype="<f4").tobytes()
    header = b"".join(
        [
            b"RIFF",
            (36 + len(data)).to_bytes(4, "little"),
            b"WAVE",
            b"fmt ",
            (16).to_bytes(4, "little"),
            (3).to_bytes(2, "little"),
            (1).to_bytes(2, "little"),
            sample_rate.to_bytes(4, "little"),
            (sample_rate * 4).to_bytes(4, "little"),
            (4).to_bytes(2, "little"),
            (32).to_bytes(2, "little"),
            b"data",
            len(data).to_bytes(4, "little"),
        ]
    )
    atomic_write_bytes(Path(path), header + data)
