"""Query of a folder of junk: `genre query FOLDER --json` against one ffmpeg probe per file.

    python bench/query_junk.py [--files 2000]

The folder holds one real song and FILES junk files named .mp3, half text, half random bytes.
Before issue 17 a query probed every file with ffmpeg, one after another: (a) times exactly that,
in this run. (b) is the cold CLI on the same folder (start-up and model load included): text is
rejected by its first bytes, unknown binaries get one probe each, run ahead in threads.
Trains a throwaway model first (1 epoch; its accuracy is irrelevant here).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

from _common import GENRE, make_song, run, timed

from genre_erkennung.core import audio
from genre_erkennung.core.errors import AudioError


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=2000)
    p.add_argument("--dir", type=Path, default=Path("bench/out/query_junk"))
    args = p.parse_args()
    ds = args.dir / "ds"
    for i in range(4):
        make_song(ds / ("train" if i < 2 else "test") / f"g{i % 2}" / f"s{i}.mp3", 35.0, 20 + i)
    folder = args.dir / f"junk-{args.files}"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        make_song(folder / "0 song.mp3", 40.0, 7)
        for i in range(args.files):
            junk = folder / f"junk {i:05d}.mp3"
            junk.write_bytes(os.urandom(512) if i % 2 else f"not a song {i}\n".encode())
    files = sorted(folder.iterdir())
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "c.toml"
        cfg.write_text("[training]\nepochs = 1\nthreads = 1\n")
        run("train", "--dataset", str(ds), "--workspace", tmp, "--config", str(cfg), "--extract")

        def probe_each() -> None:
            for f in files:
                with contextlib.suppress(AudioError):
                    audio.probe(f)

        a = timed(probe_each)
        out: list[str] = []

        def query() -> None:
            cmd = [GENRE, "query", str(folder), "--workspace", tmp, "--json"]
            out.append(subprocess.run(cmd, capture_output=True, text=True, check=False).stdout)

        b = timed(query)
    doc = json.loads(out[0])
    print(f"folder: 1 song + {args.files} junk files (half text, half random bytes)")
    print(f"(a) one ffmpeg probe per file, serially: {a:7.2f} s  ({len(files) / a:6.0f} files/s)")
    print(f"(b) genre query FOLDER --json (cold):    {b:7.2f} s  ({len(files) / b:6.0f} files/s)")
    print(f"    classified {len(doc['results'])}, failed {len(doc['errors'])}, complete {doc['complete']}")
    print(f"speed-up (a)/(b) = {a / b:.2f}")


if __name__ == "__main__":
    main()
