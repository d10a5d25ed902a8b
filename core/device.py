"""Where tensor math runs: one rule for features, training and queries.

`auto` takes CUDA when torch sees a GPU, else the CPU; `cuda` without a GPU is an error that
names the setting, so a user never trains for an hour on the CPU by surprise.
"""

from __future__ import annotations

import contextlib

import torch

from .errors import ToolMissing
from .events import Message, Reporter
from .tensors import Tensors


def pick_device(setting: str, key: str = "training.device") -> torch.device:
    """The device for `setting` (auto | cpu | cuda), read from config key `key`."""
    if setting == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else "sees no GPU"
        raise ToolMissing(
            f"{key} = cuda, but no CUDA GPU is available (torch {torch.__version__} is {build}): "
            f"set {key} to auto or cpu"
        )
    return torch.device("cuda" if setting != "cpu" and torch.cuda.is_available() else "cpu")


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on a GPU (about twice the LSTM throughput); full precision on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe(device: torch.device) -> str:
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


def place(parts: list[Tensors], device: torch.device, report: Reporter) -> list[Tensors]:
    """Keep the data on the GPU when it fits in half the free memory; else batches travel."""
    if device.type != "cuda":
        return parts
    need = sum(p.nbytes() for p in parts)
    free, _ = torch.cuda.mem_get_info(device)
    if need < free // 2:
        return [p.to(device) for p in parts]
    report(Message(f"data ({need / 2**30:.1f} GiB) stays in RAM; batches are copied to the GPU"))
    return parts
