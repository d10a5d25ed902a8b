"""Training and inference speed of the merged model on synthetic GTZAN-size tensors.

    python bench/train.py [--chunks 1000] [--estimate-chunks 500] [--cuda-chunks 10000]

CPU: chunks/s for one training epoch and for inference with 1 and 2 torch threads, then the
time the defaults (50 epochs at most, batch 50) need for ~500 training chunks, estimated from a
measured epoch. CUDA (when torch sees a GPU): seconds per epoch for 10,000 chunks with bf16
autocast, with proof that the weights and the batches were on the GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import threading
import time

import torch

from genre_erkennung.core.config import TrainingSettings
from genre_erkennung.core.events import EpochEnd, Event
from genre_erkennung.core.model import Architecture, build
from genre_erkennung.core.run import Run, RunState
from genre_erkennung.core.tensors import Tensors
from genre_erkennung.core.train import fit, predict_logits

GENRES = 10
FRAMES = (1292, 2584)  # 30 s at 44.1 kHz: MFCC step 1024, contrast step 512


def synthetic(chunks: int, seed: int = 0) -> Tensors:
    """Standardised-looking random inputs; speed does not depend on the values."""
    g = torch.Generator().manual_seed(seed)
    return Tensors(
        mfcc=torch.randn(chunks, FRAMES[0], 20, generator=g),
        contrast=torch.randn(chunks, FRAMES[1], 7, generator=g),
        labels=torch.randint(0, GENRES, (chunks,), generator=g),
        songs=torch.arange(chunks),
        lengths=torch.full((chunks,), 30 * 44100),
        song_keys=[str(i) for i in range(chunks)],
    )


def one_epoch(data: Tensors, val: Tensors | None, device: torch.device) -> EpochEnd:
    """One real epoch through `fit` (the training loop `genre train` runs) with the defaults."""
    torch.manual_seed(0)
    model = build(Architecture("merged", GENRES)).to(device)
    run = Run(model, torch.optim.Adam(model.parameters()), torch.Generator(), RunState(), {})
    ts = dataclasses.replace(TrainingSettings(), epochs=1)
    events: list[Event] = []
    fit(run, data, val, ts, device, None, events.append, threading.Event(), lambda r: None)
    return next(e for e in events if isinstance(e, EpochEnd))


def inference(data: Tensors, device: torch.device) -> float:
    model = build(Architecture("merged", GENRES)).to(device)
    started = time.perf_counter()
    predict_logits(model, data, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(data) / (time.perf_counter() - started)


def cpu(chunks: int, estimate_chunks: int) -> None:
    cpu = torch.device("cpu")
    data = synthetic(chunks)
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        epoch = one_epoch(data, None, cpu)
        rows.append((threads, epoch.chunks_per_s, inference(data, cpu), epoch.seconds))
    print(f"CPU, merged model, {chunks} chunks of 30 s, batch 50 ({torch.__version__})")
    print(f"{'threads':>7} {'train chunks/s':>15} {'infer chunks/s':>15} {'epoch s':>8}")
    for threads, train_rate, infer_rate, seconds in rows:
        print(f"{threads:>7} {train_rate:>15.1f} {infer_rate:>15.1f} {seconds:>8.1f}")

    best = max(rows, key=lambda r: r[1])[0]
    torch.set_num_threads(best)
    fit_chunks = round(estimate_chunks * 0.85)  # the rest is the default 15% validation share
    epoch = one_epoch(synthetic(fit_chunks), synthetic(estimate_chunks - fit_chunks, seed=1), cpu)
    total = TrainingSettings().epochs * epoch.seconds
    verdict = "under" if total < 15 * 60 else "OVER"
    print(
        f"\ndefaults on {estimate_chunks} training chunks ({fit_chunks} fit + "
        f"{estimate_chunks - fit_chunks} validation), {best} thread(s): {epoch.seconds:.1f} s/epoch, "
        f"at most {TrainingSettings().epochs} epochs = {total / 60:.1f} min ({verdict} the 15 min target)"
    )


def cuda(chunks: int) -> None:
    device = torch.device("cuda")
    data = synthetic(chunks).to(device)
    one_epoch(synthetic(200).to(device), None, device)  # warm-up: cuDNN plans, allocator
    torch.cuda.reset_peak_memory_stats(device)
    torch.cuda.synchronize()
    epoch = one_epoch(data, None, device)
    model = build(Architecture("merged", GENRES)).to(device)
    print(f"\nCUDA: {torch.cuda.get_device_name(device)}, bf16 autocast, {chunks} chunks, batch 50")
    print(f"  train: {epoch.seconds:.2f} s/epoch ({epoch.chunks_per_s:.0f} chunks/s)")
    print(f"  infer: {inference(data, device):.0f} chunks/s")
    print(
        f"  proof: parameters on {next(model.parameters()).device}, data on {data.mfcc.device}, "
        f"peak GPU memory during the epoch {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--chunks", type=int, default=1000, help="CPU chunks (GTZAN: 1000)")
    parser.add_argument("--estimate-chunks", type=int, default=500, help="chunks for the time estimate")
    parser.add_argument("--cuda-chunks", type=int, default=10000, help="chunks for the GPU epoch")
    args = parser.parse_args()
    cpu(args.chunks, args.estimate_chunks)
    if torch.cuda.is_available():
        cuda(args.cuda_chunks)
    else:
        print("\nCUDA: no GPU visible to torch, skipped")


if __name__ == "__main__":
    main()
