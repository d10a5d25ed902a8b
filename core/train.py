"""Training: Adam, cross-entropy, early stopping on validation loss, resumable; then evaluation.

The test split is touched only by the final evaluation: early stopping watches a share of the
TRAINING songs, split by song. On the CPU a run is repeatable for a given seed and thread count,
and a resumed run continues exactly where the stopped one left off: weights, optimizer, RNG
states and counters all go into the checkpoint after every epoch (see checkpoint.py; what a run
trains on is planned in plan.py).
"""

from __future__ import annotations

import math
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint, distributed, plan, registry
from .augment import Augment
from .calibrate import fit_temperature
from .card import (
    FORMAT_VERSION,
    Count,
    DatasetInfo,
    Distributed,
    EpochStats,
    Features,
    Inputs,
    ModelCard,
    Scores,
    Skipped,
    TrainingRun,
    decode,
)
from .config import Settings, TrainingSettings
from .dataset import Dataset
from .device import autocast, pick_device, place
from .errors import Cancelled, GenreError
from .events import EpochEnd, JobFinished, JobStarted, Message, Reporter, ignore
from .metrics import Metrics, baseline, class_weights, evaluate
from .model import build, check_frames
from .pretrained.headcard import HEAD_KINDS
from .run import Run, RunState, step
from .store import FeatureStore, config_key
from .tensors import Tensors
from .threads import choose_threads, kept
from .workspace import Workspace


@dataclass
class TrainResult:
    name: str
    path: Path
    card: ModelCard
    metrics: Metrics
    baseline: Metrics
    history: list[EpochStats]
    stopped: str  # epochs | early-stop | cancelled


@torch.no_grad()
def predict_logits(model: nn.Module, data: Tensors, device: torch.device, batch: int = 256) -> torch.Tensor:
    """Logits [N, genres] on the CPU, in eval mode (no dropout)."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(data), batch):
        part = slice(start, start + batch)
        mfcc, contrast = data.mfcc[part].to(device), data.contrast[part].to(device)
        with autocast(device):
            out.append(model(mfcc, contrast, data.valid(part).to(device)).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 0)


def _loss_accuracy(
    logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None
) -> tuple[float, float]:
    labels = labels.cpu()
    w = None if weight is None else weight.cpu()
    loss = float(F.cross_entropy(logits, labels, weight=w))
    return loss, float((logits.argmax(1) == labels).float().mean())


def fit(
    run: Run,
    fit_data: Tensors,
    val_data: Tensors | None,
    ts: TrainingSettings,
    device: torch.device,
    weight: torch.Tensor | None,
    report: Reporter,
    cancel: threading.Event,
    save: Callable[[Run], None],
    augment: Augment | None = None,
) -> str:
    """Train until `ts.epochs`, early stopping or cancel; `save(run)` after every epoch.

    Returns why it stopped: epochs | early-stop | cancelled. A cancel stops after the current
    batch; the unfinished epoch is dropped (the checkpoint holds the state before it).
    """
    s = run.state
    for epoch in range(s.epoch + 1, ts.epochs + 1):
        started = time.perf_counter()
        run.model.train()
        order = torch.randperm(len(fit_data), generator=run.shuffle)
        order = distributed.shard(order).to(fit_data.labels.device)
        total_loss, correct = torch.zeros((), device=device), torch.zeros((), device=device)
        for idx in order.split(ts.batch_size):
            if distributed.stop(cancel):
                return "cancelled"
            batch_loss, batch_correct = step(run, fit_data, idx, device, weight, augment)
            total_loss, correct = total_loss + batch_loss, correct + batch_correct
        total, right, seen = distributed.totals(total_loss, correct, len(order))  # syncs a GPU
        loss, accuracy = total / seen, right / seen
        train_seconds = time.perf_counter() - started
        val_loss = val_acc = None
        if val_data is not None and len(val_data):
            logits = predict_logits(run.model, val_data, device, max(ts.batch_size, 256))
            val_loss, val_acc = _loss_accuracy(logits, val_data.labels, weight)
        # Without validation songs the newest epoch counts as the best one.
        # best_loss holds the watched score: the validation loss, or minus the accuracy.
        score = val_loss if ts.early_stop == "loss" or val_acc is None else -val_acc
        improved = score is None or s.best_loss is None or score < s.best_loss
        if improved:
            s.best_epoch, s.best_loss, s.bad_epochs = epoch, score, 0
            run.best = {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()}
        else:
            s.bad_epochs += 1
        s.epoch = epoch
        if s.bad_epochs >= ts.patience:
            s.stopped = "early-stop"
        elif epoch == ts.epochs:
            s.stopped = "epochs"
        seconds = time.perf_counter() - started
        stats = EpochStats(epoch, loss, accuracy, val_loss, val_acc, seconds, seen / train_seconds, improved)
        s.history.append(stats)
        save(run)
        nan = math.nan
        report(
            EpochEnd(
                epoch,
                ts.epochs,
                loss,
                accuracy,
                nan if val_loss is None else val_loss,
                nan if val_acc is None else val_acc,
                seconds,
                stats.chunks_per_s,
                improved,
            )
        )
        if s.stopped:
            return s.stopped
        if distributed.stop(cancel):
            return "cancelled"
    return s.stopped or "epochs"


def train(
    dataset: Dataset,
    settings: Settings,
    workspace: Workspace,
    *,
    store: FeatureStore | None = None,
    name: str | None = None,
    resume: bool = False,
    epochs: int | None = None,
    report: Reporter = ignore,
    cancel: threading.Event | None = None,
) -> TrainResult:
    """Train a model on the dataset's stored features, evaluate it on the test split, save it.

    `resume` continues the stopped run `name` (default: the newest one) with its own settings
    and feature store; only `device`, `threads` and, when given, `epochs` (the new total) come
    from the caller.
    A cancelled run still saves its best epoch so far and stays resumable. The model folder is
    claimed for the whole run: a second run of the same name is refused, never overwritten.
    """
    head = settings.training.model in HEAD_KINDS  # linear/mlp on musicnn embeddings
    if head and resume:
        raise GenreError("linear and mlp models train in seconds and are not resumable: train anew")
    if resume:
        name = registry.check_name(name) if name else plan.stopped_run(workspace)
    else:
        name = registry.check_name(name) if name else plan.default_name(workspace, settings.training.model)
    name = distributed.agree(name)  # under torchrun: rank 0's, and rank 0 alone claims the folder
    with distributed.main_only(registry.claim(workspace, name, fresh=not resume)):
        if head:
            from .pretrained.head import train_head

            return train_head(dataset, settings, workspace, name, store=store, report=report, cancel=cancel)
        started = time.perf_counter()
        device = pick_device(settings.training.device)
        if resume:
            p = plan.resume(dataset, settings, workspace, store, name, epochs)
        else:
            store = store or FeatureStore(workspace.features, config_key(settings))
            p = plan.fresh(dataset, settings, workspace, store, name)
        return _run(p, dataset, workspace, device, report, cancel or threading.Event(), started)


def _run(
    p: plan.Plan,
    dataset: Dataset,
    workspace: Workspace,
    device: torch.device,
    report: Reporter,
    cancel: threading.Event,
    started: float,
) -> TrainResult:
    ts, data, world = p.ts, p.data, distributed.current()
    check_frames(data.frames)
    for path, reason in data.skipped:
        report(Message(f"skipped {path}: {reason}", "warning"))
    fit_data = data.train.select(p.fit_ids)
    val_data = data.train.select(p.val_ids) if p.val_ids else None
    weight = class_weights(fit_data.labels, len(data.genres), ts.balance)
    static = {
        "format_version": FORMAT_VERSION,
        "name": p.name,
        "settings": asdict(ts),
        "architecture": asdict(p.arch),
        "genres": data.genres,
        "norm": data.norm.to_json(),
        "frames": list(data.frames),
        "fingerprint": dataset.fingerprint,
        "feature_key": p.store.key,
        "split": {
            "fit": [data.train.song_keys[i] for i in p.fit_ids],
            "val": [data.train.song_keys[i] for i in p.val_ids],
        },
    }
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), kept():
        threads = choose_threads(p.arch, fit_data, ts, device, weight, report)
        torch.manual_seed(ts.seed)
        model = build(p.arch).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=ts.learning_rate)
        run = Run(model, optimizer, torch.Generator().manual_seed(ts.seed), RunState(), {})
        if p.checkpoint is not None:
            checkpoint.restore(run, *p.checkpoint, device)
            run.state.stopped = ""
        run.model = distributed.wrap(model)
        parts = [fit_data, data.test, *([val_data] if val_data is not None else [])]
        fit_data, test_data, *val_placed = place(parts, device, report)
        val_data = val_placed[0] if val_placed else None
        w = None if weight is None else weight.to(device)
        report(JobStarted("train", ts.epochs))

        def save(r: Run) -> None:
            if world.main:
                checkpoint.save(p.folder, r, device, static)

        augment = Augment.from_settings(ts, data.norm)
        stopped = fit(run, fit_data, val_data, ts, device, w, report, cancel, save, augment)
        report(JobFinished("train", cancelled=stopped == "cancelled"))
        if run.state.epoch == 0:
            raise Cancelled("training stopped before its first epoch ended; nothing was saved")
        if same := distributed.same_weights(model):
            report(Message(same))
        model.load_state_dict(run.best)
        calibration = None
        if val_data is not None and len(val_data):
            calibration = fit_temperature(predict_logits(model, val_data, device), val_data.labels)
        t = calibration.temperature if calibration else 1.0
        probs = torch.softmax(predict_logits(model, test_data, device) / t, dim=1).numpy()
    metrics = evaluate(probs, data.test.labels.numpy(), data.test.songs.numpy(), data.genres)
    base = baseline(data.train, data.test, data.genres, ts.balance)
    s = run.state
    card = ModelCard(
        name=p.name,
        status="complete" if stopped in ("epochs", "early-stop") else "stopped",
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        architecture=p.arch,
        genres=data.genres,
        features=Features(p.features.get("backend"), p.store.key, p.features),
        input=Inputs(data.frames),
        normalisation=data.norm,
        settings=ts,
        training=TrainingRun(
            device=str(device),
            gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            threads=threads,
            epochs_run=s.epoch,
            best_epoch=s.best_epoch,
            stopped=stopped,
            seconds=round(time.perf_counter() - started, 2),
            fit=Count(len(p.fit_ids), len(fit_data)),
            validation=Count(len(p.val_ids), 0 if val_data is None else len(val_data)),
            class_weights=None if weight is None else [float(x) for x in weight],
            distributed=Distributed(world.size, world.backend) if world.backend else None,
        ),
        history=s.history,
        metrics=decode(Scores, metrics.to_json(), "metrics"),
        baseline=decode(Scores, base.to_json(), "baseline"),
        dataset=DatasetInfo(
            root=str(dataset.root),
            fingerprint=dataset.fingerprint,
            train=Count(len(data.train.song_keys), len(data.train)),
            test=Count(len(data.test.song_keys), len(data.test)),
            skipped=[Skipped(path, reason) for path, reason in data.skipped],
        ),
        versions=_versions(),
        calibration=calibration,
    )
    folder = registry.save(workspace, model.cpu(), card) if world.main else p.folder
    return TrainResult(p.name, folder, card, metrics, base, s.history, stopped)


def _versions() -> dict[str, str]:
    try:
        own = metadata.version("genre-erkennung")
    except metadata.PackageNotFoundError:
        own = "unknown"
    return {
        "genre_erkennung": own,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
