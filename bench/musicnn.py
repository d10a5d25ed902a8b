"""musicnn embedding speed against ffmpeg's decode of the same audio, measured in the same run.

    python bench/musicnn.py [--seconds 120] [--threads 1] [--device cpu|cuda] [--repeat 3]
                            [--workspace DIR] [--wheel FILE]

Decodes a generated stereo MP3 (44.1 kHz) to f32 mono with the project's decode path, then
embeds its 30-s chunks as the musicnn backend does (soxr HQ to 16 kHz, log-mel, 3-s patches,
the network, mean per chunk), and separately times the preprocessing (with either resampler,
`features.musicnn_resampler`) and the network alone.
Prints seconds per audio second and realtime factors (by wall and by CPU time), best of
--repeat runs. Installs musicnn into --workspace first if it is not there (pip download, or
--wheel FILE). With --device cuda (a GPU at hand) the network runs there in float32.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _common import make_song
from features import best_of

from genre_erkennung.core import audio
from genre_erkennung.core.errors import GenreError
from genre_erkennung.core.pretrained import install
from genre_erkennung.core.pretrained.embed import Embedder, signal_patches
from genre_erkennung.core.workspace import Workspace

RATE = 44100
CHUNK = 30 * RATE


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=120, help="audio length (a multiple of 30)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--variant", default="msd", choices=("msd", "mtt"))
    p.add_argument("--workspace", type=Path, default=Path("bench/out/musicnn-ws"))
    p.add_argument("--wheel", type=Path, default=None, help="musicnn-0.1.0 wheel (else pip download)")
    p.add_argument("--dir", type=Path, default=Path("bench/out/musicnn"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ws = Workspace(args.workspace.resolve())
    try:
        install.read_card(ws)
    except GenreError:
        install.install(ws, "musicnn", args.wheel)
    song = make_song(args.dir / f"song-{args.seconds}s.mp3", args.seconds, seed=5)

    samples = audio.decode(song, RATE)
    decode = best_of(args.repeat, lambda: audio.decode(song, RATE))
    n = len(samples) // CHUNK
    chunks = samples[: n * CHUNK].reshape(n, CHUNK)
    lengths = np.full(n, CHUNK)
    emb = Embedder(ws, args.variant, torch.device(args.device))
    emb.chunks(chunks[:1], lengths[:1], RATE)  # warm-up: kernels, allocator, CUDA context
    embed = best_of(args.repeat, lambda: emb.chunks(chunks, lengths, RATE))
    prep = best_of(args.repeat, lambda: [signal_patches(c, RATE) for c in chunks])
    kaiser = best_of(args.repeat, lambda: [signal_patches(c, RATE, "kaiser-best") for c in chunks])
    patches = np.concatenate([signal_patches(c, RATE) for c in chunks])

    def network() -> None:
        emb.patch_outputs(patches)
        if args.device == "cuda":
            torch.cuda.synchronize()

    net = best_of(args.repeat, network)

    seconds = n * CHUNK / RATE
    decoded = len(samples) / RATE
    where = args.device if args.device == "cpu" else f"cuda ({torch.cuda.get_device_name()})"
    print(
        f"audio: {decoded:.0f} s decoded, {n} chunks of 30 s = {len(patches)} patches; musicnn "
        f"{args.variant}; torch {torch.__version__}, {args.threads} thread(s), {where}"
    )
    print("                                   per audio second    realtime   (by CPU time)")
    for name, (wall, cpu), length in (
        ("ffmpeg decode (mp3 -> f32 mono)", decode, decoded),
        ("musicnn embedding (all of it)", embed, seconds),
        ("  soxr + log-mel + patches", prep, seconds),
        ("  (kaiser-best instead of soxr)", kaiser, seconds),
        ("  network alone", net, seconds),
    ):
        print(f"{name:33s}  {wall / length * 1000:8.3f} ms  {length / wall:8.0f}x   ({length / cpu:.0f}x)")
    print(f"embedding / decode time: {embed[0] / seconds / (decode[0] / decoded):.1f}x")
    print(f"finished {time.strftime('%H:%M:%S')}")


if __name__ == "__main__":
    main()
