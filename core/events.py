"""Progress events emitted by long engine operations.

The engine never prints. It calls a `Reporter` with small frozen dataclasses; the CLI renders them
with rich, the TUI posts them as Textual messages. A `threading.Event` is the cancel token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    """Base class of every progress event."""


@dataclass(frozen=True)
class Message(Event):
    """A line of information (e.g. which device training runs on)."""

    text: str
    level: str = "info"  # info | warning


@dataclass(frozen=True)
class JobStarted(Event):
    """A batch job begins: `total` items (songs, epochs, downloads) and `seconds` of audio."""

    job: str
    total: int
    seconds: float = 0.0


@dataclass(frozen=True)
class SongStarted(Event):
    """A worker took a song."""

    path: str
    worker: int = 0


@dataclass(frozen=True)
class SongDone(Event):
    """A song's features are in the store (`cached`: they were already there)."""

    path: str
    chunks: int
    seconds: float
    cached: bool = False
    worker: int = 0


@dataclass(frozen=True)
class SongFailed(Event):
    """A song could not be processed; the batch goes on."""

    path: str
    error: str
    worker: int = 0


@dataclass(frozen=True)
class ExtractProgress(Event):
    """Overall extraction progress, emitted after every song."""

    done: int
    failed: int
    total: int
    audio_seconds: float
    elapsed: float
    realtime_factor: float
    eta: float | None


@dataclass(frozen=True)
class EpochEnd(Event):
    """One training epoch finished."""

    epoch: int
    epochs: int
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float
    chunks_per_s: float
    best: bool = False
    member: int = 0  # the ensemble member being trained (0-based)
    members: int = 1


@dataclass(frozen=True)
class DownloadProgress(Event):
    """yt-dlp progress for one URL."""

    url: str
    downloaded: int
    total: int | None


@dataclass(frozen=True)
class Downloaded(Event):
    """A URL's audio is on disk (`cached`: it was downloaded before)."""

    url: str
    path: str
    title: str
    cached: bool = False


@dataclass(frozen=True)
class ChunkVote(Event):
    """One chunk of a queried song was classified."""

    source: str
    index: int
    start: float
    end: float
    genre: str
    probabilities: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryProgress(Event):
    """Files of a query so far: looked at (of `total` known yet), classified, failed."""

    looked: int
    total: int
    classified: int
    failed: int


@dataclass(frozen=True)
class JobFinished(Event):
    """A batch job ended (`cancelled` if the user stopped it)."""

    job: str
    cancelled: bool = False


Reporter = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """A reporter that drops everything (for library callers and tests)."""


def new_cancel() -> threading.Event:
    """A fresh cancel token; `set()` it to stop a long job after its current step."""
    return threading.Event()
