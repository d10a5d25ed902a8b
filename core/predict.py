"""Song -> per-chunk probabilities -> votes -> verdict.

A source is a file, a folder (every song below it) or an http(s) URL (fetched with yt-dlp). Each
song goes through the same decode and features as the model's card says; features of a song
already in the store are reused, new ones are stored for next time.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import audio
from .config import Settings
from .dataset import NOT_AUDIO, content_key
from .errors import AudioError, Cancelled, GenreError, ModelError
from .events import ChunkVote, JobFinished, JobStarted, Reporter, SongFailed, ignore
from .fetch import fetch, forget, is_url
from .registry import LoadedModel, check_features
from .store import FeatureStore, store_for
from .workspace import Workspace


@dataclass
class ChunkResult:
    index: int
    start: float
    end: float
    genre: str
    probabilities: dict[str, float]


@dataclass
class Verdict:
    """The majority vote (the original's "The song is 75% rock") and the mean-probability ranking."""

    majority: str
    share: float
    votes: int
    chunks: int
    ranking: list[tuple[str, float]]
    uncertain: bool = False  # confidence below query.min_confidence: no confident answer

    @property
    def confidence(self) -> float:
        """The (calibrated) mean probability of the majority genre, 0-1."""
        return dict(self.ranking).get(self.majority, 0.0)


@dataclass
class SongResult:
    source: str
    title: str
    path: str
    duration: float
    chunks: list[ChunkResult]
    verdict: Verdict

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "title": self.title,
            "duration": round(self.duration, 3),
            "chunks": [asdict(c) for c in self.chunks],
            "verdict": {
                "majority": self.verdict.majority,
                "share": self.verdict.share,
                "ranking": [[g, p] for g, p in self.verdict.ranking],
                "confidence": self.verdict.confidence,
                "uncertain": self.verdict.uncertain,
            },
        }


@dataclass
class QueryResult:
    model: str
    results: list[SongResult] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (source, one-line reason)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "results": [r.to_json() for r in self.results],
            "errors": [{"source": s, "error": e} for s, e in self.errors],
        }


def settings_for(loaded: LoadedModel, settings: Settings) -> Settings:
    """The user's settings with the audio framing and backend the model was trained on."""
    trained = loaded.card.features.config
    s = copy.deepcopy(settings)
    s.audio.sample_rate = int(trained["sample_rate"])
    s.audio.chunk_seconds = float(trained["chunk_seconds"])
    s.audio.min_chunk_seconds = float(trained["min_chunk_seconds"])
    s.features.backend = str(trained.get("backend", s.features.backend))
    check_features(loaded.card, s)
    return s


def verdict(probs: np.ndarray, genres: list[str], min_confidence: float = 0.0) -> Verdict:
    """Majority of chunk votes (ties go to the higher mean probability) and the mean ranking;
    uncertain when the majority genre's mean probability is below `min_confidence`."""
    mean = probs.mean(axis=0)
    votes = np.bincount(probs.argmax(axis=1), minlength=len(genres))
    best = max(range(len(genres)), key=lambda g: (votes[g], mean[g]))
    ranking = sorted(
        ((genres[g], round(float(mean[g]), 4)) for g in range(len(genres))), key=lambda gp: -gp[1]
    )
    share = round(float(votes[best] / len(probs)), 4)
    uncertain = float(mean[best]) < min_confidence
    return Verdict(genres[best], share, int(votes[best]), len(probs), ranking, uncertain)


def classify_file(
    path: Path,
    loaded: LoadedModel,
    settings: Settings,
    workspace: Workspace,
    source: str | None = None,
    title: str | None = None,
    report: Reporter = ignore,
    cancel: threading.Event | None = None,
    store: FeatureStore | None = None,
) -> SongResult:
    """Classify one local song. `settings` must come from `settings_for(loaded, ...)`; `store` is
    the store for those settings (opened here when not given)."""
    from .extract import extract_song
    from .features import get_backend

    _one_cpu_thread(loaded)
    info = audio.probe(path)
    store = store or store_for(workspace, settings)
    key = content_key(path)
    if not store.has(key):
        extract_song(path, key, store, settings, get_backend(settings.features), cancel, info)
    entry = store.load(key)
    probs = predict_chunks(loaded, entry.mfcc, entry.contrast_peaks, entry.lengths)
    sr = settings.audio.sample_rate
    chunks = []
    source = source or str(path)
    for i, (start, length, p) in enumerate(zip(entry.starts, entry.lengths, probs, strict=True)):
        distribution = {g: round(float(x), 4) for g, x in zip(loaded.genres, p, strict=True)}
        genre = loaded.genres[int(p.argmax())]
        c = ChunkResult(i, float(start), round(float(start) + int(length) / sr, 3), genre, distribution)
        chunks.append(c)
        report(ChunkVote(source, c.index, c.start, c.end, genre, distribution))
    duration = info.duration if info.duration is not None else float(entry.lengths.sum()) / sr
    v = verdict(probs, loaded.genres, settings.query.min_confidence)
    return SongResult(source, title or path.stem, str(path), duration, chunks, v)


def _songs_below(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() not in NOT_AUDIO:
                yield Path(dirpath) / name


def _expand(
    source: str, workspace: Workspace, max_items: int, report: Reporter, cancel: threading.Event
) -> list[tuple[str, Path, str | None, bool]]:
    """(source as reported, local path, title, downloaded) for every song behind a source."""
    if not source.strip():
        raise GenreError("an empty source: give a song file, a folder or an http(s) URL")
    if is_url(source):
        return [(source, f.path, f.title, True) for f in fetch(source, workspace, max_items, report, cancel)]
    p = Path(source).expanduser()
    if p.is_dir():
        songs: list[tuple[str, Path, str | None, bool]] = [(str(s), s, None, False) for s in _songs_below(p)]
        if not songs:
            raise GenreError(f"{source}: no song files in this folder")
        return songs
    if not p.exists():
        raise GenreError(f"{source}: no such file or folder")
    return [(source, p, None, False)]


def query(
    sources: list[str],
    loaded: LoadedModel,
    settings: Settings,
    workspace: Workspace,
    max_items: int = 20,
    report: Reporter = ignore,
    cancel: threading.Event | None = None,
) -> QueryResult:
    """Classify every song behind `sources`; a failing source is recorded and the rest go on."""
    cancel = cancel or threading.Event()
    settings = settings_for(loaded, settings)
    store = store_for(workspace.ensure(), settings)  # once, not per song
    result = QueryResult(loaded.name)
    report(JobStarted("query", len(sources)))
    for source in sources:
        if cancel.is_set():
            break
        try:
            songs = _expand(source, workspace, max_items, report, cancel)
        except Cancelled:
            break
        except GenreError as exc:
            result.errors.append((source, str(exc)))
            report(SongFailed(source, str(exc)))
            continue
        for shown, path, title, downloaded in songs:
            try:
                result.results.append(
                    classify_file(path, loaded, settings, workspace, shown, title, report, cancel, store)
                )
            except Cancelled:
                break
            except (AudioError, ModelError) as exc:
                why = str(exc).removeprefix(f"{path}: ")
                if downloaded and isinstance(exc, AudioError):
                    forget(workspace, source, path)
                    why = f"the download is not usable audio ({why})"
                result.errors.append((shown, f"{shown}: {why}"))
                report(SongFailed(shown, f"{shown}: {why}"))
    report(JobFinished("query", cancelled=cancel.is_set()))
    return result


def _one_cpu_thread(loaded: LoadedModel) -> None:
    """On the CPU, ffmpeg decodes on one core while torch computes on another; a second torch
    thread only makes small ops fight for cores (measured: several times slower when loaded)."""
    import torch

    if next(loaded.module.parameters()).device.type == "cpu":
        torch.set_num_threads(1)


def predict_chunks(
    loaded: LoadedModel,
    mfcc: np.ndarray,
    peaks: np.ndarray,
    lengths: np.ndarray | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Raw features of C chunks ([C, T, 20], [C, T, bands]) -> probabilities [C, genres].

    `lengths` [C] are the chunks' true lengths in samples before zero-padding (the store's
    `Entry.lengths`); None means every chunk is whole. Applies the card's compression,
    standardisation and frame count, so the caller passes the store's (or the feature
    backend's) arrays unchanged.
    """
    import torch

    from .tensors import MFCC_STEP, prepare, valid_frames

    a = loaded.card.architecture
    if mfcc.ndim != 3 or peaks.ndim != 3 or len(mfcc) != len(peaks):
        raise ModelError(f"expected [C, T, k] arrays for both inputs, got {mfcc.shape}, {peaks.shape}")
    if (mfcc.shape[2], peaks.shape[2]) != (a.coeffs, a.bands):
        raise ModelError(
            f"model {loaded.name!r} expects {a.coeffs} MFCC coefficients and {a.bands} contrast "
            f"bands, got {mfcc.shape[2]} and {peaks.shape[2]}"
        )
    if lengths is None:
        lengths = np.full(len(mfcc), mfcc.shape[1] * MFCC_STEP)  # whole chunks: every stored frame
    lengths = np.asarray(lengths)
    if lengths.shape != (len(mfcc),):
        raise ModelError(f"expected one length per chunk ({len(mfcc)}), got shape {lengths.shape}")
    m, c = prepare(mfcc, peaks, loaded.card.normalisation, loaded.card.frames)
    valid = valid_frames(torch.from_numpy(lengths.astype(np.int64)), loaded.card.frames)
    device = next(loaded.module.parameters()).device
    t = loaded.card.temperature  # calibrated on the validation songs (1 for older models)
    loaded.module.eval()
    with torch.no_grad():
        out = [
            torch.softmax(loaded.module(mb.to(device), cb.to(device), vb.to(device)).float() / t, dim=1).cpu()
            for mb, cb, vb in zip(
                m.split(batch_size), c.split(batch_size), valid.split(batch_size), strict=True
            )
        ]
    if not out:
        return np.zeros((0, len(loaded.genres)), dtype=np.float32)
    return torch.cat(out).numpy()
