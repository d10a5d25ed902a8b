"""Shared by the benchmarks: generated test audio and wall-clock timing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from genre_erkennung.core import audio

GENRE = str(Path(sys.executable).with_name("genre"))


def make_song(path: Path, seconds: float, seed: int, channels: int = 2) -> Path:
    """A stereo MP3 whose channels differ: pink noise left, a tone plus brown noise right."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    left = f"anoisesrc=color=pink:seed={seed}:duration={seconds}:amplitude=0.25"
    right = f"sine=frequency={110 + 37 * seed}:duration={seconds}"
    cmd = [
        audio.find_ffmpeg(),
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        left,
        "-f",
        "lavfi",
        "-i",
        right,
    ]
    if channels == 2:
        cmd += ["-filter_complex", "[0][1]amerge=inputs=2"]
    cmd += ["-ar", "44100", "-b:a", "160k", audio.ffmpeg_input(path.with_suffix(".tmp.mp3"))]
    subprocess.run(cmd, check=True)
    os.replace(path.with_suffix(".tmp.mp3"), path)
    return path


def decode_alone(song: Path, sample_rate: int = 44100) -> None:
    """ffmpeg's decode of a song to f32 mono, as extraction does it, written to /dev/null."""
    info = audio.probe(song)
    cmd = [
        audio.find_ffmpeg(),
        "-nostdin",
        "-loglevel",
        "error",
        "-i",
        audio.ffmpeg_input(song),
        *audio.mono_filter(info.channels),
        "-ar",
        str(sample_rate),
        "-f",
        "f32le",
        "pipe:1",
    ]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run(*args: str) -> float:
    """Run `genre ARGS`; returns its CPU seconds (its own and its ffmpeg children's)."""
    proc = subprocess.Popen([GENRE, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise subprocess.CalledProcessError(os.waitstatus_to_exitcode(status), [GENRE, *args])
    return usage.ru_utime + usage.ru_stime


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, printed beside every figure."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
