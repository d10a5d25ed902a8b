"""Training: Adam, cross-entropy, early stopping on validation loss, resumable; then evaluation.

The test split is touched only by the final evaluation: early stopping watches a share of the
TRAINING songs, split by song. On the CPU a run is repeatable for a given seed and thread count,
and a resumed run continues exactly where the stopped one left off: weights, optimizer, RNG
states and counters all go into the checkpoint after every epoch (see checkpoint.py; what a run
trains on is planned in plan.py). An ensemble (`training.ensemble`) trains its members one after
another, each on its own seed and validation songs, keeps each finished member beside the
checkpoint, and is scored and saved as one model whose output averages the members'.
"""

from __future__ import annotations

import dataclasses
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
    Ensemble,
    EpochStats,
    Features,
    Inputs,
    Member,
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
from .events import EpochEnd, Event, JobFinished, JobStarted, Message, Reporter, ignore
from .metrics import Metrics, baseline, class_weights, evaluate
from .model import EnsembleNet, build, check_frames
from .pretrained.headcard import HEAD_KINDS
from .run import Run, RunState, Trained, step
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
    if head and settings.training.ensemble > 1:
        raise GenreError(
            f"an ensemble is for the merged, mfcc and contrast networks, not {settings.training.model}: "
            "set training.ensemble = 1"
        )
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
    if ts.ensemble > 1 and world.size > 1:
        raise GenreError("an ensemble trains its members one after another in one process: drop --nproc")
    check_frames(data.frames)
    for path, reason in data.skipped:
        report(Message(f"skipped {path}: {reason}", "warning"))
    members, threads = list(p.done), None
    report(JobStarted("train", ts.epochs))
    for m in range(p.member, ts.ensemble):
        if m > p.member:
            p = plan.next_member(p, dataset, m)
        if ts.ensemble > 1:
            report(Message(f"ensemble member {m + 1} of {ts.ensemble} (seed {p.seed})"))
        weights, trained = _fit_member(p, dataset.fingerprint, device, threads, report, cancel)
        members.append((weights, trained))
        threads = trained.threads
        if trained.stopped == "cancelled":
            break
        if ts.ensemble > 1 and world.main:
            checkpoint.save_member(p.folder, m, weights, trained)
    report(JobFinished("train", cancelled=members[-1][1].stopped == "cancelled"))
    card, module, metrics, base = _card(p, dataset, members, device, time.perf_counter() - started)
    folder = registry.save(workspace, module, card) if world.main else p.folder
    return TrainResult(p.name, folder, card, metrics, base, card.history, card.training.stopped)


def _fit_member(
    p: plan.Plan,
    fingerprint: str,
    device: torch.device,
    threads: int | None,
    report: Reporter,
    cancel: threading.Event,
) -> plan.Finished:
    """Train one network of the plan (a whole model, or one ensemble member) and calibrate it on
    its validation songs; returns its best weights and its run."""
    started = time.perf_counter()
    ts, data, world = p.ts, p.data, distributed.current()
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
        "fingerprint": fingerprint,
        "feature_key": p.store.key,
        "member": p.member,
        "split": {
            "fit": [data.train.song_keys[i] for i in p.fit_ids],
            "val": [data.train.song_keys[i] for i in p.val_ids],
        },
    }
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), kept():
        measured = ts if threads is None else dataclasses.replace(ts, threads=threads)  # once a run
        threads = choose_threads(p.arch, fit_data, measured, device, weight, report)
        torch.manual_seed(p.seed)
        model = build(p.arch).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=ts.learning_rate)
        run = Run(model, optimizer, torch.Generator().manual_seed(p.seed), RunState(), {})
        if p.checkpoint is not None:
            checkpoint.restore(run, *p.checkpoint, device)
            if ts.ensemble == 1 or run.state.stopped not in ("epochs", "early-stop"):
                run.state.stopped = ""  # else a member that ran its course, only to be kept
        run.model = distributed.wrap(model)
        parts = [fit_data, *([val_data] if val_data is not None else [])]
        fit_data, *val_placed = place(parts, device, report)
        val_data = val_placed[0] if val_placed else None
        w = None if weight is None else weight.to(device)

        def save(r: Run) -> None:
            if world.main:
                checkpoint.save(p.folder, r, device, static)

        def tagged(event: Event) -> None:  # an epoch says which member it belongs to
            if isinstance(event, EpochEnd):
                event = dataclasses.replace(event, member=p.member, members=ts.ensemble)
            report(event)

        stopped = run.state.stopped
        if not stopped:
            augment = Augment.from_settings(ts, data.norm)
            stopped = fit(run, fit_data, val_data, ts, device, w, tagged, cancel, save, augment)
        if run.state.epoch == 0:
            raise Cancelled("training stopped before its first epoch ended; nothing was saved")
        if same := distributed.same_weights(model):
            report(Message(same))
        model.load_state_dict(run.best)
        calibration = None
        if val_data is not None and len(val_data):
            calibration = fit_temperature(predict_logits(model, val_data, device), val_data.labels)
    s = run.state
    history = [dataclasses.replace(h, member=p.member) for h in s.history] if ts.ensemble > 1 else s.history
    trained = Trained(
        seed=p.seed,
        epochs_run=s.epoch,
        best_epoch=s.best_epoch,
        stopped=stopped,
        seconds=round(time.perf_counter() - started, 2),
        fit=Count(len(p.fit_ids), len(fit_data)),
        validation=Count(len(p.val_ids), 0 if val_data is None else len(val_data)),
        history=history,
        calibration=calibration,
        threads=threads,
        class_weights=None if weight is None else [float(x) for x in weight],
    )
    return run.best, trained


def _card(
    p: plan.Plan, dataset: Dataset, members: list[plan.Finished], device: torch.device, seconds: float
) -> tuple[ModelCard, nn.Module, Metrics, Metrics]:
    """Score each member and their mean on the test split; the card and the module to save."""
    ts, data, world = p.ts, p.data, distributed.current()
    (test_data,) = place([data.test], device, ignore)
    songs, labels = data.test.songs.numpy(), data.test.labels.numpy()
    networks, probs = [], []
    for weights, trained in members:
        model = build(p.arch)
        model.load_state_dict(weights)
        t = trained.calibration.temperature if trained.calibration else 1.0
        probs.append(torch.softmax(predict_logits(model.to(device), test_data, device) / t, dim=1).numpy())
        networks.append(model.cpu())
    metrics = evaluate(np.mean(probs, axis=0), labels, songs, data.genres)
    base = baseline(data.train, data.test, data.genres, ts.balance)
    runs = [trained for _, trained in members]
    ensemble = None
    if ts.ensemble > 1:
        ensemble = Ensemble(
            [
                Member(
                    t.seed,
                    t.epochs_run,
                    t.best_epoch,
                    t.stopped,
                    t.seconds,
                    t.validation,
                    decode(Scores, evaluate(pr, labels, songs, data.genres).to_json(), "member"),
                    t.calibration,
                )
                for t, pr in zip(runs, probs, strict=True)
            ]
        )
    last = runs[-1]
    cancelled = last.stopped == "cancelled" or len(runs) < ts.ensemble
    stops = {t.stopped for t in runs}
    stopped = "cancelled" if cancelled else stops.pop() if len(stops) == 1 else "epochs"
    card = ModelCard(
        name=p.name,
        status="stopped" if cancelled else "complete",
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
            threads=last.threads,
            epochs_run=sum(t.epochs_run for t in runs),
            best_epoch=last.best_epoch if ensemble is None else 0,
            stopped=stopped,
            seconds=round(seconds, 2),
            fit=last.fit,
            validation=last.validation,
            class_weights=last.class_weights,
            distributed=Distributed(world.size, world.backend) if world.backend else None,
        ),
        history=[h for t in runs for h in t.history],
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
        calibration=last.calibration if ensemble is None else None,
        ensemble=ensemble,
    )
    module = networks[0] if ensemble is None else EnsembleNet(networks, ensemble.temperatures)
    return card, module, metrics, base


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
