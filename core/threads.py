"""How many CPU threads training gets: measured, because small LSTMs often run faster on one."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import torch

from .card import Architecture
from .config import TrainingSettings
from .device import describe
from .events import Message, Reporter
from .model import build
from .run import Run, RunState, step
from .tensors import Tensors


@contextlib.contextmanager
def kept() -> Iterator[None]:
    """Restore torch's thread count afterwards: it is process-wide state."""
    before = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure_threads(
    arch: Architecture, data: Tensors, batch_size: int, weight: torch.Tensor | None
) -> tuple[int, dict[int, float]]:
    """Seconds per training step with 1 and 2 threads.

    Uses a throwaway model, so the real run's weights and RNG stream are untouched (the caller
    seeds after this).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (cores or 1) < 2:
        return 1, {}
    model = build(arch)
    run = Run(model, torch.optim.Adam(model.parameters()), torch.Generator(), RunState(), {})
    idx = torch.arange(min(batch_size, len(data)))
    cpu = torch.device("cpu")
    times: dict[int, float] = {}
    for n in (1, 2):
        torch.set_num_threads(n)
        started = time.perf_counter()
        step(run, data, idx, cpu, weight)  # warm-up: allocations, oneDNN kernel choice
        warm_up = time.perf_counter() - started
        if n == 2 and warm_up > 2 * times[1]:
            times[n] = warm_up  # clearly slower already: not worth a timed step on a busy machine
            break
        started = time.perf_counter()
        step(run, data, idx, cpu, weight)
        times[n] = time.perf_counter() - started
    return min(times, key=lambda n: times[n]), times


def choose_threads(
    arch: Architecture,
    data: Tensors,
    ts: TrainingSettings,
    device: torch.device,
    weight: torch.Tensor | None,
    report: Reporter,
) -> int | None:
    """Set torch's CPU threads (measured when the setting is 0) and say where training runs."""
    if device.type == "cuda":
        report(Message(f"training on {describe(device)} with bf16 autocast"))
        return None
    if ts.threads:
        torch.set_num_threads(ts.threads)
        report(Message(f"training on cpu with {ts.threads} thread(s)"))
        return ts.threads
    best, times = measure_threads(arch, data, ts.batch_size, weight)
    torch.set_num_threads(best)
    measured = ", ".join(f"{n}: {t:.3f} s/step" for n, t in times.items())
    report(Message(f"training on cpu with {best} thread(s)" + (f" (measured {measured})" if times else "")))
    return best
