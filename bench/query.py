"""Query speed: classifying a 4-minute MP3 against ffmpeg's decode of it, in the same run.

    python bench/query.py [--minutes 4]

Trains a throwaway merged model (1 epoch on generated songs; its accuracy is irrelevant here),
then times (a) ffmpeg decode alone of the query song to f32 mono, (b) `predict` with the model
already loaded (decode + features + network, features computed fresh), and (c) the cold CLI
`genre query SONG --json`. Prints the ratio (b)/(a) (target <= 2) and (c) (target <= 2.0 s
on an idle box; a cold query decodes the song while torch loads, see core/prefetch.py).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from _common import GENRE, decode_alone, load_average, make_song, run, timed

from genre_erkennung.core import config, registry
from genre_erkennung.core.predict import classify_file, settings_for
from genre_erkennung.core.workspace import Workspace


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=4.0)
    p.add_argument("--dir", type=Path, default=Path("bench/out/query"))
    args = p.parse_args()
    ds = args.dir / "ds"
    for i in range(6):
        make_song(ds / ("train" if i < 4 else "test") / f"g{i % 2}" / f"s{i}.mp3", 35.0, 10 + i)
    song = make_song(args.dir / "query song.mp3", args.minutes * 60, 99)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp))
        cfg = Path(tmp) / "c.toml"
        cfg.write_text("[training]\nepochs = 1\nthreads = 1\n")
        run(
            "train",
            "--dataset",
            str(ds),
            "--workspace",
            tmp,
            "--config",
            str(cfg),
            "--extract",
            "--name",
            "bench",
        )
        loaded = registry.load(ws, "bench")
        settings = settings_for(loaded, config.Settings())

        def predict() -> None:
            for f in ws.features.glob("*/*.npz"):
                f.unlink()  # features computed fresh each time, not taken from the store
            classify_file(song, loaded, settings, ws)

        predict()  # warm-up: torch kernels, page cache
        print(f"load average before: {load_average()}")
        a = min(timed(lambda: decode_alone(song)) for _ in range(3))
        b = min(timed(predict) for _ in range(3))
        for f in ws.features.glob("*/*.npz"):
            f.unlink()
        cold = timed(
            lambda: subprocess.run(
                [GENRE, "query", str(song), "--workspace", tmp, "--json"], check=True, capture_output=True
            )
        )
    seconds = args.minutes * 60
    print(f"query song: {args.minutes:g} min MP3, merged model loaded once")
    print(f"{'':36} {'wall s':>8} {'x realtime':>11}")
    for name, t in (
        ("(a) ffmpeg decode alone", a),
        ("(b) predict, model loaded", b),
        ("(c) genre query (cold CLI)", cold),
    ):
        print(f"{name:36} {t:8.2f} {seconds / t:11.0f}")
    print(f"ratio (b)/(a) = {b / a:.2f}  (target <= 2); cold query {cold:.2f} s (target <= 2.0 s)")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
