"""Where tensor math runs: one rule for features, training and queries.

`auto` takes CUDA when torch sees a GPU, else the CPU; `cuda` without a GPU is an error that
names the setting, so a user never trains for an hour on the CPU by surprise. torch is imported
by the functions that need it, so that `feature_device` can answer "cpu" without it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ToolMissing
from .events import Message, Reporter

if TYPE_CHECKING:
    import torch

    from .tensors import Tensors


def cuda_visible() -> bool:
    """Whether a CUDA GPU may be usable, found without importing torch (2 s of CPU).

    The rule: torch is installed, and an NVIDIA driver is there: /proc/driver/nvidia (Linux, also
    inside containers given the GPU), /dev/dxg (WSL) or nvcuda.dll (Windows). True promises no
    GPU (a CPU build of torch sees none: torch then decides); False means there is none to ask for.
    """
    if importlib.util.find_spec("torch") is None:
        return False
    if sys.platform == "win32":
        return (Path(os.environ.get("SYSTEMROOT", r"C:\Windows")) / "System32" / "nvcuda.dll").exists()
    return Path("/proc/driver/nvidia").exists() or Path("/dev/dxg").exists()


def feature_device(setting: str) -> str:
    """Where the native feature math runs ("cpu" or "cuda") for features.device (auto | cpu |
    cuda): "cpu", and "auto" without a visible GPU, answer without importing torch; the rest
    is `pick_device`'s rule."""
    if setting == "cpu" or (setting == "auto" and not cuda_visible()):
        return "cpu"
    return pick_device(setting, "features.device").type


def pick_device(setting: str, key: str = "training.device") -> torch.device:
    """The device for `setting` (auto | cpu | cuda), read from config key `key`."""
    import torch

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
        import torch

        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe(device: torch.device) -> str:
    if device.type != "cuda":
        return str(device)
    import torch

    return f"{device} ({torch.cuda.get_device_name(device)})"


def place(parts: list[Tensors], device: torch.device, report: Reporter) -> list[Tensors]:
    """Keep the data on the GPU when it fits in half the free memory; else batches travel."""
    if device.type != "cuda":
        return parts
    import torch

    need = sum(p.nbytes() for p in parts)
    free, _ = torch.cuda.mem_get_info(device)
    if need < free // 2:
        return [p.to(device) for p in parts]
    report(Message(f"data ({need / 2**30:.1f} GiB) stays in RAM; batches are copied to the GPU"))
    return parts
