"""The card of a `linear` or `mlp` model on musicnn embeddings, typed like `card.ModelCard`.

It shares ModelCard's records and JSON keys wherever they mean the same thing (status, genres,
features, settings, training, history, metrics, baseline, dataset, versions, weights), so
`genre models list`, the scores tables, `check_features` and queries read either; only its
architecture, input and normalisation differ (a vector per chunk, no frames). Torch-free, like
card.py. `registry.read_card` picks the class by the architecture's kind.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from ..card import (
    CLEAR_MARGIN,
    FORMAT_VERSION,
    Calibration,
    CardError,
    DatasetInfo,
    EpochStats,
    Features,
    Scores,
    TrainingRun,
    Weights,
    decode,
)
from ..config import TrainingSettings

HEAD_KINDS = ("linear", "mlp")
INPUT = "mean of the chunk's 3-s musicnn patch embeddings (penultimate layer)"
BASELINE = "logistic regression on one mean embedding per song"


@dataclass(frozen=True)
class HeadArchitecture:
    """linear: one affine layer; mlp: `hidden` ReLU units with dropout, then the output layer."""

    kind: str
    genres: int
    inputs: int
    hidden: int = 0
    dropout: float = 0.0


@dataclass
class EmbeddingInput:
    embedding: str = INPUT
    standardised: str = "per value, statistics of the training chunks"
    baseline: str = BASELINE


@dataclass
class EmbeddingNorm:
    mean: list[float]
    std: list[float]


@dataclass
class HeadCard:
    name: str
    status: str  # complete | stopped
    created: str
    architecture: HeadArchitecture
    genres: list[str]
    features: Features
    input: EmbeddingInput
    normalisation: EmbeddingNorm
    settings: TrainingSettings
    training: TrainingRun
    history: list[EpochStats]
    metrics: Scores
    baseline: Scores
    dataset: DatasetInfo
    versions: dict[str, str]
    weights: Weights | None = None
    calibration: Calibration | None = None  # None: probabilities are the raw softmax
    format_version: int = FORMAT_VERSION
    ensemble: ClassVar[None] = None  # a head is one network (read where any card is shown)

    @property
    def temperature(self) -> float:
        return self.calibration.temperature if self.calibration else 1.0

    @property
    def variant(self) -> str:
        """Which musicnn weights the embeddings came from (msd or mtt)."""
        return str(self.features.config.get("musicnn", {}).get("variant", "?"))

    def baseline_warning(self) -> str | None:
        """One line when the model does not beat its baseline clearly (as ModelCard says it)."""
        model, base = self.metrics.song_accuracy, self.baseline.song_accuracy
        if model - base >= CLEAR_MARGIN:
            return None
        return (
            f"warning: song accuracy {100 * model:.0f}% is not clearly above the baseline's "
            f"{100 * base:.0f}% ({100 * (model - base):+.0f} points; the baseline is a {BASELINE}): "
            "per-chunk voting does not earn its keep on this test split"
        )

    def to_json(self) -> dict[str, Any]:
        return {"format_version": self.format_version, "name": self.name, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: Any) -> HeadCard:
        if not isinstance(data, dict):
            raise CardError("not a JSON object")
        card = decode(cls, data, "")
        card.validate()
        return card

    def validate(self) -> None:
        a, g, n = self.architecture, self.genres, self.normalisation
        if a.kind not in HEAD_KINDS:
            raise CardError(f"unknown architecture {a.kind!r}")
        if a.inputs < 1 or (a.kind == "mlp" and (a.hidden < 1 or not 0 <= a.dropout < 1)):
            raise CardError(f"architecture {a!r}")
        if len(set(g)) != len(g) or len(g) != a.genres or len(g) < 2:
            raise CardError(f"genres {g!r} do not fit a {a.genres}-genre model")
        for key, values in (("mean", n.mean), ("std", n.std)):
            if len(values) != a.inputs or not all(math.isfinite(v) for v in values):
                raise CardError(f"normalisation {key} is not {a.inputs} finite numbers")
        if min(n.std) <= 0:
            raise CardError("normalisation std holds values <= 0")
        if self.calibration is not None and not self.calibration.temperature > 0:
            raise CardError(f"calibration temperature {self.calibration.temperature!r} is not > 0")


def is_head(data: Any) -> bool:
    """Whether a parsed model.json describes a linear/mlp model (before it is checked)."""
    arch = data.get("architecture") if isinstance(data, dict) else None
    return isinstance(arch, dict) and arch.get("kind") in HEAD_KINDS
