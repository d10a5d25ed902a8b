"""One training run in memory: what an epoch needs, and what a checkpoint saves."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .augment import Augment
from .card import Calibration, Count, EpochStats
from .device import autocast
from .tensors import Tensors


@dataclass
class RunState:
    """The counters of a run; with weights, optimizer and RNG states, enough to continue it."""

    epoch: int = 0  # epochs completed
    best_epoch: int = 0
    best_loss: float | None = None
    bad_epochs: int = 0  # epochs since the validation loss last improved
    stopped: str = ""  # "" while resumable; epochs | early-stop
    history: list[EpochStats] = field(default_factory=list)


@dataclass
class Trained:
    """A member's finished (or stopped) run before it is scored on the test split: what the card
    says of it, and what an interrupted ensemble keeps of its finished members."""

    seed: int
    epochs_run: int
    best_epoch: int
    stopped: str  # epochs | early-stop | cancelled
    seconds: float
    fit: Count
    validation: Count
    history: list[EpochStats]
    calibration: Calibration | None = None
    threads: int | None = None
    class_weights: list[float] | None = None


@dataclass
class Run:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    shuffle: torch.Generator
    state: RunState
    best: dict[str, torch.Tensor]  # CPU copy of the best epoch's weights


def step(
    run: Run,
    data: Tensors,
    idx: torch.Tensor,
    device: torch.device,
    weight: torch.Tensor | None,
    augment: Augment | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on the chunks `idx` (augmented when given); returns (summed loss,
    correct predictions) as tensors on the device, so a GPU need not wait after every batch."""
    mfcc, contrast = data.mfcc[idx].to(device), data.contrast[idx].to(device)
    labels, valid = data.labels[idx].to(device), data.valid(idx).to(device)
    if augment is not None:
        mfcc, contrast = augment(mfcc, contrast, valid, run.shuffle)
    with autocast(device):
        logits = run.model(mfcc, contrast, valid)
    loss = F.cross_entropy(logits.float(), labels, weight=weight)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    return loss.detach() * len(idx), (logits.argmax(1) == labels).sum()
