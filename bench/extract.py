"""Extraction speed: `genre extract` against ffmpeg's decode alone, and where each second goes.

    python bench/extract.py [--songs 20] [--minutes 3] [--workers N]

Prints seconds of audio per wall second for (a) ffmpeg decode to f32 mono with N processes,
(b) `genre extract` cold (CLI start-up included), (c) a warm re-run, (d) sonic-annotator if on
PATH, and the ratio (b)/(a) (target >= 0.7). Then each stage of (b) timed alone on the same
files with the same N workers: start-up (interpreter, CLI, numpy: no torch on the CPU), probe,
hash, decode, feature math (numpy, one BLAS thread per worker, as extraction runs it) and the
entry write, in wall seconds and CPU seconds (ours plus ffmpeg's), so
that what (b) spends beyond decoding can be read off. CPU seconds are the figure to trust on a
busy machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from _common import decode_alone, load_average, make_song, run, timed

from genre_erkennung.core import audio
from genre_erkennung.core.dataset import content_key
from genre_erkennung.core.extract import BATCH_CHUNKS
from genre_erkennung.core.store import Entry, FeatureStore

RATE, CHUNK_S = 44100, 30


def decode_all(songs: list[Path], workers: int) -> None:
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(decode_alone, songs))


def cpu() -> float:
    """CPU seconds of this process and its finished children (ffmpeg) so far."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def stage(songs: list[Path], workers: int, fn: Callable[[Path], object]) -> tuple[float, float]:
    """(wall s, CPU s) of `fn` over every song with `workers` threads."""
    c, t = cpu(), time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, songs))
    return time.perf_counter() - t, cpu() - c


def startup() -> tuple[float, float]:
    """What `genre extract` pays before its first song: interpreter, CLI and feature-math imports
    (numpy's; torch only on a GPU)."""
    modules = ("tui.cli", "core.extract", "core.features.native")
    code = "import " + ", ".join(f"genre_erkennung.{m}" for m in modules)
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code])
    _, _, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - t, usage.ru_utime + usage.ru_stime


def math_and_write(songs: list[Path], workers: int, folder: Path) -> tuple[float, float, float, float]:
    """(math wall, math CPU, write wall, write CPU) summed over songs, wall divided by workers:
    each song decoded first (untimed), then its chunks through the backend a batch at a time as
    extraction does, then its entry written to a scratch store."""
    from genre_erkennung.core.config import FeatureSettings
    from genre_erkennung.core.features import get_backend, one_math_thread

    backend = get_backend(FeatureSettings(device="cpu"))
    one_math_thread(backend)
    store = FeatureStore(folder, "bench", {"bench": True})
    totals = np.zeros(4)

    def one(song: Path) -> None:
        x = audio.decode(song, RATE)
        n = len(x) // (CHUNK_S * RATE)
        chunks = x[: n * CHUNK_S * RATE].reshape(n, CHUNK_S * RATE)
        t, c = time.perf_counter(), time.thread_time()
        parts = [backend.batch(chunks[i : i + BATCH_CHUNKS], RATE) for i in range(0, n, BATCH_CHUNKS)]
        math_wall, math_cpu = time.perf_counter() - t, time.thread_time() - c
        entry = Entry(
            np.concatenate([p.mfcc for p in parts]),
            np.concatenate([p.peaks for p in parts]),
            np.concatenate([p.valleys for p in parts]),
            np.arange(n) * float(CHUNK_S),
            np.full(n, CHUNK_S * RATE),
        )
        t, c = time.perf_counter(), time.thread_time()
        store.save(song.stem.replace(" ", "_"), entry)
        totals[:] += (math_wall, math_cpu, time.perf_counter() - t, time.thread_time() - c)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, songs))
    return totals[0] / workers, totals[1], totals[2] / workers, totals[3]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--songs", type=int, default=20)
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--dir", type=Path, default=Path("bench/out/extract"))
    args = p.parse_args()
    ds = args.dir / f"ds-{args.songs}x{args.minutes:g}"
    songs = []
    for i in range(args.songs):
        split, genre = ("train" if i % 4 < 3 else "test"), f"g{i % 2}"
        songs.append(make_song(ds / split / genre / f"song {i:02d}.mp3", args.minutes * 60, i))
    audio_s = args.songs * args.minutes * 60
    n = str(args.workers)
    print(f"load average before: {load_average()}")
    rows = [("(a) ffmpeg decode alone", timed(lambda: decode_all(songs, args.workers)))]
    cold_cpu = [0.0]
    with tempfile.TemporaryDirectory() as ws:

        def cold() -> None:
            cold_cpu[0] = run("extract", "--dataset", str(ds), "--workspace", ws, "--workers", n)

        rows.append(("(b) genre extract, cold", timed(cold)))
        rows.append(
            (
                "(c) genre extract, warm",
                timed(lambda: run("extract", "--dataset", str(ds), "--workspace", ws, "--workers", n)),
            )
        )
    if shutil.which("sonic-annotator"):
        with tempfile.TemporaryDirectory() as ws:
            rows.append(
                (
                    "(d) sonic-annotator backend",
                    timed(
                        lambda: run(
                            "extract",
                            "--dataset",
                            str(ds),
                            "--workspace",
                            ws,
                            "--workers",
                            n,
                            "--backend",
                            "sonic-annotator",
                        )
                    ),
                )
            )
    print(
        f"{args.songs} songs x {args.minutes:g} min = {audio_s / 60:.0f} min of audio, {args.workers} workers"
    )
    print(f"{'':32} {'wall s':>8} {'audio s / s':>12}")
    for name, t in rows:
        print(f"{name:32} {t:8.2f} {audio_s / t:12.0f}")
    a, b, c = rows[0][1], rows[1][1], rows[2][1]
    print(f"ratio (b)/(a) = {a / b:.2f}  (speed of extract relative to decode alone; target >= 0.7)")
    print(f"warm re-run = {100 * c / b:.1f}% of the cold run (start-up and hashing only)")
    print(f"load average after (b)-(d): {load_average()}")
    breakdown(songs, args.workers, b, cold_cpu[0])
    print(f"load average after: {load_average()}")


def breakdown(songs: list[Path], workers: int, cold: float, cold_cpu: float) -> None:
    """Each stage of a cold extraction alone, on the same songs with the same workers."""
    audio._PROBED.clear()  # a fresh process probes every song once
    stages = {"start-up (python, CLI, numpy)": startup()}
    stages["probe (ffmpeg -i)"] = stage(songs, workers, audio.probe)
    stages["hash (sha256 of the file)"] = stage(songs, workers, content_key)
    stages["decode (ffmpeg to f32 mono)"] = stage(songs, workers, decode_alone)
    with tempfile.TemporaryDirectory() as tmp:
        mw, mc, ww, wc = math_and_write(songs, workers, Path(tmp))
    stages["feature math (numpy, CPU)"] = (mw, mc)
    stages["write (npz entries)"] = (ww, wc)
    print(f"\nwhere (b)'s time goes: each stage alone, {workers} workers (decode and math overlap in (b))")
    print(f"{'':32} {'wall s':>8} {'CPU s':>8} {'% of (b)':>9}")
    for name, (wall, cpu_s) in stages.items():
        print(f"{name:32} {wall:8.2f} {cpu_s:8.2f} {100 * wall / cold:8.0f}%")
    total, total_cpu = (sum(x) for x in zip(*stages.values(), strict=True))
    print(f"{'sum of the stages':32} {total:8.2f} {total_cpu:8.2f} {100 * total / cold:8.0f}%")
    print(f"{'(b) genre extract, cold':32} {cold:8.2f} {cold_cpu:8.2f}")


if __name__ == "__main__":
    main()
