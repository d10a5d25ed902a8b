"""Data-parallel training under torchrun: one process per device, gradients all-reduced by DDP.

torchrun starts the processes and sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous; `joined`
turns that into a process group (NCCL on GPUs, gloo on CPUs). Every rank runs train.py's loop on
its share (a DistributedSampler) of the epoch's shuffled order, which every rank draws alike
from the run's shuffle generator; that is why a checkpoint of a distributed run resumes with any
number of processes. Validation and the final evaluation run on every rank with the same
weights, so every rank computes what rank 0 reports; rank 0 alone claims the model folder and
writes the checkpoint and the card. Without torchrun everything here is a no-op.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None  # gloo | nccl; None for one process

    @property
    def main(self) -> bool:
        return self.rank == 0


_world = World()


def current() -> World:
    return _world


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextlib.contextmanager
def joined(device_setting: str) -> Iterator[World]:
    """Join torchrun's process group for the block (a world of one when not under torchrun)."""
    global _world
    if not launched():
        yield _world
        return
    local = int(os.environ["LOCAL_RANK"])
    cuda = device_setting != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend)
    _world = World(dist.get_rank(), dist.get_world_size(), local, backend)
    try:
        yield _world
    finally:
        _world = World()
        dist.destroy_process_group()


def cpu_threads() -> int:
    """Torch threads per process when the setting says 'measure': the cores shared out."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def agree(text: str) -> str:
    """Rank 0's `text` on every rank (a default model name holds the time of day)."""
    if _world.size == 1:
        return text
    size = torch.tensor([len(text.encode())], dtype=torch.int64, device=_device())
    dist.broadcast(size, 0)
    buf = torch.zeros(int(size), dtype=torch.uint8, device=_device())
    if _world.main:
        buf.copy_(torch.frombuffer(bytearray(text.encode()), dtype=torch.uint8))
    dist.broadcast(buf, 0)
    return bytes(buf.cpu().tolist()).decode()


def main_only(cm: AbstractContextManager[Any]) -> AbstractContextManager[Any]:
    """`cm` on rank 0, nothing on the others (the model folder is claimed once)."""
    return cm if _world.main else contextlib.nullcontext()


class _DDP(nn.parallel.DistributedDataParallel):
    """DDP whose state dict is the wrapped model's, so checkpoints and cards read the same with
    and without it (no `module.` prefix)."""

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        return self.module.load_state_dict(state_dict, strict, assign)


def wrap(model: nn.Module) -> nn.Module:
    """The model behind DDP in a distributed run (DDP broadcasts rank 0's weights first). The
    models hold no buffers (no batch norm), so DDP's buffer syncing, left at its default, moves
    nothing; naming it (`broadcast_buffers`) only earns a FutureWarning from torch >= 2.13."""
    if _world.size == 1:
        return model
    ids = [_world.local_rank] if _world.backend == "nccl" else None
    return _DDP(model, device_ids=ids)


def shard(order: torch.Tensor) -> torch.Tensor:
    """This rank's part of the epoch's order; every rank gets as many chunks (a few repeat)."""
    if _world.size == 1:
        return order
    from torch.utils.data import DistributedSampler, TensorDataset

    positions = TensorDataset(torch.arange(len(order)))
    sampler: DistributedSampler = DistributedSampler(positions, _world.size, _world.rank, shuffle=False)
    return order[torch.tensor(list(sampler), dtype=torch.int64)]


def stop(cancel: threading.Event) -> bool:
    """Whether any rank was asked to stop: all ranks stop at the same batch, or DDP would hang."""
    if _world.size == 1:
        return cancel.is_set()
    flag = torch.tensor([1.0 if cancel.is_set() else 0.0], device=_device())
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def totals(loss: torch.Tensor, correct: torch.Tensor, seen: int) -> tuple[float, float, int]:
    """An epoch's summed loss, correct predictions and chunks over all ranks."""
    if _world.size == 1:
        return float(loss), float(correct), seen
    t = torch.stack([loss.float(), correct.float(), torch.tensor(float(seen), device=loss.device)])
    t = t.to(_device())
    dist.all_reduce(t)
    return float(t[0]), float(t[1]), int(t[2])


def same_weights(model: nn.Module) -> str | None:
    """A line saying every rank holds identical weights; a mismatch is a bug and raises."""
    if _world.size == 1:
        return None
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    mine = torch.frombuffer(bytearray(h.digest()), dtype=torch.uint8).to(_device())
    every = [torch.zeros_like(mine) for _ in range(_world.size)]
    dist.all_gather(every, mine)
    if any(not torch.equal(every[0], other) for other in every[1:]):
        raise RuntimeError("the ranks' weights differ after training (a DDP bug)")
    return f"weights identical on all {_world.size} ranks (sha256 {h.hexdigest()[:12]})"


def _device() -> torch.device:
    return torch.device("cuda", _world.local_rank) if _world.backend == "nccl" else torch.device("cpu")


def launch(nproc: int, args: list[str]) -> int:
    """`genre train --nproc N ...`: torchrun with N processes on this machine running
    `python -m genre_erkennung train ...`; returns its exit code."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    cmd += ["-m", "genre_erkennung", "train", *args]
    try:
        return subprocess.run(cmd, check=False).returncode
    except KeyboardInterrupt:
        return 130
