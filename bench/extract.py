"""Extraction speed: `genre extract` against ffmpeg's decode alone, measured in the same run.

    python bench/extract.py [--songs 20] [--minutes 3] [--workers N]

Prints seconds of audio per wall second for (a) ffmpeg decode to f32 mono with N processes,
(b) `genre extract` cold (CLI start-up included), (c) a warm re-run, (d) sonic-annotator if on
PATH, and the ratio (b)/(a). Target: (b) >= 0.5 x (a).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import decode_alone, make_song, run, timed


def decode_all(songs: list[Path], workers: int) -> None:
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(decode_alone, songs))


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
    rows = [("(a) ffmpeg decode alone", timed(lambda: decode_all(songs, args.workers)))]
    with tempfile.TemporaryDirectory() as ws:
        rows.append(
            (
                "(b) genre extract, cold",
                timed(lambda: run("extract", "--dataset", str(ds), "--workspace", ws, "--workers", n)),
            )
        )
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
    print(f"ratio (b)/(a) = {a / b:.2f}  (speed of extract relative to decode alone; target >= 0.5)")
    print(f"warm re-run = {100 * c / b:.1f}% of the cold run (start-up and hashing only)")


if __name__ == "__main__":
    main()
