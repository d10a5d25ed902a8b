"""Dataset -> feature store: parallel, resumable, cancellable.

Each worker thread drives one ffmpeg decode process and runs the feature math on what it reads
(numpy and torch release the GIL), so N workers keep N cores busy with either decoding or math. Per song the
work is a pure function of (bytes, config), `compute_song`; the store write is its caller's
(`extract_song` here, the Ray driver in cluster.py with `cluster.engine = "ray"`). Songs already in
the store are not decoded again; failures are recorded and the batch goes on.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from . import audio
from .config import Settings
from .dataset import Song
from .errors import AudioError, Cancelled
from .events import (
    ExtractProgress,
    JobFinished,
    JobStarted,
    Message,
    Reporter,
    SongDone,
    SongFailed,
    SongStarted,
    ignore,
)
from .features import Backend, FeatureBatch, get_backend, one_math_thread
from .features.musicnn import MusicnnBackend, embed_song
from .store import DamagedEntry, FeatureStore, RawArray, store_for
from .workspace import Workspace

T = TypeVar("T")

#: Chunks per feature-math call: big enough to amortise per-call overhead, small enough for RAM.
BATCH_CHUNKS = 4


@dataclass
class ExtractResult:
    done: int = 0
    cached: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    audio_seconds: float = 0.0
    elapsed: float = 0.0
    cancelled: bool = False
    store: Path | None = None


_DONE = object()


def _read_ahead(items: Iterator[T], depth: int) -> Iterator[T]:
    """Pull from `items` in a thread, up to `depth` ahead, so ffmpeg decodes the next chunks
    while the feature math runs on these (the math releases the GIL). Stops the producer, and so
    the decoder, as soon as the consumer stops."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            q.put((_DONE, None))
        except BaseException as exc:  # handed to the consumer, raised there
            q.put((_DONE, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, daemon=True, name="read-ahead")
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if exc is not None:
                raise exc
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.05)
        thread.join()


class _Spill:
    """Feature rows appended to raw scratch files as they are computed, so a 3-hour song holds
    no more memory than a 3-minute one; the store streams them into the entry at the end."""

    NAMES = ("mfcc", "contrast_peaks", "contrast_valleys")

    def __init__(self, store: FeatureStore, key: str) -> None:
        self.paths = {name: store.spill_path(key, name) for name in self.NAMES}
        self.files = {name: open(path, "wb") for name, path in self.paths.items()}  # noqa: SIM115
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.n = 0

    def add(self, batch: FeatureBatch) -> None:
        for name, x in zip(self.NAMES, (batch.mfcc, batch.peaks, batch.valleys), strict=True):
            self.shapes[name] = x.shape[1:]
            self.files[name].write(np.ascontiguousarray(x, dtype=np.float32).tobytes())
        self.n += len(batch.mfcc)

    def arrays(self) -> dict[str, RawArray]:
        for f in self.files.values():
            f.flush()
        return {
            name: RawArray(self.paths[name], np.dtype(np.float32), (self.n, *self.shapes[name]))
            for name in self.NAMES
        }

    def close(self) -> None:
        for name, f in self.files.items():
            f.close()
            self.paths[name].unlink(missing_ok=True)


class _Rows:
    """Feature rows kept in memory: what a remote worker sends back to the driver."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {name: [] for name in _Spill.NAMES}

    def add(self, batch: FeatureBatch) -> None:
        for name, x in zip(_Spill.NAMES, (batch.mfcc, batch.peaks, batch.valleys), strict=True):
            self.parts[name].append(np.ascontiguousarray(x, dtype=np.float32))

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.concatenate(parts) for name, parts in self.parts.items()}


@dataclass
class SongFeatures:
    """One song's stored arrays and metadata, not yet written: `FeatureStore.save_arrays` takes them."""

    arrays: dict[str, np.ndarray | RawArray]
    meta: dict[str, Any]


def compute_song(
    path: Path,
    settings: Settings,
    backend: Backend | MusicnnBackend,
    rows: _Spill | _Rows | None = None,
    cancel: threading.Event | None = None,
    info: audio.AudioInfo | None = None,
    source: str | None = None,
) -> SongFeatures:
    """Decode one song into chunks and compute their features a batch at a time; writes nothing.

    A pure function of (the file's bytes, the settings): safe to run anywhere, in any order.
    `rows` collects the features (default: in memory; a `_Spill` keeps memory flat for any
    length); `source` is the name recorded in the metadata (default: `path`).
    """
    if isinstance(backend, MusicnnBackend):  # embeddings, not frame features: its own entry layout
        embedded, embeddings = embed_song(path, settings, backend, cancel, info)
        return SongFeatures(embeddings, {**embedded, "source": source or str(path)})
    a = settings.audio
    info = info or audio.probe(path)
    rows = rows if rows is not None else _Rows()
    starts: list[float] = []
    lengths: list[int] = []

    def samples() -> Iterator[np.ndarray]:
        chunks = audio.chunks(path, a.sample_rate, a.chunk_seconds, a.min_chunk_seconds, info)
        for chunk in _read_ahead(chunks, BATCH_CHUNKS):
            if cancel is not None and cancel.is_set():
                raise Cancelled("extraction cancelled")
            starts.append(chunk.start)
            lengths.append(chunk.length)
            yield chunk.samples

    for batch in _feature_batches(backend, samples(), a.sample_rate, cancel):
        rows.add(batch)
    meta = {
        "source": source or str(path),
        "chunks": len(lengths),
        "duration": sum(lengths) / a.sample_rate,
        "format": info.format,
        "channels": info.channels,
        "source_rate": info.sample_rate,
        "created": time.time(),
    }
    arrays: dict[str, np.ndarray | RawArray] = {
        **rows.arrays(),
        "starts": np.asarray(starts, dtype=np.float64),
        "lengths": np.asarray(lengths, dtype=np.int64),
    }
    return SongFeatures(arrays, meta)


def extract_song(
    path: Path,
    key: str,
    store: FeatureStore,
    settings: Settings,
    backend: Backend | MusicnnBackend,
    cancel: threading.Event | None = None,
    info: audio.AudioInfo | None = None,
) -> dict[str, Any]:
    """`compute_song` with its rows spilled to the store's scratch files, then the entry
    written atomically. Returns the entry's metadata."""
    spill = _Spill(store, key)
    try:
        song = compute_song(path, settings, backend, spill, cancel, info)
        store.save_arrays(key, song.arrays, song.meta)
        return song.meta
    finally:
        spill.close()


def _feature_batches(
    backend: Backend, chunks: Iterator[np.ndarray], sample_rate: int, cancel: threading.Event | None
) -> Iterator[FeatureBatch]:
    """A song's features: the backend's own `stream` where it has one (sonic-annotator: one host
    process per song, not per batch), else BATCH_CHUNKS chunks per `batch` call."""
    stream = getattr(backend, "stream", None)
    if stream is not None:
        yield from stream(chunks, sample_rate, cancel)
        return
    pending: list[np.ndarray] = []
    for chunk in chunks:
        pending.append(chunk)
        if len(pending) == BATCH_CHUNKS:
            yield backend.batch(np.stack(pending), sample_rate)
            pending.clear()
    if pending:
        yield backend.batch(np.stack(pending), sample_rate)


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def extract(
    songs: Iterable[Song],
    settings: Settings,
    workspace: Workspace,
    report: Reporter = ignore,
    cancel: threading.Event | None = None,
    retry_failed: bool = False,
) -> ExtractResult:
    """Extract every song not yet in the store. Returns counts and the failures."""
    cancel = cancel or threading.Event()
    store = store_for(workspace.ensure(), settings)
    workers = settings.extraction.workers or _default_workers()
    result = ExtractResult(store=store.folder)
    songs = list(songs)
    todo: dict[str, Song] = {}
    for song in songs:
        if song.too_short and not store.has(song.key):
            store.record_failure(song.key, str(song.path), song.error or "too short")
        if not song.ok:
            result.failed.append((str(song.path), song.error or "unreadable"))
        elif song.key not in todo:
            todo[song.key] = song
    total = len(todo) + len(result.failed)
    report(JobStarted("extract", total, sum(s.duration or 0.0 for s in todo.values())))
    for path, reason in result.failed:
        report(SongFailed(path, reason))
    queue: list[Song] = []
    for key, song in todo.items():
        recorded = None if retry_failed else store.failure(key)
        chunks = _cached_chunks(store, song, report)
        if chunks is not None:
            result.cached += 1
            report(SongDone(str(song.path), chunks, song.duration or 0, True))
        elif recorded:
            result.failed.append((str(song.path), recorded))
            report(SongFailed(str(song.path), recorded))
        else:
            queue.append(song)
    if queue and settings.cluster.engine == "ray":
        from .cluster import extract_on_ray

        extract_on_ray(queue, settings, store, result, report, cancel, total)
    elif queue:  # the backend (and torch, where it needs it) only when there is math to do
        backend = get_backend(settings.features, workspace)
        one_math_thread(backend)
        _run(queue, settings, store, backend, workers, result, report, cancel, total)
    report(JobFinished("extract", cancelled=result.cancelled))
    return result


def _cached_chunks(store: FeatureStore, song: Song, report: Reporter) -> int | None:
    """Chunks of the song's stored entry, or None when it has none; a damaged entry is moved
    aside (and said so) so that the song is extracted again."""
    try:
        return store.chunk_count(song.key)
    except FileNotFoundError:
        return None
    except DamagedEntry as exc:
        aside = store.quarantine(song.key)
        report(Message(f"{song.path}: stored features {exc}; moved to {aside}, extracting again", "warning"))
        return None


def _run(
    queue: list[Song],
    settings: Settings,
    store: FeatureStore,
    backend: Backend | MusicnnBackend,
    workers: int,
    result: ExtractResult,
    report: Reporter,
    cancel: threading.Event,
    total: int,
) -> None:
    """Songs another process is extracting right now are put back and taken up again at the
    end, waiting for that process: both runs end with the whole store, neither fails them."""
    start = time.monotonic()
    remaining_audio = sum(s.duration or 0.0 for s in queue)
    free = list(range(workers))

    def work(song: Song, slot: int, wait: bool) -> tuple[str, Any]:
        while True:
            with store.claim(song.key) as mine:
                if mine:
                    return _extract_claimed(song, slot, store, settings, backend, report, cancel)
            if not wait:
                return "busy", None
            if cancel.is_set():
                raise Cancelled("extraction cancelled")
            time.sleep(0.2)

    def progress() -> None:
        elapsed = time.monotonic() - start
        rate = result.audio_seconds / elapsed if elapsed > 0 else 0.0
        eta = remaining_audio / rate if rate > 0 else None
        done = result.done + result.cached
        report(ExtractProgress(done, len(result.failed), total, result.audio_seconds, elapsed, rate, eta))

    pending: dict[Future, tuple[Song, int]] = {}
    items = iter(queue)
    busy: list[Song] = []  # claimed by another process: retried, waiting, once the rest is done
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="extract") as pool:
        try:
            while True:
                while free and not cancel.is_set():
                    song = next(items, None)
                    wait = song is None
                    if song is None and busy:
                        song = busy.pop(0)
                    if song is None:
                        break
                    slot = free.pop(0)
                    pending[pool.submit(work, song, slot, wait)] = (song, slot)
                if not pending:
                    break
                finished, _ = wait_for(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for fut in finished:
                    song, slot = pending.pop(fut)
                    free.append(slot)
                    if _finish(fut, song, slot, store, result, report) == "busy":
                        busy.append(song)
                        continue
                    remaining_audio -= song.duration or 0.0
                    progress()
        except KeyboardInterrupt:
            cancel.set()
            wait_for(pending)
            raise
    result.elapsed = time.monotonic() - start
    result.cancelled = cancel.is_set()


def _extract_claimed(
    song: Song,
    slot: int,
    store: FeatureStore,
    settings: Settings,
    backend: Backend | MusicnnBackend,
    report: Reporter,
    cancel: threading.Event,
) -> tuple[str, Any]:
    """With the song's lock held: it may have been stored by another process meanwhile."""
    if store.has(song.key):
        return "cached", store.chunk_count(song.key)
    report(SongStarted(str(song.path), slot))
    return "done", extract_song(song.path, song.key, store, settings, backend, cancel, song_info(song))


def song_info(song: Song) -> audio.AudioInfo | None:
    """A scanned song carries its probe; others are probed in `compute_song`."""
    if not song.channels:
        return None
    return audio.AudioInfo(str(song.path), song.format, "", song.sample_rate, song.channels, song.duration)


def _finish(
    fut: Future,
    song: Song,
    slot: int,
    store: FeatureStore,
    result: ExtractResult,
    report: Reporter,
) -> str:
    """Record one song's outcome; returns it (done | cached | busy | failed | cancelled)."""
    try:
        outcome, value = fut.result()
    except Cancelled:
        return "cancelled"
    except AudioError as exc:
        reason = str(exc).removeprefix(f"{song.path}: ")
        return settle(song, slot, store, result, report, "bad-song", reason)
    except Exception as exc:  # not the file's fault (a killed decoder, a full disk): retry later
        return settle(song, slot, store, result, report, "failed", str(exc))
    return settle(song, slot, store, result, report, outcome, value)


def settle(
    song: Song,
    slot: int,
    store: FeatureStore,
    result: ExtractResult,
    report: Reporter,
    outcome: str,
    value: Any,
) -> str:
    """Count and report one song's outcome, as every engine does: `done` (value: the entry's
    metadata), `cached` (its chunk count), `bad-song` (the file's own fault, recorded in the
    store: value is the reason) or `failed` (anything else, tried again next run)."""
    if outcome == "bad-song":
        store.record_failure(song.key, str(song.path), value)
    if outcome in ("bad-song", "failed"):
        result.failed.append((str(song.path), value))
        report(SongFailed(str(song.path), value, slot))
        return "failed"
    if outcome == "cached":
        result.cached += 1
        report(SongDone(str(song.path), int(value), song.duration or 0.0, True, slot))
    elif outcome == "done":
        seconds = float(value["duration"])
        result.done += 1
        result.audio_seconds += seconds
        report(SongDone(str(song.path), int(value["chunks"]), seconds, False, slot))
    return outcome
