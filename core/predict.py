"""Song -> per-chunk probabilities -> votes -> verdict.

A source is a file, a folder (every song below it) or an http(s) URL (fetched with yt-dlp). Each
song goes through the decode and features of the model's card; features of a song already in
the store are reused (a damaged entry is moved aside and extracted again), new ones are stored
for next time, or computed for this query only when the workspace is not writable. Junk is
rejected by its first bytes or one ffmpeg probe, probes run ahead in threads, and a cancelled
or interrupted query returns what it classified, marked incomplete.
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from . import audio
from .card import ModelCard
from .config import Settings
from .dataset import NOT_AUDIO, content_key
from .errors import AudioError, Cancelled, ConfigError, GenreError, ModelError, ToolMissing
from .events import ChunkVote, JobFinished, JobStarted, Message, QueryProgress, Reporter, SongFailed, ignore
from .fetch import Downloads, check_url, fetch, forget, is_url
from .pretrained.headcard import HeadCard
from .registry import LoadedModel, check_features
from .sniff import reject_non_audio
from .store import EMBEDDING_ARRAYS, DamagedEntry, Entry, FeatureStore, config_key, feature_config, store_for
from .workspace import Workspace

T = TypeVar("T")

#: Failures that are no song's fault (a missing tool, bad settings): they end the query.
_FATAL = (ToolMissing, ConfigError)


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
    tags: list[tuple[str, float]] = field(default_factory=list)  # musicnn's tag scores, best first

    def to_json(self) -> dict[str, Any]:
        out = {
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
        if self.tags:
            out["tags"] = [[t, s] for t, s in self.tags]
        return out


@dataclass
class QueryResult:
    """`complete` is False when the query was cancelled or interrupted before its last song."""

    model: str | None
    results: list[SongResult] = field(default_factory=list)
    errors: list[tuple[str | None, str]] = field(default_factory=list)  # (source, one-line reason)
    complete: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "results": [r.to_json() for r in self.results],
            "errors": [{"source": s, "error": e} for s, e in self.errors],
            "complete": self.complete,
        }


def settings_for(loaded: LoadedModel, settings: Settings, model_features: bool = False) -> Settings:
    """The settings a query of `loaded` computes features with (see settings_for_card)."""
    return settings_for_card(loaded.card, settings, model_features)


def settings_for_card(card: ModelCard, settings: Settings, model_features: bool = False) -> Settings:
    """The settings a query of the model of `card` computes features with (no torch needed:
    a cold query starts decoding with them while torch loads).

    The audio framing (rate, chunk length, shortest tail) is always the model's: it is part of
    the model's input and only picks the store a song's entry lives in. The feature backend is
    the user's choice (another program, another store), so a model trained on another backend is
    refused unless `model_features` asks to compute the model's own features for this query.
    Anything else that differs (a newer feature version) is refused by check_features.
    """
    trained = card.features.config
    s = copy.deepcopy(settings)
    s.audio.sample_rate = int(trained["sample_rate"])
    s.audio.chunk_seconds = float(trained["chunk_seconds"])
    s.audio.min_chunk_seconds = float(trained["min_chunk_seconds"])
    backend = str(trained.get("backend", s.features.backend))
    if backend != s.features.backend:
        if not model_features:
            raise ConfigError(
                f"model {card.name!r} was trained on {backend} features, but features.backend "
                f"selects {s.features.backend}: pass --model-features to compute {backend} features "
                f"for this query, or query a model trained on {s.features.backend} features"
            )
        s.features.backend = backend
    if isinstance(trained.get("musicnn"), dict):  # which musicnn weights made the embeddings
        s.features.musicnn = str(trained["musicnn"]["variant"])
    check_features(card, s)
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


def _writable(folder: Path) -> bool:
    """Whether files can be made in `folder`, or in the nearest folder above it that exists (where
    it would be created). Tried for real: mode bits say nothing for root or a read-only mount."""
    where = folder
    while not where.is_dir():
        if where.exists() or where.parent == where:
            return False
        where = where.parent
    try:
        fd, name = tempfile.mkstemp(prefix=".write-test-", suffix=".tmp", dir=where)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


class Stores:
    """Where a query finds and keeps features: the workspace's store for its settings. When that
    is not writable, new songs' features go to a scratch folder used once and removed after the
    query: a read-only workspace still classifies, it only computes them again next time."""

    def __init__(self, workspace: Workspace, settings: Settings, report: Reporter = ignore) -> None:
        self.workspace = workspace
        self.settings = settings
        self.report = report
        self.writable = _writable(workspace.features / config_key(settings))
        if self.writable:
            self.store = store_for(workspace, settings)
        else:
            self.store = FeatureStore(workspace.features, config_key(settings))
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._scratch_store: FeatureStore | None = None

    def features(self, path: Path, cancel: threading.Event | None, info: audio.AudioInfo | None) -> Entry:
        """The song's entry: from the store if it is there and whole, else extracted now."""
        return self._entry(path, cancel, info, lambda store, key: store.load(key))

    def embeddings(
        self, path: Path, cancel: threading.Event | None, info: audio.AudioInfo | None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """A musicnn store's arrays and metadata for the song (see features/musicnn.py), as `features`."""
        return self._entry(path, cancel, info, lambda store, key: store.load_arrays(key, EMBEDDING_ARRAYS))

    def _entry(
        self,
        path: Path,
        cancel: threading.Event | None,
        info: audio.AudioInfo | None,
        load: Callable[[FeatureStore, str], T],
    ) -> T:
        from .extract import extract_song
        from .features import get_backend

        key = content_key(path)
        try:
            return load(self.store, key)
        except FileNotFoundError:
            pass  # not extracted yet
        except DamagedEntry as exc:
            self._set_aside(path, key, exc)
        target = self.store if self.writable else self._scratch_for_new()
        backend = get_backend(self.settings.features, self.workspace)
        extract_song(path, key, target, self.settings, backend, cancel, info)
        entry = load(target, key)
        if target is not self.store:
            target.path(key).unlink()
        return entry

    def _set_aside(self, path: Path, key: str, exc: DamagedEntry) -> None:
        """As extraction does it: moved to the store's damaged/ folder, one warning naming the song."""
        try:
            where = f"moved to {self.store.quarantine(key)}"
        except OSError as err:
            where = f"cannot be moved aside ({err.strerror})"
        self.report(Message(f"{path}: stored features {exc}; {where}, extracting again", "warning"))

    def _scratch_for_new(self) -> FeatureStore:
        if self._scratch_store is None:
            self.report(
                Message(
                    f"{self.store.folder} is not writable: features of songs not yet stored are "
                    "computed for this query only",
                    "warning",
                )
            )
            self._scratch = tempfile.TemporaryDirectory(prefix="genre-query-")
            self._scratch_store = FeatureStore(
                Path(self._scratch.name), self.store.key, feature_config(self.settings)
            )
        return self._scratch_store

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch, self._scratch_store = None, None


def classify_file(
    path: Path,
    loaded: LoadedModel,
    settings: Settings,
    workspace: Workspace,
    source: str | None = None,
    title: str | None = None,
    report: Reporter = ignore,
    cancel: threading.Event | None = None,
    stores: Stores | None = None,
    info: audio.AudioInfo | None = None,
) -> SongResult:
    """Classify one local song. `settings` must come from `settings_for(loaded, ...)`; `stores`
    are those for these settings (opened here when not given); `info` is the song's probe."""
    _one_cpu_thread(loaded)
    info = info or _probe(path)
    with contextlib.ExitStack() as stack:
        if stores is None:
            stores = Stores(workspace, settings, report)
            stack.callback(stores.close)
        head = isinstance(loaded.card, HeadCard)  # a linear/mlp model on musicnn embeddings
        if head:
            arrays, meta = stores.embeddings(path, cancel, info)
        else:
            entry = stores.features(path, cancel, info)
    tags: list[tuple[str, float]] = []
    if head:
        from .pretrained.head import chunk_probabilities

        probs, tags = chunk_probabilities(loaded, arrays, meta)
        starts, lengths = arrays["starts"], arrays["lengths"]
    else:
        probs = predict_chunks(loaded, entry.mfcc, entry.contrast_peaks, entry.lengths)
        starts, lengths = entry.starts, entry.lengths
    return song_result(
        loaded.genres, settings, path, info, starts, lengths, probs, source, title, report, tags
    )


def song_result(
    genres: list[str],
    settings: Settings,
    path: Path,
    info: audio.AudioInfo,
    starts: np.ndarray,
    lengths: np.ndarray,
    probs: np.ndarray,
    source: str | None = None,
    title: str | None = None,
    report: Reporter = ignore,
    tags: list[tuple[str, float]] | None = None,
) -> SongResult:
    """Chunk probabilities [C, genres] -> the song's chunk votes and verdict (wherever they were
    computed: here, or on a cluster)."""
    sr = settings.audio.sample_rate
    chunks = []
    source = source or str(path)
    for i, (start, length, p) in enumerate(zip(starts, lengths, probs, strict=True)):
        distribution = {g: round(float(x), 4) for g, x in zip(genres, p, strict=True)}
        genre = genres[int(p.argmax())]
        c = ChunkResult(i, float(start), round(float(start) + int(length) / sr, 3), genre, distribution)
        chunks.append(c)
        report(ChunkVote(source, c.index, c.start, c.end, genre, distribution))
    duration = info.duration if info.duration is not None else float(lengths.sum()) / sr
    return SongResult(
        source,
        title or path.stem,
        str(path),
        duration,
        chunks,
        verdict(probs, genres, settings.query.min_confidence),
        tags or [],
    )


#: (source as reported, local path, title, downloaded) of one song behind a source.
_Song = tuple[str, Path, str | None, bool]


def _probe(path: Path) -> audio.AudioInfo:
    """Plain junk by its first bytes, else one ffmpeg probe (its result is used for the decode)."""
    reject_non_audio(path)
    return audio.probe(path)


def _probed(songs: list[_Song], workers: int) -> Iterator[tuple[_Song, Future[audio.AudioInfo]]]:
    """Each song with its probe, run in threads up to 2 x `workers` songs ahead, so a folder of
    junk is rejected at the pace of all cores rather than one ffmpeg start after another."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")
    ahead: deque[tuple[_Song, Future[audio.AudioInfo]]] = deque()
    items = iter(songs)
    try:
        while True:
            while len(ahead) < 2 * workers and (song := next(items, None)) is not None:
                ahead.append((song, pool.submit(_probe, song[1])))
            if not ahead:
                return
            yield ahead.popleft()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _songs_below(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() not in NOT_AUDIO:
                yield Path(dirpath) / name


def _expand(
    source: str,
    workspace: Workspace,
    max_items: int,
    report: Reporter,
    cancel: threading.Event,
    settings: Settings,
) -> list[_Song]:
    """Every song behind a source."""
    if not source.strip():
        raise GenreError("an empty source: give a song file, a folder or an http(s) URL")
    if is_url(source):
        check_url(source)
        downloads = workspace.downloads
        if not _writable(downloads) and (
            not downloads.is_dir() or Downloads(workspace, report).cached(source) is None
        ):
            raise GenreError(
                f"{source}: {downloads} is not writable, and URLs are downloaded there first: "
                "make it writable or pass another --workspace"
            )
        fetched = fetch(source, workspace, max_items, report, cancel, settings.query)
        return [(source, f.path, f.title, True) for f in fetched]
    p = Path(source).expanduser()
    if p.is_dir():
        songs: list[_Song] = [(str(s), s, None, False) for s in _songs_below(p)]
        if not songs:
            raise GenreError(f"{source}: no song files in this folder")
        return songs
    if not p.exists():
        raise GenreError(f"{source}: no such file or folder")
    return [(source, p, None, False)]


@dataclass
class _Tally:
    """Counts for QueryProgress, reported after every file."""

    report: Reporter
    total: int = 0
    classified: int = 0
    failed: int = 0

    def count(self, ok: bool) -> None:
        if ok:
            self.classified += 1
        else:
            self.failed += 1
        done = self.classified + self.failed
        self.report(QueryProgress(done, max(self.total, done), self.classified, self.failed))


def query(
    sources: list[str],
    loaded: LoadedModel,
    settings: Settings,
    workspace: Workspace,
    max_items: int = 20,
    report: Reporter = ignore,
    cancel: threading.Event | None = None,
    model_features: bool = False,
) -> QueryResult:
    """Classify every song behind `sources`; a failing source or song is recorded and the rest
    go on. Cancelling, or Ctrl-C (KeyboardInterrupt) anywhere inside, stops at the current song
    and returns what was classified so far with `complete` False: a long folder never loses its
    results. The store stays consistent either way (every write is atomic)."""
    cancel = cancel or threading.Event()
    settings = settings_for(loaded, settings, model_features)

    def run(stores: Stores, result: QueryResult) -> bool:
        return _run(sources, loaded, settings, workspace, stores, max_items, report, cancel, result)

    return drive(loaded, settings, workspace, len(sources), report, cancel, run)


def drive(
    loaded: LoadedModel,
    settings: Settings,
    workspace: Workspace,
    sources: int,
    report: Reporter,
    cancel: threading.Event,
    run: Callable[[Stores, QueryResult], bool],
) -> QueryResult:
    """What every query engine shares around its loop `run` (which says whether it finished):
    the job events, the stores, and Ctrl-C keeping what was classified so far."""
    result = QueryResult(loaded.name)
    report(JobStarted("query", sources))
    stores = Stores(workspace, settings, report)
    try:
        result.complete = run(stores, result)
    except KeyboardInterrupt:
        cancel.set()
        result.complete = False
    finally:
        stores.close()
    report(JobFinished("query", cancelled=not result.complete))
    return result


def _run(
    sources: list[str],
    loaded: LoadedModel,
    settings: Settings,
    workspace: Workspace,
    stores: Stores,
    max_items: int,
    report: Reporter,
    cancel: threading.Event,
    result: QueryResult,
) -> bool:
    """The query's loop; True when it went through every source."""
    tally = _Tally(report)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = settings.extraction.workers or cores

    def failed(shown: str, why: str) -> None:
        result.errors.append((shown, why))
        report(SongFailed(shown, why))
        tally.count(ok=False)

    for source in sources:
        if cancel.is_set():
            return False
        try:
            songs = _expand(source, workspace, max_items, report, cancel, settings)
        except Cancelled:
            return False
        except _FATAL:
            raise
        except GenreError as exc:
            if cancel.is_set():
                return False
            tally.total += 1
            failed(source, str(exc))
            continue
        tally.total += len(songs)
        for (shown, path, title, downloaded), probe in _probed(songs, workers):
            if cancel.is_set():
                return False
            try:
                info = probe.result()
                song = classify_file(
                    path, loaded, settings, workspace, shown, title, report, cancel, stores, info
                )
            except Cancelled:
                return False
            except _FATAL:
                raise
            except GenreError as exc:
                if cancel.is_set():  # an ffmpeg stopped by the same Ctrl-C: not the song's fault
                    return False
                why = str(exc).removeprefix(f"{path}: ")
                if downloaded and isinstance(exc, AudioError):
                    forget(workspace, source, path)
                    why = f"the download is not usable audio ({why})"
                failed(shown, f"{shown}: {why}")
                continue
            result.results.append(song)
            tally.count(ok=True)
    return True


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
