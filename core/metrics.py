"""Evaluation: chunk and song accuracy, balanced accuracy, per-genre scores, confusion matrix.

Plus the baseline every model card carries: multinomial logistic regression on each chunk's MFCC
mean and std. If the network does not beat it, the network does not earn its keep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .tensors import Tensors


@dataclass
class Metrics:
    """Scores on one split. Songs are judged by majority vote of their chunks and by mean
    probability; balanced accuracy is the mean per-genre recall, so a model that always answers
    the biggest genre scores 1/genres however imbalanced the split is."""

    chunks: int
    songs: int
    chunk_accuracy: float
    song_accuracy: float  # majority vote, ties broken by mean probability
    song_accuracy_mean: float  # argmax of the mean probability
    balanced_accuracy: float  # chunks
    song_balanced_accuracy: float  # songs, majority vote
    per_genre: pd.DataFrame  # index genre; precision, recall, f1, support (chunks)
    confusion: pd.DataFrame  # rows: true genre, columns: predicted genre (chunks)

    def to_json(self) -> dict[str, Any]:
        scalars = {k: v for k, v in vars(self).items() if not isinstance(v, pd.DataFrame)}
        return {
            **scalars,
            "per_genre": {
                str(g): {
                    "precision": float(row["precision"]),
                    "recall": float(row["recall"]),
                    "f1": float(row["f1"]),
                    "support": int(row["support"]),
                }
                for g, row in self.per_genre.iterrows()
            },
            "confusion": {
                "genres": [str(g) for g in self.confusion.index],
                "counts": self.confusion.to_numpy().tolist(),
            },
        }


def _axes(confusion: pd.DataFrame) -> pd.DataFrame:
    confusion.index.name, confusion.columns.name = "true", "predicted"
    return confusion


def _balanced(true: np.ndarray, pred: np.ndarray, n: int) -> float:
    recalls = [np.mean(pred[true == g] == g) for g in range(n) if np.any(true == g)]
    return float(np.mean(recalls))


def song_verdicts(
    probs: np.ndarray, songs: np.ndarray, n_genres: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(song ids, majority-vote genre, mean-probability genre), one row per song."""
    ids, index = np.unique(songs, return_inverse=True)
    votes = np.zeros((len(ids), n_genres))
    np.add.at(votes, (index, probs.argmax(1)), 1)
    mean = np.zeros((len(ids), n_genres))
    np.add.at(mean, index, probs)
    mean /= np.bincount(index)[:, None]
    # Votes differ by whole numbers and mean probabilities by less than 1: 2*votes+mean ranks
    # by votes first and breaks ties by mean probability.
    return ids, (2 * votes + mean).argmax(1), mean.argmax(1)


def evaluate(probs: np.ndarray, labels: np.ndarray, songs: np.ndarray, genres: list[str]) -> Metrics:
    """Score chunk probabilities [N, genres] against true labels [N] of songs [N]."""
    n = len(genres)
    pred = probs.argmax(1)
    ids, by_vote, by_mean = song_verdicts(probs, songs, n)
    label_of = {int(s): int(y) for s, y in zip(songs, labels, strict=True)}
    song_true = np.array([label_of[int(s)] for s in ids])
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    tp = np.diag(confusion).astype(float)
    predicted, support = confusion.sum(0), confusion.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=precision + recall > 0)
    per_genre = pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support}, index=genres
    )
    return Metrics(
        chunks=len(labels),
        songs=len(ids),
        chunk_accuracy=float(np.mean(pred == labels)),
        song_accuracy=float(np.mean(by_vote == song_true)),
        song_accuracy_mean=float(np.mean(by_mean == song_true)),
        balanced_accuracy=_balanced(labels, pred, n),
        song_balanced_accuracy=_balanced(song_true, by_vote, n),
        per_genre=per_genre,
        confusion=_axes(pd.DataFrame(confusion, index=genres, columns=genres)),
    )


def class_weights(labels: torch.Tensor, n: int, balance: bool) -> torch.Tensor | None:
    """Inverse-frequency weights (mean 1) when genres are imbalanced and balancing is on."""
    counts = torch.bincount(labels.cpu(), minlength=n).double()
    if not balance or bool((counts == counts[0]).all()):
        return None
    return (counts.sum() / (n * counts.clamp(min=1))).float()


def _summary(data: Tensors) -> torch.Tensor:
    """Per-chunk mean and std of each MFCC coefficient over its valid frames: [N, 2*coeffs]."""
    x = data.mfcc.cpu().double()
    n = data.valid().cpu()[:, 0]
    mask = (torch.arange(x.shape[1]) < n[:, None]).unsqueeze(2)
    mean = (x * mask).sum(1) / n[:, None]
    var = (((x - mean[:, None]) * mask) ** 2).sum(1) / (n[:, None] - 1).clamp(min=1)
    return torch.cat([mean, var.sqrt()], dim=1)


def baseline(train: Tensors, test: Tensors, genres: list[str], balance: bool = True) -> Metrics:
    """Multinomial logistic regression on MFCC mean+std, fitted with L-BFGS (deterministic)."""
    x = _summary(train)
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    x = (x - mean) / std
    y = train.labels.cpu()
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
    with torch.no_grad():
        probs = torch.softmax(((_summary(test) - mean) / std) @ w + b, dim=1)
    return evaluate(probs.float().numpy(), test.labels.cpu().numpy(), test.songs.cpu().numpy(), genres)
