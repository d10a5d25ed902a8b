"""`linear` and `mlp`: small genre classifiers on musicnn chunk embeddings, trained in seconds.

Input per chunk: the mean of its 3-s patch embeddings (200 values, the measured recipe of issue
14), standardised with statistics of the training chunks that travel on the card. Training is
the project's: Adam, class weights, early stopping on validation songs drawn from the training
split (`tensors.validation_split`), the same metrics, one EpochEnd per epoch; the whole data set
sits in memory (a chunk is 200 floats). The card's baseline is a logistic regression on one mean
embedding per song: what the per-chunk vote has to beat. As for the merged model, a temperature
fitted on the validation chunks (core/calibrate.py) is stored on the card and divides every
logit, so confidences and `query.min_confidence` mean the same for both kinds of model.

These models live beside the frame-feature networks: `registry.load`, `train.train` and
`predict.classify_file` hand them here by their kind.
"""

from __future__ import annotations

import math
import shlex
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..calibrate import fit_temperature
from ..card import Count, DatasetInfo, EpochStats, Features, Scores, Skipped, TrainingRun, decode
from ..config import Settings
from ..dataset import Dataset, Song
from ..errors import Cancelled, GenreError, ModelError, NotExtracted
from ..events import EpochEnd, JobFinished, JobStarted, Message, Reporter, ignore
from ..store import EMBEDDING_ARRAYS as ARRAYS
from ..store import DamagedEntry, FeatureStore
from ..workspace import Workspace
from .headcard import HEAD_KINDS, EmbeddingInput, EmbeddingNorm, HeadArchitecture, HeadCard

if TYPE_CHECKING:
    from ..registry import LoadedModel
    from ..train import TrainResult

MLP_HIDDEN = 256
MLP_DROPOUT = 0.5
WEIGHT_DECAY = 1e-4


class Head(nn.Module):
    """linear: one affine layer (multinomial logistic regression); mlp: one hidden ReLU layer."""

    def __init__(self, a: HeadArchitecture) -> None:
        super().__init__()
        if a.kind == "linear":
            self.net: nn.Module = nn.Linear(a.inputs, a.genres)
        elif a.kind == "mlp":
            self.net = nn.Sequential(
                nn.Linear(a.inputs, a.hidden), nn.ReLU(), nn.Dropout(a.dropout), nn.Linear(a.hidden, a.genres)
            )
        else:
            raise ModelError(f"unknown embedding model {a.kind!r} (known: {', '.join(HEAD_KINDS)})")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def architecture(kind: str, inputs: int, genres: int) -> HeadArchitecture:
    if kind == "mlp":
        return HeadArchitecture(kind, genres, inputs, MLP_HIDDEN, MLP_DROPOUT)
    return HeadArchitecture(kind, genres, inputs)


@dataclass
class Chunks:
    """The chunk embeddings of one split; `songs` indexes `song_keys` (like tensors.Tensors)."""

    x: torch.Tensor  # float32 [N, D], raw
    labels: torch.Tensor  # int64 [N]
    songs: torch.Tensor  # int64 [N]
    song_keys: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def select(self, song_ids: list[int]) -> Chunks:
        mask = torch.isin(self.songs, torch.as_tensor(song_ids, dtype=torch.int64))
        return Chunks(self.x[mask], self.labels[mask], self.songs[mask], self.song_keys)


def _split(songs: list[Song], entries: list[dict[str, np.ndarray]], genres: list[str]) -> Chunks:
    label = {g: i for i, g in enumerate(genres)}
    xs = [e["embedding"] for e in entries]
    return Chunks(
        x=torch.from_numpy(np.concatenate(xs).astype(np.float32)) if xs else torch.zeros(0, 200),
        labels=torch.tensor([label[s.genre] for s, x in zip(songs, xs, strict=True) for _ in x]),
        songs=torch.tensor([i for i, x in enumerate(xs) for _ in x], dtype=torch.int64),
        song_keys=[s.key for s in songs],
    )


def load_chunks(dataset: Dataset, store: FeatureStore) -> tuple[Chunks, Chunks, list[str], list]:
    """(train, test, genres, skipped songs) from a musicnn store; refuses what cannot train.

    The same rules as `tensors.load_dataset`: each recording once, failed songs skipped, a
    damaged entry moved aside and named."""
    from ..tensors import _check, _names, _training_songs

    usable = _training_songs(dataset)
    _check(dataset, [s for s in usable if s.split == "train"], [s for s in usable if s.split == "test"])
    missing, skipped, damaged, loaded = [], [], [], []
    for song in usable:
        if store.has(song.key):
            try:
                loaded.append((song, store.load_arrays(song.key, ARRAYS)[0]))
            except DamagedEntry:
                store.quarantine(song.key)
                damaged.append(song)
        elif reason := store.failure(song.key):
            skipped.append((str(song.path), reason))
        else:
            missing.append(song)
    root, ws = shlex.quote(str(dataset.root)), shlex.quote(str(store.root.parent))
    hint = f"`genre extract --dataset {root} --workspace {ws} --backend musicnn`"
    if damaged:
        raise NotExtracted(
            f"{len(damaged)} stored entries were damaged and are moved aside "
            f"({_names(damaged, dataset.root)}): re-extract them with {hint}"
        )
    if missing:
        raise NotExtracted(
            f"{len(missing)} of {len(usable)} songs have no musicnn embeddings yet "
            f"({_names(missing, dataset.root)}): run {hint} first (or `genre train --extract`)"
        )
    loaded = [(s, e) for s, e in loaded if len(e["embedding"])]
    train = [(s, e) for s, e in loaded if s.split == "train"]
    test = [(s, e) for s, e in loaded if s.split == "test"]
    _check(dataset, [s for s, _ in train], [s for s, _ in test], True, len(skipped))
    genres = sorted({s.genre for s, _ in train})
    return (
        _split([s for s, _ in train], [e for _, e in train], genres),
        _split([s for s, _ in test], [e for _, e in test], genres),
        genres,
        skipped,
    )


def _standardise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x - mean) / std


def song_baseline(train: Chunks, test: Chunks, genres: list[str], balance: bool):
    """Logistic regression (L-BFGS, deterministic) on one mean embedding per song."""
    from ..metrics import class_weights, evaluate

    def per_song(c: Chunks) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.unique(c.songs)
        x = torch.stack([c.x[c.songs == i].double().mean(0) for i in ids])
        y = torch.stack([c.labels[c.songs == i][0] for i in ids])
        return x, y

    x, y = per_song(train)
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    x = (x - mean) / std
    weight = class_weights(y, len(genres), balance)
    w = torch.zeros(x.shape[1], len(genres), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(len(genres), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y, weight=None if weight is None else weight.double())
        loss = loss + 1e-3 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    tx, ty = per_song(test)
    with torch.no_grad():
        probs = torch.softmax(((tx - mean) / std) @ w + b, dim=1)
    return evaluate(probs.float().numpy(), ty.numpy(), np.arange(len(ty)), genres)


def _versions() -> dict[str, str]:
    from importlib import metadata

    try:
        own = metadata.version("genre-erkennung")
    except metadata.PackageNotFoundError:
        own = "unknown"
    return {"genre_erkennung": own, "torch": torch.__version__, "numpy": np.__version__}


def _epochs(
    model: Head,
    fit: Chunks,
    val: Chunks | None,
    settings: Settings,
    weight: torch.Tensor | None,
    report: Reporter,
    cancel: threading.Event,
) -> tuple[list[EpochStats], int, str, dict[str, torch.Tensor]]:
    """Adam with early stopping on the validation songs' loss; (history, best epoch, why, best)."""
    ts = settings.training
    opt = torch.optim.Adam(model.parameters(), lr=ts.learning_rate, weight_decay=WEIGHT_DECAY)
    shuffle = torch.Generator().manual_seed(ts.seed)
    history: list[EpochStats] = []
    best: dict[str, torch.Tensor] = {}
    best_loss, best_epoch, bad = math.inf, 0, 0
    stopped = "epochs"
    for epoch in range(1, ts.epochs + 1):
        if cancel.is_set():
            stopped = "cancelled"
            break
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(fit), generator=shuffle)
        total, correct = 0.0, 0
        for idx in order.split(ts.batch_size):
            logits = model(fit.x[idx])
            loss = F.cross_entropy(logits, fit.labels[idx], weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == fit.labels[idx]).sum())
        seconds = time.perf_counter() - started
        val_loss = val_acc = None
        if val is not None and len(val):
            model.eval()
            with torch.no_grad():
                logits = model(val.x)
            val_loss = float(F.cross_entropy(logits, val.labels, weight=weight))
            val_acc = float((logits.argmax(1) == val.labels).float().mean())
        improved = val_loss is None or val_loss < best_loss
        if improved:
            best_loss, best_epoch, bad = (math.inf if val_loss is None else val_loss), epoch, 0
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
        stats = EpochStats(
            epoch, total / len(fit), correct / len(fit), val_loss, val_acc,
            time.perf_counter() - started, len(fit) / max(seconds, 1e-9), improved,
        )  # fmt: skip
        history.append(stats)
        nan = math.nan
        report(
            EpochEnd(
                epoch, ts.epochs, stats.loss, stats.accuracy, nan if val_loss is None else val_loss,
                nan if val_acc is None else val_acc, stats.seconds, stats.chunks_per_s, improved,
            )
        )  # fmt: skip
        if bad >= ts.patience:
            stopped = "early-stop"
            break
    return history, best_epoch, stopped, best


def train_head(
    dataset: Dataset,
    settings: Settings,
    workspace: Workspace,
    name: str,
    *,
    store: FeatureStore | None = None,
    report: Reporter = ignore,
    cancel: threading.Event | None = None,
) -> TrainResult:
    """Train `settings.training.model` (linear or mlp) on the musicnn store, evaluate, save
    as `name` (a folder the caller has claimed, see `train.train`)."""
    from .. import registry
    from ..metrics import class_weights, evaluate
    from ..store import config_key, feature_config
    from ..tensors import validation_split
    from ..train import TrainResult

    cancel = cancel or threading.Event()
    started = time.perf_counter()
    ts = settings.training
    if settings.features.backend != "musicnn":
        raise GenreError(
            f"--model {ts.model} trains on musicnn embeddings, but features.backend is "
            f"{settings.features.backend!r}: pass --backend musicnn "
            "(after `genre pretrained install musicnn`)"
        )
    store = store or FeatureStore(workspace.features, config_key(settings))
    train, test, genres, skipped = load_chunks(dataset, store)
    for path, reason in skipped:
        report(Message(f"skipped {path}: {reason}", "warning"))
    fit_ids, val_ids = validation_split(train, ts.validation_share, ts.seed)  # type: ignore[arg-type]
    mean = train.x.double().mean(0).float()
    std = train.x.double().std(0).float().clamp(min=1e-6)
    scaled = [Chunks(_standardise(c.x, mean, std), c.labels, c.songs, c.song_keys) for c in (train, test)]
    fit, val = scaled[0].select(fit_ids), scaled[0].select(val_ids) if val_ids else None
    weight = class_weights(fit.labels, len(genres), ts.balance)
    report(Message(f"training {ts.model} on {len(fit)} chunk embeddings on cpu"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ts.seed)
        arch = architecture(ts.model, int(train.x.shape[1]), len(genres))
        model = Head(arch)
        report(JobStarted("train", ts.epochs))
        history, best_epoch, stopped, best = _epochs(model, fit, val, settings, weight, report, cancel)
        report(JobFinished("train", cancelled=stopped == "cancelled"))
    if not best:
        raise Cancelled("training stopped before its first epoch ended; nothing was saved")
    model.load_state_dict(best)
    model.eval()
    calibration = None
    with torch.no_grad():
        if val is not None and len(val):
            calibration = fit_temperature(model(val.x), val.labels)
        t = calibration.temperature if calibration else 1.0
        probs = torch.softmax(model(scaled[1].x) / t, dim=1).numpy()
    metrics = evaluate(probs, test.labels.numpy(), test.songs.numpy(), genres)
    base = song_baseline(train, test, genres, ts.balance)
    features = feature_config(settings)
    card = HeadCard(
        name=name,
        status="stopped" if stopped == "cancelled" else "complete",
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        architecture=arch,
        genres=genres,
        features=Features("musicnn", store.key, features),
        input=EmbeddingInput(),
        normalisation=EmbeddingNorm(mean.tolist(), std.tolist()),
        settings=ts,
        training=TrainingRun(
            device="cpu",
            gpu=None,
            threads=torch.get_num_threads(),
            epochs_run=len(history),
            best_epoch=best_epoch,
            stopped=stopped,
            seconds=round(time.perf_counter() - started, 2),
            fit=Count(len(fit_ids), len(fit)),
            validation=Count(len(val_ids), 0 if val is None else len(val)),
            class_weights=None if weight is None else [float(x) for x in weight],
        ),
        history=history,
        metrics=decode(Scores, metrics.to_json(), "metrics"),
        baseline=decode(Scores, base.to_json(), "baseline"),
        dataset=DatasetInfo(
            root=str(dataset.root),
            fingerprint=dataset.fingerprint,
            train=Count(len(train.song_keys), len(train)),
            test=Count(len(test.song_keys), len(test)),
            skipped=[Skipped(p, r) for p, r in skipped],
        ),
        versions=_versions(),
        calibration=calibration,
    )
    path = registry.save(workspace, model, card)  # type: ignore[arg-type]
    return TrainResult(name, path, card, metrics, base, history, stopped)  # type: ignore[arg-type]


def build(a: HeadArchitecture) -> Head:
    """The module of a head card (registry.load puts its weights in)."""
    return Head(a)


@torch.no_grad()
def chunk_probabilities(
    loaded: LoadedModel, arrays: dict[str, np.ndarray], meta: dict[str, Any]
) -> tuple[np.ndarray, list[tuple[str, float]]]:
    """(probabilities [C, genres], the song's top tags) from a song's musicnn entry."""
    card = loaded.card
    assert isinstance(card, HeadCard)
    device = next(loaded.module.parameters()).device
    mean = torch.tensor(card.normalisation.mean, device=device)
    std = torch.tensor(card.normalisation.std, device=device)
    x = torch.from_numpy(arrays["embedding"]).to(device)
    logits = loaded.module(_standardise(x, mean, std)) / card.temperature  # 1 for older cards
    probs = torch.softmax(logits, dim=1).cpu().numpy()
    return probs, top_tags(arrays["tags"], arrays["patches"], meta)


def top_tags(
    tags: np.ndarray, patches: np.ndarray, meta: dict[str, Any], n: int = 10
) -> list[tuple[str, float]]:
    """The song's tag scores (chunk means weighted by their patches), best first."""
    names = meta.get("tag_names") or []
    if not len(tags) or len(names) != tags.shape[1]:
        return []
    score = (tags * patches[:, None]).sum(0) / max(int(patches.sum()), 1)
    order = np.argsort(-score)[:n]
    return [(str(names[i]), round(float(score[i]), 4)) for i in order]
