"""Feature math alone against ffmpeg's decode of the same audio, measured in the same run.

    python bench/features.py [--seconds 120] [--threads 1] [--device cpu] [--repeat 5]

Decodes a generated stereo MP3 (44.1 kHz) to f32 mono with the project's decode path, then runs
the native backend's `batch()` on its 30 s chunks. Prints seconds per audio second and the
realtime factor of each, and how many times faster the math is than the decode. Best of
--repeat runs for both, so a busy machine disturbs them alike. Issue 3 needs the math well
faster than the decode: extraction does both, and must keep >= 0.5x the speed of decode alone.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _common import make_song

from genre_erkennung.core import audio
from genre_erkennung.core.features.native import NativeBackend

RATE = 44100
CHUNK = 30 * RATE


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of that run: ours plus our children's)."""
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        cpu0 = _cpu()
        t = time.perf_counter()
        fn()
        wall = time.perf_counter() - t
        if wall < best[0]:
            best = (wall, _cpu() - cpu0)
    return best


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=120, help="audio length (a multiple of 30)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the math")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--dir", type=Path, default=Path("bench/out/features"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    song = make_song(args.dir / f"song-{args.seconds}s.mp3", args.seconds, seed=3)

    samples = audio.decode(song, RATE)
    decode = best_of(args.repeat, lambda: audio.decode(song, RATE))
    n = len(samples) // CHUNK
    chunks = samples[: n * CHUNK].reshape(n, CHUNK)
    backend = NativeBackend(torch.device(args.device))
    backend.batch(chunks, RATE)  # warm-up: constants, allocator, CUDA context
    math_ = best_of(args.repeat, lambda: backend.batch(chunks, RATE))

    seconds = n * CHUNK / RATE
    decoded = len(samples) / RATE
    print(
        f"audio: {decoded:.0f} s decoded, {n} chunks of 30 s for the math; "
        f"torch {torch.__version__}, {args.threads} thread(s), {args.device}"
    )
    print("                                   per audio second    realtime   (by CPU time)")
    for name, (wall, cpu), length in (
        ("ffmpeg decode (mp3 -> f32 mono)", decode, decoded),
        ("feature math (batch)", math_, seconds),
    ):
        print(f"{name:33s}  {wall / length * 1000:8.3f} ms  {length / wall:8.0f}x   ({length / cpu:.0f}x)")
    wall_ratio = (decode[0] / decoded) / (math_[0] / seconds)
    cpu_ratio = (decode[1] / decoded) / (math_[1] / seconds)
    print(
        f"ratio: the math is {wall_ratio:.2f}x faster than decoding the same audio "
        f"({cpu_ratio:.2f}x by CPU time)"
    )
    assert np.isfinite(backend.batch(chunks[:1], RATE).mfcc).all()


if __name__ == "__main__":
    main()
