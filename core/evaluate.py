"""Score a saved model on another dataset: how a user measures source shift on their own music.

The model's card fixes everything that changes the numbers (features, normalisation, frames,
genre order), so the songs go through exactly what a query does; only the scoring differs.
Songs not yet in the feature store are extracted first (and stay cached).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .config import Settings
from .dataset import SPLITS, Dataset
from .errors import Cancelled, GenreError
from .events import Reporter, ignore
from .metrics import Metrics, evaluate
from .registry import LoadedModel
from .workspace import Workspace


@dataclass
class Evaluation:
    """A model's scores on (part of) a dataset, next to what its card says about its own test."""

    model: str
    dataset: str
    splits: list[str]
    metrics: Metrics
    card_metrics: dict[str, Any]  # the card's scores on the model's own test split
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "splits": self.splits,
            "metrics": self.metrics.to_json(),
            "card_metrics": self.card_metrics,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }


def evaluate_model(
    loaded: LoadedModel,
    dataset: Dataset,
    settings: Settings,
    workspace: Workspace,
    *,
    splits: tuple[str, ...] = ("test",),
    report: Reporter = ignore,
    cancel: threading.Event | None = None,
) -> Evaluation:
    """Extract what is missing, predict every chunk of the chosen splits' songs, and score them."""
    from .extract import extract
    from .predict import predict_chunks, settings_for
    from .pretrained.head import chunk_probabilities
    from .pretrained.headcard import HeadCard
    from .store import EMBEDDING_ARRAYS, store_for

    bad = sorted(set(splits) - set(SPLITS))
    if bad:
        raise GenreError(f"unknown split {bad[0]!r}: use train and/or test")
    songs = [s for s in dataset.usable() if s.split in splits]
    if not songs:
        raise GenreError(f"dataset {dataset.root}: no readable songs in {' or '.join(splits)}/")
    unknown = sorted({s.genre for s in songs} - set(loaded.genres))
    if unknown:
        raise GenreError(
            f"model {loaded.name!r} knows {', '.join(loaded.genres)}, not {', '.join(unknown)}: "
            f"evaluate on songs of its genres (rename or leave out {dataset.root}/*/{unknown[0]})"
        )
    settings = settings_for(loaded, settings)
    done = extract(songs, settings, workspace, report, cancel)
    if done.cancelled:
        raise Cancelled("evaluation stopped during extraction; run it again to continue")
    store = store_for(workspace, settings)
    label = {g: i for i, g in enumerate(loaded.genres)}
    probs, labels, song_ids = [], [], []
    skipped = list(done.failed)
    for i, song in enumerate(sorted(songs, key=lambda s: str(s.path))):
        if not store.has(song.key):
            continue
        if isinstance(loaded.card, HeadCard):  # a linear/mlp model on musicnn embeddings
            arrays, meta = store.load_arrays(song.key, EMBEDDING_ARRAYS)
            p = chunk_probabilities(loaded, arrays, meta)[0] if len(arrays["lengths"]) else None
        else:
            entry = store.load(song.key)
            p = (
                predict_chunks(loaded, entry.mfcc, entry.contrast_peaks, entry.lengths)
                if entry.chunks
                else None
            )
        if p is None:
            skipped.append((str(song.path), "no chunk long enough"))
            continue
        probs.append(p)
        labels.append(np.full(len(p), label[song.genre]))
        song_ids.append(np.full(len(p), i))
    if not probs:
        raise GenreError(f"dataset {dataset.root}: none of its songs could be extracted")
    metrics = evaluate(np.concatenate(probs), np.concatenate(labels), np.concatenate(song_ids), loaded.genres)
    return Evaluation(
        loaded.name, str(dataset.root), list(splits), metrics, asdict(loaded.card.metrics), skipped
    )
