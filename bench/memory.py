"""Peak memory of extracting a long file against a short one (streamed decode, bounded batches).

    python bench/memory.py [--hours 3]

Each extraction runs in a fresh process; prints both peak RSS values and the difference
(target: under 100 MB).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from _common import make_song

PROBE = """
import resource, sys, tempfile
import numpy as np
from pathlib import Path
from genre_erkennung.core.config import Settings
from genre_erkennung.core.extract import extract_song
from genre_erkennung.core.features import get_backend
from genre_erkennung.core.store import store_for
from genre_erkennung.core.workspace import Workspace
s = Settings()
with tempfile.TemporaryDirectory() as ws:
    store = store_for(Workspace(Path(ws)), s)
    meta = extract_song(Path(sys.argv[1]), "song", store, s, get_backend(s.features))
    with np.load(store.path("song")) as z:  # the entry is whole: its last array reads back
        assert z["lengths"].shape == (meta["chunks"],)
print(meta["chunks"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak(song: Path) -> tuple[int, float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(song)], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), int(out[1]) / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=3.0)
    p.add_argument("--dir", type=Path, default=Path("bench/out/memory"))
    args = p.parse_args()
    short = make_song(args.dir / "short 3min.mp3", 180, 1)
    print(f"generating a {args.hours:g} h MP3 (once) ...", file=sys.stderr)
    long = make_song(args.dir / f"long {args.hours:g}h.mp3", args.hours * 3600, 2)
    (c1, m1), (c2, m2) = peak(short), peak(long)
    print(f"{'file':16} {'chunks':>7} {'peak RSS MB':>12}")
    print(f"{'3 min':16} {c1:7d} {m1:12.0f}")
    print(f"{f'{args.hours:g} h':16} {c2:7d} {m2:12.0f}")
    print(f"difference: {m2 - m1:.0f} MB (target < 100 MB)")


if __name__ == "__main__":
    main()
