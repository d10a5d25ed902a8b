"""Training: Adam, cross-entropy, early stopping on validation loss, resumable; then evaluation.

The test split is touched only by the final evaluation: early stopping watches a share of the
TRAINING songs, split by song. On the CPU a run is repeatable for a given seed and thread count,
and a resumed run continues exactly where the stopped one left off: weights, optimizer, RNG
states and counters all go into the checkpoint after every epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import Settings, TrainingSettings, as_dict
from .dataset import Dataset
from .errors import Cancelled, GenreError
from .events import EpochEnd, JobFinished, JobStarted, Message, Reporter, ignore
from .metrics import Metrics, baseline, class_weights, evaluate
from .model import Architecture, Sizes, build, check_frames
from .registry import (
    FORMAT_VERSION,
    check_name,
    claim,
    list_models,
    load_checkpoint,
    model_dir,
    save,
    save_checkpoint,
)
from .store import FeatureStore, config_key, feature_config
from .tensors import Norm, Tensors, TrainingData, load_dataset, validation_split
from .workspace import Workspace


@dataclass
class EpochStats:
    epoch: int
    loss: float
    accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float
    chunks_per_s: float
    best: bool


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
class Run:
    """One training run in memory: what an epoch needs, and what a checkpoint saves."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    shuffle: torch.Generator
    state: RunState
    best: dict[str, torch.Tensor]  # CPU copy of the best epoch's weights


@dataclass
class TrainResult:
    name: str
    path: Path
    card: dict[str, Any]
    metrics: Metrics
    baseline: Metrics
    history: list[EpochStats]
    stopped: str  # epochs | early-stop | cancelled


def pick_device(setting: str) -> torch.device:
    """auto -> CUDA when torch sees a GPU, else CPU; cuda without a GPU is an error."""
    if setting == "cuda" and not torch.cuda.is_available():
        build_kind = "a CPU-only build" if torch.version.cuda is None else "sees no GPU"
        raise GenreError(
            f"training device cuda (--device or training.device): no CUDA GPU available (torch "
            f"{torch.__version__} is {build_kind}); use cpu or auto"
        )
    return torch.device("cuda" if setting != "cpu" and torch.cuda.is_available() else "cpu")


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _step(
    run: Run, data: Tensors, idx: torch.Tensor, device: torch.device, weight: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on the chunks `idx`; returns (summed loss, correct predictions) as
    tensors on the device, so a GPU is not made to wait for the host after every batch."""
    mfcc, contrast = data.mfcc[idx].to(device), data.contrast[idx].to(device)
    labels, valid = data.labels[idx].to(device), data.valid(idx).to(device)
    with _autocast(device):
        logits = run.model(mfcc, contrast, valid)
    loss = F.cross_entropy(logits.float(), labels, weight=weight)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    return loss.detach() * len(idx), (logits.argmax(1) == labels).sum()


@torch.no_grad()
def predict_logits(model: nn.Module, data: Tensors, device: torch.device, batch: int = 256) -> torch.Tensor:
    """Logits [N, genres] on the CPU, in eval mode (no dropout)."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(data), batch):
        part = slice(start, start + batch)
        mfcc, contrast = data.mfcc[part].to(device), data.contrast[part].to(device)
        with _autocast(device):
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
    checkpoint: Callable[[Run], None],
) -> str:
    """Train until `ts.epochs`, early stopping or cancel; `checkpoint(run)` after every epoch.

    Returns why it stopped: epochs | early-stop | cancelled. A cancel stops after the current
    batch; the unfinished epoch is dropped (the checkpoint holds the state before it).
    """
    s = run.state
    for epoch in range(s.epoch + 1, ts.epochs + 1):
        started = time.perf_counter()
        run.model.train()
        order = torch.randperm(len(fit_data), generator=run.shuffle).to(fit_data.labels.device)
        total_loss, correct = torch.zeros((), device=device), torch.zeros((), device=device)
        for idx in order.split(ts.batch_size):
            if cancel.is_set():
                return "cancelled"
            batch_loss, batch_correct = _step(run, fit_data, idx, device, weight)
            total_loss, correct = total_loss + batch_loss, correct + batch_correct
        loss, accuracy = float(total_loss) / len(order), float(correct) / len(order)  # syncs a GPU
        train_seconds = time.perf_counter() - started
        val_loss = val_acc = None
        if val_data is not None and len(val_data):
            logits = predict_logits(run.model, val_data, device, max(ts.batch_size, 256))
            val_loss, val_acc = _loss_accuracy(logits, val_data.labels, weight)
        # Without validation songs the newest epoch counts as the best one.
        improved = val_loss is None or s.best_loss is None or val_loss < s.best_loss
        if improved:
            s.best_epoch, s.best_loss, s.bad_epochs = epoch, val_loss, 0
            run.best = {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()}
        else:
            s.bad_epochs += 1
        s.epoch = epoch
        if s.bad_epochs >= ts.patience:
            s.stopped = "early-stop"
        elif epoch == ts.epochs:
            s.stopped = "epochs"
        stats = EpochStats(
            epoch,
            loss,
            accuracy,
            val_loss,
            val_acc,
            time.perf_counter() - started,
            len(order) / train_seconds,
            improved,
        )
        s.history.append(stats)
        checkpoint(run)
        report(
            EpochEnd(
                epoch,
                ts.epochs,
                stats.loss,
                stats.accuracy,
                math.nan if val_loss is None else val_loss,
                math.nan if val_acc is None else val_acc,
                stats.seconds,
                stats.chunks_per_s,
                improved,
            )
        )
        if s.stopped:
            return s.stopped
        if cancel.is_set():
            return "cancelled"
    return s.stopped or "epochs"


@contextlib.contextmanager
def _torch_threads() -> Iterator[None]:
    """Restore torch's thread count afterwards: it is process-wide state."""
    before = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure_threads(
    arch: Architecture, data: Tensors, batch_size: int, weight: torch.Tensor | None
) -> tuple[int, dict[int, float]]:
    """Seconds per training step with 1 and 2 threads; small LSTMs often run faster on one.

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
    times = {}
    for n in (1, 2):
        torch.set_num_threads(n)
        started = time.perf_counter()
        _step(run, data, idx, cpu, weight)  # warm-up: allocations, oneDNN kernel choice
        warm_up = time.perf_counter() - started
        if n == 2 and warm_up > 2 * times[1]:
            times[n] = warm_up  # clearly slower already: not worth a timed step on a busy machine
            break
        started = time.perf_counter()
        _step(run, data, idx, cpu, weight)
        times[n] = time.perf_counter() - started
    return min(times, key=lambda n: times[n]), times


def _place(parts: list[Tensors], device: torch.device, report: Reporter) -> list[Tensors]:
    """Keep the data on the GPU when it fits in half the free memory; else batches travel."""
    if device.type != "cuda":
        return parts
    need = sum(p.nbytes() for p in parts)
    free, _ = torch.cuda.mem_get_info(device)
    if need < free // 2:
        return [p.to(device) for p in parts]
    report(Message(f"data ({need / 2**30:.1f} GiB) stays in RAM; batches are copied to the GPU"))
    return parts


def _checkpoint_tensors(run: Run, device: torch.device) -> dict[str, torch.Tensor]:
    tensors = {f"model.{k}": v for k, v in run.model.state_dict().items()}
    tensors |= {f"best.{k}": v for k, v in run.best.items()}
    for i, slot in run.optimizer.state_dict()["state"].items():
        tensors |= {f"optim.{i}.{k}": v for k, v in slot.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.shuffle"] = run.shuffle.get_state()
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    return tensors


def _restore(run: Run, tensors: dict[str, torch.Tensor], meta: dict[str, Any], device: torch.device) -> None:
    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}

    run.model.load_state_dict(part("model."))
    run.best = part("best.")
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in part("optim.").items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = value
    run.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    run.shuffle.set_state(tensors["rng.shuffle"])
    if device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    s = meta["state"]
    run.state = RunState(
        s["epoch"],
        s["best_epoch"],
        s["best_loss"],
        s["bad_epochs"],
        s["stopped"],
        [EpochStats(**h) for h in s["history"]],
    )


def model_sizes(settings: Settings) -> Sizes:
    """Layer sizes from the config's [model] table (its fields are exactly those of Sizes)."""
    return Sizes(**as_dict(settings.model))


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


def _default_name(workspace: Workspace, kind: str) -> str:
    base = f"{kind}-{datetime.now():%Y%m%d-%H%M%S}"
    name, n = base, 1
    while model_dir(workspace, name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def _stopped_run(workspace: Workspace) -> str:
    stopped = [i for i in list_models(workspace) if i.status in ("stopped", "incomplete")]
    if not stopped:
        raise GenreError("no stopped training run to resume (see `genre models list`)")
    return stopped[-1].name


def _store_config(store: FeatureStore) -> dict[str, Any]:
    """The feature config a given store was made with (its manifest), for the model card."""
    try:
        return json.loads((store.folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@dataclass
class _Plan:
    """What a run trains on, fresh or resumed."""

    name: str
    folder: Path
    store: FeatureStore
    ts: TrainingSettings
    data: TrainingData
    fit_ids: list[int]
    val_ids: list[int]
    arch: Architecture
    checkpoint: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None


def _plan_fresh(
    dataset: Dataset, settings: Settings, workspace: Workspace, store: FeatureStore, name: str
) -> _Plan:
    ts = settings.training
    folder = model_dir(workspace, name)
    data = load_dataset(dataset, store)
    fit_ids, val_ids = validation_split(data.train, ts.validation_share, ts.seed)
    arch = Architecture(
        ts.model,
        len(data.genres),
        coeffs=int(data.train.mfcc.shape[2]),
        bands=int(data.train.contrast.shape[2]),
        sizes=model_sizes(settings),
    )
    return _Plan(name, folder, store, ts, data, fit_ids, val_ids, arch)


def _plan_resume(
    dataset: Dataset,
    settings: Settings,
    workspace: Workspace,
    store: FeatureStore | None,
    name: str,
    epochs: int | None,
) -> _Plan:
    """The stopped run's settings, split and statistics; features from the store it used."""
    folder = model_dir(workspace, name)
    tensors, meta = load_checkpoint(folder, name)
    store = store or FeatureStore(workspace.features, meta["feature_key"])
    ts = dataclasses.replace(
        TrainingSettings(**meta["settings"]),
        device=settings.training.device,
        threads=settings.training.threads,
        epochs=epochs or meta["settings"]["epochs"],
    )
    _check_resumable(name, meta, ts, dataset, store)
    norm, frames = Norm.from_json(meta["norm"]), (meta["frames"][0], meta["frames"][1])
    data = load_dataset(dataset, store, norm, frames, meta["genres"])
    val_keys = set(meta["split"]["val"])
    val_ids = [i for i, k in enumerate(data.train.song_keys) if k in val_keys]
    fit_ids = [i for i, k in enumerate(data.train.song_keys) if k not in val_keys]
    arch = Architecture.from_json(meta["architecture"])
    return _Plan(name, folder, store, ts, data, fit_ids, val_ids, arch, (tensors, meta))


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
    if resume:
        name = check_name(name) if name else _stopped_run(workspace)
    else:
        name = check_name(name) if name else _default_name(workspace, settings.training.model)
    with claim(workspace, name, fresh=not resume):
        return _train(dataset, settings, workspace, store, name, resume, epochs, report, cancel)


def _train(
    dataset: Dataset,
    settings: Settings,
    workspace: Workspace,
    store: FeatureStore | None,
    name: str,
    resume: bool,
    epochs: int | None,
    report: Reporter,
    cancel: threading.Event | None,
) -> TrainResult:
    cancel = cancel or threading.Event()
    started = time.perf_counter()
    device = pick_device(settings.training.device)
    if resume:
        plan = _plan_resume(dataset, settings, workspace, store, name, epochs)
    else:
        store = store or FeatureStore(workspace.features, config_key(settings))
        plan = _plan_fresh(dataset, settings, workspace, store, name)
    ts, data, store = plan.ts, plan.data, plan.store
    features = _store_config(store)
    if not features and store.key == config_key(settings):
        features = feature_config(settings)
    check_frames(data.frames)
    for path, reason in data.skipped:
        report(Message(f"skipped {path}: {reason}", "warning"))
    fit_data = data.train.select(plan.fit_ids)
    val_data = data.train.select(plan.val_ids) if plan.val_ids else None
    weight = class_weights(fit_data.labels, len(data.genres), ts.balance)
    static = {
        "format_version": FORMAT_VERSION,
        "name": plan.name,
        "settings": asdict(ts),
        "architecture": plan.arch.to_json(),
        "genres": data.genres,
        "norm": data.norm.to_json(),
        "frames": list(data.frames),
        "fingerprint": dataset.fingerprint,
        "feature_key": store.key,
        "split": {
            "fit": [data.train.song_keys[i] for i in plan.fit_ids],
            "val": [data.train.song_keys[i] for i in plan.val_ids],
        },
    }

    def checkpoint(r: Run) -> None:
        param_groups = r.optimizer.state_dict()["param_groups"]
        meta = {**static, "param_groups": param_groups, "state": asdict(r.state)}
        save_checkpoint(plan.folder, _checkpoint_tensors(r, device), meta)

    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), _torch_threads():
        threads = _choose_threads(plan.arch, fit_data, ts, device, weight, report)
        torch.manual_seed(ts.seed)
        model = build(plan.arch).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=ts.learning_rate)
        run = Run(model, optimizer, torch.Generator().manual_seed(ts.seed), RunState(), {})
        if plan.checkpoint is not None:
            _restore(run, *plan.checkpoint, device)
            run.state.stopped = ""
        parts = [fit_data, data.test, *([val_data] if val_data is not None else [])]
        fit_data, test_data, *val_placed = _place(parts, device, report)
        val_data = val_placed[0] if val_placed else None
        w = None if weight is None else weight.to(device)
        report(JobStarted("train", ts.epochs))
        stopped = fit(run, fit_data, val_data, ts, device, w, report, cancel, checkpoint)
        report(JobFinished("train", cancelled=stopped == "cancelled"))
        if run.state.epoch == 0:
            raise Cancelled("training stopped before its first epoch ended; nothing was saved")
        model.load_state_dict(run.best)
        probs = torch.softmax(predict_logits(model, test_data, device), dim=1).numpy()
    metrics = evaluate(probs, data.test.labels.numpy(), data.test.songs.numpy(), data.genres)
    base = baseline(data.train, data.test, data.genres, ts.balance)
    s = run.state
    card = {
        "status": "complete" if stopped in ("epochs", "early-stop") else "stopped",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "architecture": plan.arch.to_json(),
        "genres": data.genres,
        "features": {"backend": features.get("backend"), "config_key": store.key, "config": features},
        "input": {
            "frames": list(data.frames),
            "contrast": "log10(peaks + 1e-6)",
            "valid_frames": "ceil(length / 1024) MFCC, twice that contrast; LSTMs read the last valid step",
            "standardised": "per coefficient, statistics of the training split's valid frames",
        },
        "normalisation": data.norm.to_json(),
        "settings": asdict(ts),
        "training": {
            "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "threads": threads,
            "epochs_run": s.epoch,
            "best_epoch": s.best_epoch,
            "stopped": stopped,
            "seconds": round(time.perf_counter() - started, 2),
            "fit": {"songs": len(plan.fit_ids), "chunks": len(fit_data)},
            "validation": {
                "songs": len(plan.val_ids),
                "chunks": 0 if val_data is None else len(val_data),
            },
            "class_weights": None if weight is None else [float(x) for x in weight],
        },
        "history": [asdict(h) for h in s.history],
        "metrics": metrics.to_json(),
        "baseline": base.to_json(),
        "dataset": {
            "root": str(dataset.root),
            "fingerprint": dataset.fingerprint,
            "train": {"songs": len(data.train.song_keys), "chunks": len(data.train)},
            "test": {"songs": len(data.test.song_keys), "chunks": len(data.test)},
            "skipped": [{"path": p, "reason": r} for p, r in data.skipped],
        },
        "versions": _versions(),
    }
    path = save(workspace, plan.name, model.cpu(), card)
    return TrainResult(plan.name, path, card, metrics, base, s.history, stopped)


def _choose_threads(
    arch: Architecture,
    data: Tensors,
    ts: TrainingSettings,
    device: torch.device,
    weight: torch.Tensor | None,
    report: Reporter,
) -> int | None:
    """Set torch's CPU threads (measured when the setting is 0) and say where training runs."""
    if device.type == "cuda":
        gpu = torch.cuda.get_device_name(device)
        report(Message(f"training on {device} ({gpu}) with bf16 autocast"))
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


def _check_resumable(
    name: str, meta: dict[str, Any], ts: TrainingSettings, dataset: Dataset, store: FeatureStore
) -> None:
    state = meta["state"]
    if state["stopped"] == "early-stop":
        raise GenreError(
            f"model {name!r} stopped early at epoch {state['epoch']} (validation loss no longer "
            "improved): there is nothing to resume"
        )
    if state["epoch"] >= ts.epochs:
        raise GenreError(
            f"model {name!r} has trained {state['epoch']} of {ts.epochs} epochs: pass a larger "
            "--epochs to continue it"
        )
    if meta["fingerprint"] != dataset.fingerprint:
        raise GenreError(
            f"the dataset changed since model {name!r} was trained (fingerprint "
            f"{meta['fingerprint']} -> {dataset.fingerprint}): train a new model instead"
        )
    if meta["feature_key"] != store.key:
        raise GenreError(
            f"model {name!r} was trained on features {meta['feature_key']}, not {store.key}: "
            "resume it from the store it was trained on"
        )
