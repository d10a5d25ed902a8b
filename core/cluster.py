"""Extraction and folder queries on a Ray cluster (`cluster.engine = "ray"`).

Ray schedules, retries and cancels; this module only says what one song's task is and writes
what comes back. A task is `compute_song` (decode + features, writing nothing) on a worker; the
driver holds the song's lock (`FeatureStore.claim`) while the task runs and writes the entry
atomically itself, so the store ends up exactly as a local extraction leaves it, and workers
need no access to the workspace. A worker that cannot see a song's path says so and gets the
bytes instead. A task whose worker dies is retried by Ray (`max_retries`); a song that is bad
audio comes back as a value, is recorded once and never retried. Ray is imported only here, and
only when this engine runs.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .config import ClusterSettings, Settings
from .dataset import Song
from .errors import AudioError, GenreError, ToolMissing
from .events import ExtractProgress, Reporter, SongStarted
from .store import FeatureStore

#: A task's worker may die this many times (a killed process, a lost node) before the song fails.
RETRIES = 3
#: Tasks in flight per CPU of the cluster: enough to hide the driver's writes, few held locks.
IN_FLIGHT_PER_CPU = 2


def _ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise ToolMissing(
            "cluster.engine = ray needs Ray: pip install 'genre-erkennung[cluster]', or use the local engine "
            "(--engine local)"
        ) from None
    return ray


@contextlib.contextmanager
def connected(cs: ClusterSettings) -> Iterator[ModuleType]:
    """Ray, joined to `cs.address` or to a Ray instance started here (and stopped after). A
    caller that already called `ray.init` (a test's cluster, a notebook) keeps its connection."""
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    _check_reachable(cs.address)
    _fault_handler()
    try:
        ray.init(
            address=cs.address or "local",  # None would join any `ray start` cluster found here
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = cs.address or "a Ray instance on this machine"
        raise GenreError(
            f"cannot start or join {where} ({str(exc).splitlines()[0]}): check cluster.address / "
            "--address (the head's host:port from `ray start --head`); a cluster with token "
            "authentication also needs RAY_AUTH_MODE=token and its token here"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _fault_handler() -> None:
    """Enable faulthandler on the process's real stderr before Ray does it on `sys.stderr`: Ray
    tolerates only io.UnsupportedOperation there, and a UI that captures stderr (Textual's
    capture has fileno -1) made `ray.init` fail with ValueError in `genre tui`."""
    stderr = sys.__stderr__
    if faulthandler.is_enabled() or stderr is None:
        return
    with contextlib.suppress(OSError, ValueError):  # no usable descriptor: Ray's own try decides
        faulthandler.enable(file=stderr, all_threads=False)


def _check_reachable(address: str) -> None:
    """A head that is not listening is one line at once (Ray itself retries for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # '' (start one here), 'auto', ray://: left to Ray
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as exc:
        raise GenreError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}): start it with "
            "`ray start --head --port PORT` or fix cluster.address / --address"
        ) from None


_backends: dict[str, Any] = {}


def _backend(settings: Settings) -> Any:
    """One feature backend per worker process and feature config (built once, reused by tasks),
    with one math thread as a local extraction worker has (the task's ffmpeg decodes beside it;
    on the CPU the native math is numpy, so a task imports no torch)."""
    from .features import get_backend, one_math_thread

    key = repr(settings.features)
    if key not in _backends:
        _backends[key] = get_backend(settings.features)
        one_math_thread(_backends[key])
    return _backends[key]


@contextlib.contextmanager
def _local_copy(source: str, data: bytes | None) -> Iterator[Path]:
    """The song as a file this worker can read: its own path, or the shipped bytes in a scratch
    file that is removed afterwards."""
    if data is None:
        yield Path(source)
        return
    fd, name = tempfile.mkstemp(prefix="genre-song-", suffix=Path(source).suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def song_task(source: str, size: int, data: bytes | None, settings: Settings, info: Any) -> tuple[str, Any]:
    """One song on a worker: ("done", SongFeatures), ("bad-song", reason) when the file is not
    usable audio, or ("need-bytes", None) when this worker does not see the driver's file."""
    from .extract import compute_song

    if data is None and not _visible(Path(source), size):
        return "need-bytes", None
    backend = _backend(settings)
    with _local_copy(source, data) as path:
        try:
            return "done", compute_song(path, settings, backend, info=info, source=source)
        except AudioError as exc:
            return "bad-song", str(exc).removeprefix(f"{path}: ")


def _check_backend(settings: Settings) -> None:
    """The musicnn backend reads its weights from the workspace, which workers need not see:
    one line before Ray starts, not one failure per song."""
    if settings.features.backend == "musicnn":
        raise GenreError(
            "the musicnn backend does not run on Ray (its weights live in the workspace, which "
            "workers need not see): use --engine local (cluster.engine = local)"
        )


def _visible(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


@dataclass
class _Task:
    song: Song
    slot: int
    lock: contextlib.ExitStack
    shipped: bool = False


def extract_on_ray(
    queue: list[Song],
    settings: Settings,
    store: FeatureStore,
    result: Any,
    report: Reporter,
    cancel: threading.Event,
    total: int,
) -> None:
    """Run `queue` (songs not yet in the store) as Ray tasks, writing each entry as it arrives.

    Songs another process is extracting right now wait until the rest is done, as locally.
    Ctrl-C (or `cancel`) cancels every outstanding task; what was written stays written.
    """
    from .extract import settle, song_info

    _check_backend(settings)
    cs = settings.cluster
    with connected(cs) as ray:
        remote = ray.remote(song_task).options(
            num_cpus=cs.task_cpus, num_gpus=cs.task_gpus, max_retries=RETRIES
        )
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        window = max(2, int(IN_FLIGHT_PER_CPU * cpus / cs.task_cpus))
        start = time.monotonic()
        remaining_audio = sum(s.duration or 0.0 for s in queue)
        todo, busy = list(queue), list[Song]()
        pending: dict[Any, _Task] = {}
        free = list(range(window))

        def submit(task: _Task, ship: bool) -> None:
            s = task.song
            data = ray.put(s.path.read_bytes()) if ship else None
            task.shipped = ship
            pending[remote.remote(str(s.path), s.path.stat().st_size, data, settings, song_info(s))] = task

        def progress() -> None:
            elapsed = time.monotonic() - start
            rate = result.audio_seconds / elapsed if elapsed > 0 else 0.0
            eta = remaining_audio / rate if rate > 0 else None
            done = result.done + result.cached
            report(ExtractProgress(done, len(result.failed), total, result.audio_seconds, elapsed, rate, eta))

        try:
            while todo or busy or pending:
                if cancel.is_set():
                    break
                while free and (todo or (busy and not pending)) and not cancel.is_set():
                    song = todo.pop(0) if todo else busy.pop(0)
                    lock = contextlib.ExitStack()
                    if not lock.enter_context(store.claim(song.key)):
                        lock.close()
                        busy.append(song)
                        if not todo:
                            time.sleep(0.2)  # only songs another process holds are left
                        continue
                    if store.has(song.key):  # the other process finished it meanwhile
                        lock.close()
                        settle(song, 0, store, result, report, "cached", store.chunk_count(song.key))
                        continue
                    task = _Task(song, free.pop(0), lock)
                    report(SongStarted(str(song.path), task.slot))
                    submit(task, cs.ship == "bytes")
                if not pending:
                    continue
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
                for ref in ready:
                    task = pending.pop(ref)
                    if _receive(ray, ref, task, store, result, report, settle) == "need-bytes":
                        submit(task, True)  # it keeps its lock and slot
                        continue
                    task.lock.close()
                    free.append(task.slot)
                    remaining_audio -= task.song.duration or 0.0
                    progress()
        except KeyboardInterrupt:
            cancel.set()
            raise
        finally:
            for ref, task in pending.items():
                ray.cancel(ref, force=True)
                task.lock.close()
        result.elapsed = time.monotonic() - start
        result.cancelled = cancel.is_set()


def _receive(
    ray: ModuleType, ref: Any, task: _Task, store: FeatureStore, result: Any, report: Reporter, settle: Any
) -> str:
    """One finished task: the entry written (atomically, by the store), or the failure counted."""
    song = task.song
    try:
        outcome, value = ray.get(ref)
    except ray.exceptions.RayError as exc:  # retries spent, or cancelled: not the song's fault
        why = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        return settle(song, task.slot, store, result, report, "failed", f"on the cluster: {why}")
    if outcome == "need-bytes":
        return "need-bytes" if not task.shipped else "failed"
    if outcome == "done":
        store.save_arrays(song.key, value.arrays, value.meta)
        value = value.meta
    return settle(song, task.slot, store, result, report, outcome, value)


class Classifier:
    """A Ray actor holding one model: loaded once per worker, then fed song after song.

    It gets the model's files (card and weights) rather than a path, so workers need no view of
    the workspace; `registry.load` checks them exactly as a local query does.
    """

    def __init__(self, name: str, files: dict[str, bytes], device: str) -> None:
        import shutil

        import torch

        from .registry import load, model_dir
        from .workspace import Workspace

        tmp = Path(tempfile.mkdtemp(prefix="genre-model-"))
        try:
            ws = Workspace(tmp)
            folder = model_dir(ws, name)
            folder.mkdir(parents=True)
            for file, data in files.items():
                (folder / file).write_bytes(data)
            self.loaded = load(ws, name, device)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        torch.set_num_threads(1)

    def classify(
        self, source: str, size: int, data: bytes | None, settings: Settings, info: Any, stored: Any
    ) -> tuple[str, Any]:
        """Chunk probabilities of one song: from its `stored` arrays (mfcc, peaks, lengths) when
        the driver's store has them, else from features computed here, which come back too for
        the driver to store. ("bad-song", reason) and ("need-bytes", None) as for `song_task`."""
        from .predict import predict_chunks

        features = None
        if stored is None:
            outcome, features = song_task(source, size, data, settings, info)
            if outcome != "done":
                return outcome, features
            a = features.arrays
            stored = (a["mfcc"], a["contrast_peaks"], a["lengths"])
        return "done", (predict_chunks(self.loaded, *stored), features)


def query_on_ray(
    sources: list[str],
    loaded: Any,
    settings: Settings,
    workspace: Any,
    max_items: int = 20,
    report: Reporter | None = None,
    cancel: threading.Event | None = None,
    model_features: bool = False,
    on_result: Any = None,
) -> Any:
    """`predict.query` with the songs classified by Ray actors (one model each), in parallel.

    Sources are expanded (URLs fetched) and songs probed here; features a song already has in the
    store are sent instead of its audio, new ones come back and are stored, as a local query
    stores them. `on_result(song)` sees each song as it arrives; the results keep the sources'
    order. Ctrl-C or `cancel` stops with what was classified so far (`complete` False).
    """
    from .events import ignore
    from .predict import drive, settings_for

    report = report or ignore
    cancel = cancel or threading.Event()
    settings = settings_for(loaded, settings, model_features)

    def run(stores: Any, result: Any) -> bool:
        return _query(
            sources, loaded, settings, workspace, stores, max_items, report, cancel, result, on_result
        )

    return drive(loaded, settings, workspace, len(sources), report, cancel, run)


def _query(
    sources: list[str],
    loaded: Any,
    settings: Settings,
    workspace: Any,
    stores: Any,
    max_items: int,
    report: Reporter,
    cancel: threading.Event,
    result: Any,
    on_result: Any,
) -> bool:
    """The Ray query's loop; True when it went through every song."""
    from .dataset import content_key
    from .events import SongFailed
    from .fetch import forget
    from .predict import _expand, _probe, _Tally, song_result
    from .registry import CARD, WEIGHTS
    from .store import DamagedEntry

    tally = _Tally(report)

    def failed(shown: str, why: str) -> None:
        result.errors.append((shown, why))
        report(SongFailed(shown, why))
        tally.count(ok=False)

    songs: list[tuple[str, str, Path, str | None, bool]] = []  # (source, shown, path, title, downloaded)
    for source in sources:
        if cancel.is_set():
            return False
        try:
            found = _expand(source, workspace, max_items, report, cancel, settings)
        except GenreError as exc:
            tally.total += 1
            failed(source, str(exc))
            continue
        tally.total += len(found)
        songs += [(source, shown, path, title, downloaded) for shown, path, title, downloaded in found]

    def bad(i: int, why: str) -> None:
        source, shown, path, _, downloaded = songs[i]
        why = why.removeprefix(f"{path}: ")
        if downloaded:
            forget(workspace, source, path)
            why = f"the download is not usable audio ({why})"
        failed(shown, f"{shown}: {why}")

    def stored(key: str) -> Any:
        try:
            e = stores.store.load(key)
        except (FileNotFoundError, DamagedEntry):
            return None
        return e

    _check_backend(settings)
    cs = settings.cluster
    files = {name: (loaded.path / name).read_bytes() for name in (CARD, WEIGHTS)}
    classified: dict[int, Any] = {}
    with connected(cs) as ray:
        actor = ray.remote(Classifier).options(
            num_cpus=cs.task_cpus, num_gpus=cs.task_gpus, max_restarts=RETRIES, max_task_retries=RETRIES
        )
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        n = max(1, min(len(songs), int(cpus / cs.task_cpus)))
        model_files = ray.put(files)
        device = "cuda" if cs.task_gpus > 0 else "cpu"
        free = [actor.remote(loaded.name, model_files, device) for _ in range(n)] if songs else []
        pending: dict[Any, tuple[Any, int, Any, str, bool]] = {}
        todo = list(range(len(songs)))

        def submit(worker: Any, i: int, info: Any, key: str, ship: bool) -> None:
            path = songs[i][2]
            e = stored(key)
            arrays = None if e is None else (e.mfcc, e.contrast_peaks, e.lengths)
            data = ray.put(path.read_bytes()) if ship and arrays is None else None
            ref = worker.classify.remote(str(path), path.stat().st_size, data, settings, info, arrays)
            pending[ref] = (worker, i, info, key, ship)

        try:
            while todo or pending:
                if cancel.is_set():
                    return False
                while free and todo and not cancel.is_set():
                    i = todo.pop(0)
                    try:
                        info, key = _probe(songs[i][2]), content_key(songs[i][2])
                    except (GenreError, OSError) as exc:
                        bad(i, str(exc))
                        continue
                    submit(free.pop(), i, info, key, cs.ship == "bytes")
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2) if pending else ([], [])
                for ref in ready:
                    worker, i, info, key, shipped = pending.pop(ref)
                    try:
                        outcome, value = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        outcome, value = "failed", f"on the cluster: {str(exc).strip().splitlines()[-1]}"
                    if outcome == "need-bytes" and not shipped:
                        submit(worker, i, info, key, True)
                        continue
                    free.append(worker)
                    if outcome == "failed":
                        failed(songs[i][1], f"{songs[i][1]}: {value}")
                        continue
                    if outcome != "done":
                        bad(i, str(value))
                        continue
                    probs, features = value
                    if features is not None and stores.writable and not stores.store.has(key):
                        stores.store.save_arrays(key, features.arrays, features.meta)
                    if features is not None:
                        starts, lengths = features.arrays["starts"], features.arrays["lengths"]
                    else:  # classified from the stored entry the driver sent
                        e = stores.store.load(key)
                        starts, lengths = e.starts, e.lengths
                    _, shown, path, title, _ = songs[i]
                    song = song_result(
                        loaded.genres, settings, path, info, starts, lengths, probs, shown, title, report
                    )
                    classified[i] = song
                    tally.count(ok=True)
                    if on_result is not None:
                        on_result(song)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            result.results = [classified[i] for i in sorted(classified)]
    return True
