"""model.json as typed records: the card's schema, reading and writing, in one place.

Everything that reads a saved model (the registry, `genre models`, queries, the TUI) works with
attributes of `ModelCard`, never with string keys. The JSON is the format cards have had since
format version 1: `ModelCard.from_json(card.to_json())` is the identity, and a card written by
any earlier release loads. Torch-free, so that listing and showing models stays fast.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import ModelSettings, TrainingSettings

FORMAT_VERSION = 1
#: Architectures this version can rebuild.
KINDS = ("merged", "mfcc", "contrast")


#: The least song accuracy a model should gain over its baseline before it is worth its cost.
CLEAR_MARGIN = 0.05


class CardError(ValueError):
    """A model.json that does not describe a model this version can load."""


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild a model before loading its weights; `sizes` is the config's
    [model] table as it was when the model was trained."""

    kind: str
    genres: int
    coeffs: int = 20
    bands: int = 7
    sizes: ModelSettings = field(default_factory=ModelSettings)


@dataclass
class Norm:
    """Per-coefficient mean and std of the training split (after log-compressing contrast)."""

    mfcc_mean: np.ndarray  # float32 [coeffs]
    mfcc_std: np.ndarray
    contrast_mean: np.ndarray  # float32 [bands]
    contrast_std: np.ndarray

    def to_json(self) -> dict[str, list[float]]:
        return {k: [float(x) for x in v] for k, v in vars(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Norm:
        try:
            return cls(
                **{f.name: np.asarray(data[f.name], dtype=np.float32) for f in dataclasses.fields(cls)}
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CardError(f"normalisation: {exc}") from None


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
    member: int | None = None  # an ensemble's member the epoch belongs to (0-based)


@dataclass
class GenreScore:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Confusion:
    genres: list[str]
    counts: list[list[int]]  # rows: true genre, columns: predicted (chunks)


@dataclass
class Scores:
    """A split's scores as the card keeps them (see `metrics.Metrics`)."""

    chunks: int
    songs: int
    chunk_accuracy: float
    song_accuracy: float
    song_accuracy_mean: float
    balanced_accuracy: float
    song_balanced_accuracy: float
    per_genre: dict[str, GenreScore]
    confusion: Confusion


@dataclass
class Features:
    backend: str | None
    config_key: str
    config: dict[str, Any]


@dataclass
class Inputs:
    frames: tuple[int, int]  # (T_mfcc, T_sc) inputs are padded or cropped to
    contrast: str = "log10(peaks + 1e-6)"
    valid_frames: str = "ceil(length / 1024) MFCC, twice that contrast; LSTMs read the last valid step"
    standardised: str = "per coefficient, statistics of the training split's valid frames"


@dataclass
class Count:
    songs: int
    chunks: int


@dataclass
class Distributed:
    world_size: int  # processes
    backend: str  # their process group: gloo | nccl


@dataclass
class TrainingRun:
    device: str
    gpu: str | None
    threads: int | None
    epochs_run: int
    best_epoch: int
    stopped: str  # epochs | early-stop | cancelled
    seconds: float
    fit: Count
    validation: Count
    class_weights: list[float] | None
    distributed: Distributed | None = None  # a torchrun (DDP) run's; None: one process


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class DatasetInfo:
    root: str
    fingerprint: str
    train: Count
    test: Count
    skipped: list[Skipped] = field(default_factory=list)


@dataclass
class Weights:
    file: str
    sha256: str


@dataclass
class Calibration:
    """Temperature scaling fitted on the validation chunks (see core/calibrate.py)."""

    temperature: float  # probabilities are softmax(logits / temperature)
    nll_before: float  # validation NLL at temperature 1
    nll_after: float
    chunks: int


@dataclass
class Member:
    """One network of an ensemble: its own seed, validation songs, run, calibration and scores."""

    seed: int
    epochs_run: int
    best_epoch: int
    stopped: str  # epochs | early-stop | cancelled
    seconds: float
    validation: Count
    metrics: Scores  # this member alone on the test split
    calibration: Calibration | None = None


@dataclass
class Ensemble:
    """`training.ensemble` networks saved as one model; a query averages their calibrated
    probabilities (the card's own `metrics` are the ensemble's)."""

    members: list[Member]

    def song_accuracies(self) -> list[float]:
        return [m.metrics.song_accuracy for m in self.members]

    @property
    def temperatures(self) -> list[float]:
        return [m.calibration.temperature if m.calibration else 1.0 for m in self.members]


@dataclass
class ModelCard:
    name: str
    status: str  # complete | stopped
    created: str
    architecture: Architecture
    genres: list[str]
    features: Features
    input: Inputs
    normalisation: Norm
    settings: TrainingSettings
    training: TrainingRun
    history: list[EpochStats]
    metrics: Scores
    baseline: Scores
    dataset: DatasetInfo
    versions: dict[str, str]
    weights: Weights | None = None
    calibration: Calibration | None = None  # None: probabilities are the raw softmax
    ensemble: Ensemble | None = None  # None: one network (its members' temperatures otherwise)
    format_version: int = FORMAT_VERSION

    @property
    def temperature(self) -> float:
        return self.calibration.temperature if self.calibration else 1.0

    def baseline_warning(self) -> str | None:
        """One line when the network does not beat the card's baseline by a clear margin
        (CLEAR_MARGIN of song accuracy, majority vote, on the same test split)."""
        model, base = self.metrics.song_accuracy, self.baseline.song_accuracy
        if model - base >= CLEAR_MARGIN:
            return None
        return (
            f"warning: song accuracy {100 * model:.0f}% is not clearly above the baseline's "
            f"{100 * base:.0f}% ({100 * (model - base):+.0f} points; the baseline is a logistic "
            "regression on MFCC mean and std): this network does not earn its keep on this test split"
        )

    @property
    def frames(self) -> tuple[int, int]:
        return self.input.frames

    def to_json(self) -> dict[str, Any]:
        out = {"format_version": self.format_version, "name": self.name}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name not in out and not (f.default is None and value is None):  # as in `_encode`
                out[f.name] = _encode(value)
        return out

    @classmethod
    def from_json(cls, data: Any) -> ModelCard:
        """Parse and check a card; raises CardError naming what is wrong."""
        if not isinstance(data, dict):
            raise CardError("not a JSON object")
        card = decode(cls, data, "")
        card.validate()
        return card

    def validate(self) -> None:
        """What the types alone do not say: a model this version can rebuild and feed."""
        a = self.architecture
        if a.kind not in KINDS:
            raise CardError(f"unknown architecture {a.kind!r}")
        for f in dataclasses.fields(a.sizes):
            v, meta = getattr(a.sizes, f.name), f.metadata
            if not meta["low"] <= v <= meta["high"]:
                raise CardError(f"architecture size {f.name} = {v!r}")
        g = self.genres
        if len(set(g)) != len(g) or len(g) != a.genres or len(g) < 2:
            raise CardError(f"genres {g!r} do not fit a {a.genres}-genre model")
        widths = (a.coeffs, a.coeffs, a.bands, a.bands)
        for (key, values), width in zip(vars(self.normalisation).items(), widths, strict=True):
            if values.shape != (width,) or not all(math.isfinite(v) for v in values):
                raise CardError(f"normalisation {key} is not {width} finite numbers")
            if key.endswith("std") and not (values > 0).all():
                raise CardError(f"normalisation {key} holds values <= 0")
        if len(self.input.frames) != 2 or min(self.input.frames) < 1:
            raise CardError(f"input frames {self.input.frames!r}")
        if self.ensemble is not None:
            if not self.ensemble.members or self.calibration is not None:
                raise CardError("an ensemble needs members (and keeps its calibration on them)")
            if not all(t > 0 and math.isfinite(t) for t in self.ensemble.temperatures):
                raise CardError("an ensemble member's temperature is not a positive number")


def _encode(value: Any) -> Any:
    if isinstance(value, Norm):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # An optional field left at None is left out, so a card without what a later version
        # added (a DDP run's `distributed`) reads and writes back the same.
        return {
            f.name: _encode(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not (f.default is None and getattr(value, f.name) is None)
        }
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def decode(tp: Any, value: Any, where: str) -> Any:
    """JSON -> the annotated type, checking as it goes (dataclasses, lists, dicts, tuples,
    optionals, scalars). Keys a newer minor version added are ignored; missing keys without a
    default are errors."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return decode(inner, value, where)
    if tp is Norm:
        return Norm.from_json(value) if isinstance(value, dict) else _fail(where, "an object", value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            _fail(where, "an object", value)
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            key = f"{where}.{f.name}" if where else f.name
            if f.name in value:
                kwargs[f.name] = decode(hints[f.name], value[f.name], key)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise CardError(f"lacks {key}")
        return typing.cast(Any, tp)(**kwargs)
    if origin is list:
        if not isinstance(value, list):
            _fail(where, "a list", value)
        return [decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list) or len(value) != len(args):
            _fail(where, f"a list of {len(args)}", value)
        return tuple(decode(a, v, where) for a, v in zip(args, value, strict=True))
    if origin is dict:
        if not isinstance(value, dict):
            _fail(where, "an object", value)
        return {str(k): decode(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and isinstance(value, tp) and (tp is bool or not isinstance(value, bool)):
        return value
    _fail(where, tp.__name__, value)


def _fail(where: str, expected: str, value: Any) -> typing.NoReturn:
    raise CardError(f"{where} should be {expected}, got {value!r:.40}")
