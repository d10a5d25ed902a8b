"""Feature math alone against ffmpeg's decode of the same audio, measured in the same run.

    python bench/features.py [--seconds 120] [--threads 1] [--device cpu] [--repeat 5]
                             [--backend native|sonic-annotator] [--workers 2] [--against-rev REV]

Decodes a generated stereo MP3 (44.1 kHz) to f32 mono with the project's decode path, then runs
the native backend's `batch()` on its 30 s chunks: on numpy (what the CPU runs; one BLAS thread)
and the same code on torch (what a GPU runs; here on --device with --threads threads), and with
--against-rev the native.py of a git revision (e.g. the torch-only math before issue 15). Prints
seconds per audio second and the realtime factor of each, how many times faster the math is
than the decode, and numpy's time over torch's. Best of --repeat runs, so a busy machine
disturbs them alike; the CPU column is the one to trust there. Issue 3 needs the math well
faster than the decode: extraction does both, and must keep >= 0.5x the speed of decode alone.

With --backend sonic-annotator (on PATH, plugins on VAMP_PATH) the same chunks also go through
the real host the way extraction sends a song (temp WAVs, one process, all three transforms,
CSVs parsed), once alone and once as --workers songs at the same time, and the ratio of the two
backends is printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from _common import make_song

from genre_erkennung.core import audio
from genre_erkennung.core.features import one_math_thread
from genre_erkennung.core.features.native import NativeBackend
from genre_erkennung.core.features.sonic import SonicBackend

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


def native_at(rev: str) -> object:
    """core/features/native.py as it was at git revision `rev`, imported beside today's."""
    root = Path(__file__).resolve().parents[1]
    text = subprocess.run(
        ["git", "-C", str(root), "show", f"{rev}:core/features/native.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "native_rev.py"
    path.write_text(text)
    name = "genre_erkennung.core.features._native_rev"  # its relative imports resolve as today's
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


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
    p.add_argument("--backend", default="native", choices=("native", "sonic-annotator"))
    p.add_argument("--workers", type=int, default=2, help="songs at once through sonic-annotator")
    p.add_argument("--dir", type=Path, default=Path("bench/out/features"))
    p.add_argument("--against-rev", help="also time core/features/native.py of this git revision")
    args = p.parse_args()
    song = make_song(args.dir / f"song-{args.seconds}s.mp3", args.seconds, seed=3)

    samples = audio.decode(song, RATE)
    decode = best_of(args.repeat, lambda: audio.decode(song, RATE))
    n = len(samples) // CHUNK
    chunks = samples[: n * CHUNK].reshape(n, CHUNK)
    backend = NativeBackend("cpu")
    one_math_thread(backend)
    backend.batch(chunks, RATE)  # warm-up: constants, allocator
    math_ = best_of(args.repeat, lambda: backend.batch(chunks, RATE))
    torch.set_num_threads(args.threads)
    on_torch = NativeBackend(args.device, library="torch")
    on_torch.batch(chunks, RATE)  # warm-up: constants, allocator, CUDA context
    torch_math = best_of(args.repeat, lambda: on_torch.batch(chunks, RATE))

    seconds = n * CHUNK / RATE
    decoded = len(samples) / RATE
    rows = [
        ("ffmpeg decode (mp3 -> f32 mono)", decode, decoded),
        ("feature math, numpy (CPU, 1 thread)", math_, seconds),
        (f"feature math, torch ({args.device})", torch_math, seconds),
    ]
    if args.against_rev:
        old = native_at(args.against_rev).NativeBackend(torch.device(args.device))
        old.batch(chunks, RATE)
        rows.append(
            (
                f"feature math, torch at {args.against_rev[:10]}",
                best_of(args.repeat, lambda: old.batch(chunks, RATE)),
                seconds,
            )
        )
    if args.backend == "sonic-annotator":
        sonic = SonicBackend()

        def song() -> None:  # as extract_song sends it: one host process for all chunks
            assert sum(1 for _ in sonic.stream(iter(chunks), RATE)) == n

        def songs() -> None:
            with ThreadPoolExecutor(args.workers) as pool:
                list(pool.map(lambda _: song(), range(args.workers)))

        alone = best_of(args.repeat, song)
        rows.append(("sonic-annotator (one song)", alone, seconds))
        together = best_of(args.repeat, songs)
        rows.append((f"sonic-annotator ({args.workers} songs at once)", together, seconds * args.workers))
    print(
        f"audio: {decoded:.0f} s decoded, {n} chunks of 30 s for the math; "
        f"numpy {np.__version__}, 1 thread; "
        f"torch {torch.__version__}, {args.threads} thread(s), {args.device}"
    )
    print("                                        per audio second    realtime   (by CPU time)")
    for name, (wall, cpu), length in rows:
        print(f"{name:38s}  {wall / length * 1000:8.3f} ms  {length / wall:8.0f}x   ({length / cpu:.0f}x)")
    wall_ratio = (decode[0] / decoded) / (math_[0] / seconds)
    cpu_ratio = (decode[1] / decoded) / (math_[1] / seconds)
    print(
        f"ratio: the numpy math is {wall_ratio:.2f}x faster than decoding the same audio "
        f"({cpu_ratio:.2f}x by CPU time)"
    )
    for name, (wall, cpu), _ in rows[2:]:
        print(
            f"ratio: numpy takes {math_[0] / wall:.2f}x the time of {name.removeprefix('feature math, ')}"
            f" ({math_[1] / cpu:.2f}x by CPU time)"
        )
    if args.backend == "sonic-annotator":
        print(
            f"ratio: the native math is {alone[0] / math_[0]:.1f}x faster than sonic-annotator on one "
            f"core ({alone[1] / math_[1]:.1f}x by CPU time); sonic-annotator runs at "
            f"{(decode[0] / decoded) / (alone[0] / seconds):.2f}x the speed of decoding"
        )
    assert np.isfinite(backend.batch(chunks[:1], RATE).mfcc).all()


if __name__ == "__main__":
    main()
