"""Ray's overhead on one box: the same songs extracted by the local engine and by Ray tasks.

    python bench/cluster.py [--songs 12] [--minutes 2] [--cpus 2]

Both runs are in this process on fresh workspaces with the same settings. Ray's start-up (the
local instance and one warm worker per CPU) is timed on its own and left out of its throughput;
the ratio is Ray's audio seconds per wall second over the local engine's (target >= 0.85).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import make_song

from genre_erkennung.core import config, dataset
from genre_erkennung.core.extract import extract
from genre_erkennung.core.workspace import Workspace


def _timed_extract(songs: list, engine: str, cpus: int) -> tuple[float, float]:
    s = config.Settings()
    s.extraction.workers = cpus
    s.cluster.engine = engine
    with tempfile.TemporaryDirectory() as ws:
        started = time.perf_counter()
        r = extract(songs, s, Workspace(Path(ws)))
        wall = time.perf_counter() - started
    assert not r.failed and r.done == len(songs), r.failed
    return wall, r.audio_seconds


def _ray_start(cpus: int) -> float:
    import ray

    started = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)

    @ray.remote(num_cpus=1)
    def warm() -> int:
        import genre_erkennung.core.extract  # noqa: F401  (what a song task imports first)

        return os.getpid()

    ray.get([warm.remote() for _ in range(cpus)])
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--songs", type=int, default=12)
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--dir", type=Path, default=Path("bench/out/cluster"))
    args = p.parse_args()
    ds = args.dir / f"ds-{args.songs}x{args.minutes:g}"
    for i in range(args.songs):
        make_song(ds / "train" / f"g{i % 2}" / f"song {i:02d}.mp3", args.minutes * 60, i)
    songs = dataset.scan(ds).songs
    local, audio_s = _timed_extract(songs, "local", args.cpus)
    start = _ray_start(args.cpus)
    on_ray, _ = _timed_extract(songs, "ray", args.cpus)
    print(f"{args.songs} songs x {args.minutes:g} min = {audio_s / 60:.0f} min of audio, {args.cpus} CPUs")
    print(f"load average (1, 5, 15 min) after the runs: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'':28} {'wall s':>8} {'audio s / s':>12}")
    print(f"{'local engine':28} {local:8.2f} {audio_s / local:12.0f}")
    print(f"{'ray engine (started)':28} {on_ray:8.2f} {audio_s / on_ray:12.0f}")
    print(f"{'ray start-up + warm workers':28} {start:8.2f}")
    print(f"ratio ray / local throughput = {local / on_ray:.2f}  (target >= 0.85)")


if __name__ == "__main__":
    main()
