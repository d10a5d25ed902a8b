"""Our extraction against librosa, essentia and sonic-annotator on the same files, one process each.

    python3 -m venv bench/out/peers-venv && bench/out/peers-venv/bin/pip install librosa essentia
    python bench/peers.py [--files DIR] [--limit 12] [--peers-python bench/out/peers-venv/bin/python]
                          [--sonic-annotator PATH] [--vamp-path DIR]

librosa and essentia are benchmark tools, not project dependencies: they live in their own venv
(--peers-python). Without --files, songs come from the project's demo generator (core/demo.py);
with it, every audio file below DIR (sorted, the first --limit). Each side is one new process
over all the files, its start-up included:

- librosa: `load` (44.1 kHz mono) + `feature.mfcc` (20, n_fft 2048, hop 1024) +
  `feature.spectral_contrast` (n_fft 1024, hop 512, 6 bands = 7 values);
- essentia: MonoLoader (44.1 kHz) + Windowing/Spectrum/MFCC (2048/1024, 20 coefficients) +
  SpectralContrast (1024/512, 7 values);
- sonic-annotator: the three Vamp transforms (-d ... x3) in one run over all files (it decodes
  at each file's own rate: it has no resampler);
- ours: `genre extract --workers 1` on a dataset of links to the files (CLI start-up, scan,
  probe, hash, decode, math and store writes);
- and ffmpeg's decode of every file to f32 mono alone, the floor that all of them share.

Prints wall and CPU seconds of each and the peers' times over ours (target: >= 3x librosa and
essentia, >= 6x sonic-annotator). On a busy machine read the CPU column.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import GENRE, decode_alone, load_average

from genre_erkennung.core import audio, demo
from genre_erkennung.core.dataset import NOT_AUDIO
from genre_erkennung.core.features import TRANSFORMS

LIBROSA = """
import json, sys, librosa
for f in json.load(open(sys.argv[1])):
    y, sr = librosa.load(f, sr=44100, mono=True)
    librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, n_fft=2048, hop_length=1024)
    librosa.feature.spectral_contrast(y=y, sr=sr, n_fft=1024, hop_length=512, n_bands=6)
"""

ESSENTIA = """
import json, sys
import essentia.standard as es
window2k, window1k = es.Windowing(type="hann", size=2048), es.Windowing(type="hann", size=1024)
spectrum = es.Spectrum()
mfcc = es.MFCC(numberCoefficients=20, inputSize=1025, sampleRate=44100)
contrast = es.SpectralContrast(frameSize=1024, numberBands=7, sampleRate=44100)
for f in json.load(open(sys.argv[1])):
    y = es.MonoLoader(filename=f, sampleRate=44100)()
    for frame in es.FrameGenerator(y, frameSize=2048, hopSize=1024, startFromZero=True):
        mfcc(spectrum(window2k(frame)))
    for frame in es.FrameGenerator(y, frameSize=1024, hopSize=512, startFromZero=True):
        contrast(spectrum(window1k(frame)))
"""


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall s, CPU s) of one process and its children; a failure stops the benchmark."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{err.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def find_files(folder: Path | None, limit: int, out: Path) -> list[Path]:
    if folder is None:
        ds = demo.generate(out / "demo", songs_per_genre=max(1, limit // 4), seconds=120.0)
        return sorted([*ds.train, *ds.test])[:limit]
    found = [
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix.lower() not in NOT_AUDIO and not p.name.startswith(".")
    ]
    return found[:limit]


def linked_dataset(files: list[Path], root: Path) -> Path:
    """ROOT/{train,test}/all/ of links to the files (the last one in test/), as extract wants."""
    for i, f in enumerate(files):
        split = "test" if i == len(files) - 1 else "train"
        link = root / split / "all" / f"{i:03d}{f.suffix}"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(f.absolute())
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=Path, help="a folder of songs (default: generated demo songs)")
    p.add_argument("--limit", type=int, default=12)
    p.add_argument("--peers-python", type=Path, default=Path("bench/out/peers-venv/bin/python"))
    p.add_argument("--sonic-annotator", default=shutil.which("sonic-annotator") or "")
    p.add_argument("--vamp-path", default=os.environ.get("VAMP_PATH", ""))
    p.add_argument("--dir", type=Path, default=Path("bench/out/peers"))
    args = p.parse_args()
    files = find_files(args.files, args.limit, args.dir)
    if not files:
        raise SystemExit("no audio files found")
    seconds = sum(audio.probe(f).duration or 0.0 for f in files)
    print(f"{len(files)} files, {seconds / 60:.1f} min of audio; load average before: {load_average()}")
    rows: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "files.json"
        listing.write_text(json.dumps([str(f) for f in files]))
        t, kids = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        for f in files:
            decode_alone(f)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - kids.ru_utime - kids.ru_stime
        rows["ffmpeg decode alone"] = (time.perf_counter() - t, cpu)
        ds = linked_dataset(files, Path(tmp) / "ds")
        env = {**os.environ, "GENRE_NO_USER_CONFIG": "1"}
        cmd = [GENRE, "extract", "--dataset", str(ds), "--workspace", str(Path(tmp) / "ws"), "--workers", "1"]
        rows["ours: genre extract (1 worker)"] = timed(cmd, env)
        if args.peers_python.exists():
            rows["librosa"] = timed([str(args.peers_python), "-c", LIBROSA, str(listing)])
            rows["essentia"] = timed([str(args.peers_python), "-c", ESSENTIA, str(listing)])
        else:
            print(f"no {args.peers_python}: librosa and essentia skipped (see the docstring)")
        if args.sonic_annotator:
            out = Path(tmp) / "csv"
            out.mkdir()
            sa_env = {**os.environ, "VAMP_PATH": args.vamp_path} if args.vamp_path else None
            cmd = [args.sonic_annotator, *(x for t in TRANSFORMS for x in ("-d", t))]
            cmd += ["-w", "csv", "--csv-basedir", str(out), "--csv-force", *map(str, files)]
            rows["sonic-annotator (3 transforms)"] = timed(cmd, sa_env)
        else:
            print("no sonic-annotator: pass --sonic-annotator PATH (and --vamp-path DIR)")
    ours_wall, ours_cpu = rows["ours: genre extract (1 worker)"]
    print(f"{'':34} {'wall s':>8} {'CPU s':>8} {'x realtime':>10} {'/ ours':>7} {'/ ours CPU':>10}")
    for name, (wall, cpu) in rows.items():
        print(
            f"{name:34} {wall:8.2f} {cpu:8.2f} {seconds / wall:10.0f} {wall / ours_wall:7.2f} "
            f"{cpu / ours_cpu:10.2f}"
        )
    print("targets: librosa and essentia >= 3x ours, sonic-annotator >= 6x ours")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    sys.exit(main())
