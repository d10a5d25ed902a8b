"""The content-addressed feature cache.

`WORKSPACE/features/<config-key>/<audio-key>.npz`: one file per song per feature config, written
atomically, so a crash leaves a whole entry or none. The audio key hashes the song's bytes; the
config key hashes everything that changes the numbers. The entry's metadata travels inside the
npz as a JSON string, so there is no sidecar to get out of step. Failed songs are recorded as
`<audio-key>.failed.json`. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path, atomic_write_json
from .config import Settings
from .workspace import Workspace

ARRAYS = ("mfcc", "contrast_peaks", "contrast_valleys", "starts", "lengths")


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
        """A scratch file for rows of an entry being extracted (swept like any stale temp)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / f".{audio_key}.{name}.tmp"

    def load(self, audio_key: str) -> Entry:
        with np.load(self.path(audio_key), allow_pickle=False) as z:
            arrays = {name: z[name] for name in ARRAYS}
            meta = json.loads(str(z["meta"]))
        return Entry(**arrays, meta=meta)

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
