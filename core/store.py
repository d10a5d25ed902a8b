"""The content-addressed feature cache.

`WORKSPACE/features/<config-key>/<audio-key>.npz`: one file per song per feature config, written
atomically, so a crash leaves a whole entry or none. The audio key hashes the song's bytes; the
config key hashes everything that changes the numbers. The entry's metadata travels inside the
npz as a JSON string, so there is no sidecar to get out of step. Failed songs are recorded as
`<audio-key>.failed.json`. Nothing is pickled.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path, atomic_write_json
from .config import Settings
from .errors import GenreError
from .workspace import Workspace

ARRAYS = ("mfcc", "contrast_peaks", "contrast_valleys", "starts", "lengths")
#: The musicnn backend's entries (see features/musicnn.py): per chunk, not per frame.
EMBEDDING_ARRAYS = ("embedding", "embedding_std", "tags", "patches", "starts", "lengths")
DAMAGED = "damaged"  # the sub-folder damaged entries are moved to


class DamagedEntry(GenreError):
    """A stored entry that is not a whole npz of the expected arrays (a full disk, a copy cut
    short): it is moved aside and extracted again, never half-read."""


@dataclass
class Entry:
    """The per-chunk features of one song."""

    mfcc: np.ndarray  # float32 [C, T_mfcc, 20]
    contrast_peaks: np.ndarray  # float32 [C, T_sc, bands]
    contrast_valleys: np.ndarray  # float32 [C, T_sc, bands]
    starts: np.ndarray  # float64 [C] seconds
    lengths: np.ndarray  # int64 [C] true samples before padding
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def chunks(self) -> int:
        return int(self.mfcc.shape[0])


@dataclass(frozen=True)
class RawArray:
    """A C-ordered array kept in a raw file (no header) until it is written into an entry."""

    path: Path
    dtype: np.dtype
    shape: tuple[int, ...]


def _write_npz(f, arrays: dict[str, np.ndarray | RawArray]) -> None:
    """What np.savez writes, except that RawArrays stream from disk and never sit in memory."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                if isinstance(arr, RawArray):
                    header = {
                        "descr": np.lib.format.dtype_to_descr(arr.dtype),
                        "fortran_order": False,
                        "shape": arr.shape,
                    }
                    np.lib.format.write_array_header_1_0(member, header)
                    with open(arr.path, "rb") as src:
                        shutil.copyfileobj(src, member, 1 << 20)
                else:
                    np.lib.format.write_array(member, np.asarray(arr), allow_pickle=False)


_LOCK_FDS: dict[Path, int] = {}
_LOCK_FDS_GUARD = threading.Lock()


def _lock_fd(folder: Path) -> int:
    """The process's one descriptor of a store's lock file, kept open for the process's life:
    closing any descriptor of a file drops every fcntl lock the process holds on it, so one
    song's unlock must never close the file under another song's lock."""
    with _LOCK_FDS_GUARD:
        if folder not in _LOCK_FDS:
            folder.mkdir(parents=True, exist_ok=True)
            _LOCK_FDS[folder] = os.open(folder / ".locks", os.O_RDWR | os.O_CREAT, 0o666)
        return _LOCK_FDS[folder]


def _check_entry(e: Entry) -> None:
    c = e.lengths.shape[0] if e.lengths.ndim == 1 else -1
    shapes_ok = (
        e.mfcc.ndim == 3
        and e.contrast_peaks.ndim == 3
        and e.contrast_peaks.shape == e.contrast_valleys.shape
        and e.mfcc.shape[0] == c == e.contrast_peaks.shape[0] == e.starts.shape[0]
    )
    if not shapes_ok:
        raise ValueError("its arrays do not agree in shape")
    if not isinstance(e.meta, dict):
        raise ValueError("its metadata is not a JSON object")


def feature_config(settings: Settings) -> dict[str, Any]:
    """Everything that changes the stored numbers: audio framing plus the backend's parameters."""
    from .features import feature_params

    return {
        "sample_rate": int(settings.audio.sample_rate),
        "chunk_seconds": float(settings.audio.chunk_seconds),
        "min_chunk_seconds": float(settings.audio.min_chunk_seconds),
        **feature_params(settings.features),
    }


def config_key(settings: Settings) -> str:
    blob = json.dumps(feature_config(settings), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class FeatureStore:
    """One folder of entries for one feature config."""

    def __init__(self, root: Path, key: str, config: dict[str, Any] | None = None) -> None:
        self.root = Path(root)
        self.key = key
        self.folder = self.root / key
        if config is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            manifest = self.folder / "config.json"
            if not manifest.exists():
                atomic_write_json(manifest, config)
        self._sweep_stale_temps()

    def _sweep_stale_temps(self, older_than: float = 3600.0) -> None:
        """Temp files left by a killed run; young ones may belong to a run still going."""
        if not self.folder.is_dir():
            return
        now = time.time()
        for tmp in self.folder.glob(".*.tmp"):
            try:
                if now - tmp.stat().st_mtime > older_than:
                    tmp.unlink()
            except OSError:
                pass

    def path(self, audio_key: str) -> Path:
        return self.folder / f"{audio_key}.npz"

    def has(self, audio_key: str) -> bool:
        return self.path(audio_key).is_file()

    def save(self, audio_key: str, entry: Entry) -> None:
        self.save_arrays(audio_key, {name: getattr(entry, name) for name in ARRAYS}, entry.meta)

    def save_arrays(
        self, audio_key: str, arrays: dict[str, np.ndarray | RawArray], meta: dict[str, Any]
    ) -> None:
        """Write one entry atomically; `arrays` holds every name in ARRAYS."""
        payload = {"meta": np.array(json.dumps(meta, ensure_ascii=False)), **arrays}
        with atomic_path(self.path(audio_key)) as tmp, open(tmp, "wb") as f:
            _write_npz(f, payload)
        (self.folder / f"{audio_key}.failed.json").unlink(missing_ok=True)

    def spill_path(self, audio_key: str, name: str) -> Path:
        """A new scratch file for rows of an entry being extracted, unique to this run (two
        processes on one workspace never share one); swept like any stale temp."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix=f".{audio_key}.{name}.", suffix=".tmp", dir=self.folder)
        os.close(fd)
        return Path(path)

    def load(self, audio_key: str) -> Entry:
        """The entry, checked: every array present, shapes that agree, readable metadata."""
        path = self.path(audio_key)
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {name: z[name] for name in ARRAYS}
                meta = json.loads(str(z["meta"]))
            entry = Entry(**arrays, meta=meta)
            _check_entry(entry)
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise DamagedEntry(f"{path.name}: damaged ({exc})") from None
        return entry

    def chunk_count(self, audio_key: str) -> int:
        """Chunks of an entry, reading only its zip directory and `lengths` (cheap for a warm
        run); a damaged file raises DamagedEntry like `load`."""
        try:
            with np.load(self.path(audio_key), allow_pickle=False) as z:
                layout = EMBEDDING_ARRAYS if "embedding" in z.files else ARRAYS
                missing = [name for name in (*layout, "meta") if name not in z.files]
                if missing:
                    raise KeyError(f"no {missing[0]!r} array")
                return int(z["lengths"].shape[0])
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise DamagedEntry(f"{self.path(audio_key).name}: damaged ({exc})") from None

    def quarantine(self, audio_key: str) -> Path:
        """Move a damaged entry aside (kept for a look, never deleted), so it is extracted again."""
        aside = self.folder / DAMAGED / f"{audio_key}.{time.time_ns()}.npz"
        aside.parent.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.path(audio_key), aside)
        return aside

    @contextlib.contextmanager
    def claim(self, audio_key: str) -> Iterator[bool]:
        """Hold this song's extraction lock while the block runs; yields False (without waiting)
        when another process holds it. One byte of a shared lock file per
        song (fcntl locks die with their process, so a kill -9 never leaves a song locked)."""
        fd = _lock_fd(self.folder)
        offset = int(hashlib.sha256(audio_key.encode()).hexdigest()[:12], 16)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
        except (BlockingIOError, PermissionError):
            yield False
            return
        try:
            yield True
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)

    def load_arrays(self, audio_key: str, names: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict]:
        """The named arrays of an entry (all with one row per chunk) and its metadata, for
        backends with other arrays than `Entry`'s; a damaged file raises DamagedEntry."""
        path = self.path(audio_key)
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {name: z[name] for name in names}
                meta = json.loads(str(z["meta"]))
            if len({len(a) for a in arrays.values()}) > 1:
                raise ValueError("arrays disagree in their number of chunks")
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise DamagedEntry(f"{path.name}: damaged ({exc})") from None
        return arrays, meta

    def record_failure(self, audio_key: str, path: str, error: str) -> None:
        record = {"path": path, "error": error, "time": time.time()}
        atomic_write_json(self.folder / f"{audio_key}.failed.json", record)

    def failure(self, audio_key: str) -> str | None:
        f = self.folder / f"{audio_key}.failed.json"
        try:
            return json.loads(f.read_text(encoding="utf-8"))["error"]
        except (OSError, ValueError, KeyError):
            return None

    def entries(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.npz"))


def store_for(workspace: Workspace, settings: Settings) -> FeatureStore:
    """The store holding features computed with `settings` (created if missing)."""
    return FeatureStore(workspace.features, config_key(settings), feature_config(settings))
