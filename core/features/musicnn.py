"""The `musicnn` feature backend: pretrained embeddings per 30-s chunk instead of MFCC/contrast.

Chunks are the project's own (decode at `audio.sample_rate`, `audio.chunk_seconds` pieces, the
same starts and true lengths), so votes, the store and queries work as for the other backends.
Each chunk's true length is resampled to 16 kHz (soxr HQ; `features.musicnn_resampler`), cut
into 3-s patches and embedded (see core/pretrained/embed.py); an entry holds per chunk the mean
and std of the patch embeddings and the mean tag scores:

    embedding [C, 200], embedding_std [C, 200], tags [C, 50], patches [C], starts, lengths
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import audio
from ..config import FeatureSettings, Settings
from ..errors import Cancelled, GenreError
from ..store import RawArray
from ..workspace import Workspace

NAME = "musicnn"
#: Bump when the numbers change; part of the store's config key.
MUSICNN_VERSION = 1
#: Chunks embedded together: 40 patches, a good CPU batch; memory stays small (~0.4 GB peak).
BATCH_CHUNKS = 4


def musicnn_params(settings: FeatureSettings) -> dict[str, Any]:
    """What changes the stored numbers (the store's config key), and what a card shows."""
    from ..pretrained.install import MUSICNN, VARIANTS

    # the default's words are those of the first stores, so their key (and entries) stand
    kaiser = settings.musicnn_resampler == "kaiser-best"
    return {
        "backend": NAME,
        "feature_version": MUSICNN_VERSION,
        "musicnn": {
            "variant": settings.musicnn,
            "checkpoint": VARIANTS[settings.musicnn][0],
            "weights": f"{MUSICNN.package}=={MUSICNN.version} sha256:{MUSICNN.sha256[:16]}",
            "resampler": "kaiser_best of resampy 0.2.1 to 16000 Hz" if kaiser else "soxr_hq to 16000 Hz",
            "mel": {
                "n_fft": 512,
                "hop": 256,
                "n_mels": 96,
                "window": "hann periodic",
                "pad": "reflect" if kaiser else "zeros",
            },
            "compression": "float16, log10(10000 x + 1)",
            "patch_frames": 187,
            "pooling": "mean and std of patch embeddings per chunk (true length only)",
        },
    }


class MusicnnBackend:
    """musicnn on CUDA when there is one (features.device), else the CPU."""

    name = NAME

    def __init__(self, settings: FeatureSettings, workspace: Workspace | None) -> None:
        from ..device import pick_device
        from ..pretrained.embed import Embedder

        if workspace is None:
            raise GenreError("the musicnn backend needs a workspace to find its weights")
        self.variant = settings.musicnn
        device = pick_device(settings.device, "features.device")
        self.embedder = Embedder(workspace, settings.musicnn, device, settings.musicnn_resampler)
        self.device = self.embedder.device

    def whole_file(self, path: str | Path, sample_rate: int | None = None) -> dict[str, np.ndarray]:
        """Per-patch embeddings and tag scores of a whole file (its own rate, see Embedder)."""
        return self.embedder.whole_file(path)


def embed_song(
    path: Path,
    settings: Settings,
    backend: MusicnnBackend,
    cancel: threading.Event | None = None,
    info: audio.AudioInfo | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray | RawArray]]:
    """Decode one song into chunks and embed them a few at a time; returns (meta, arrays) of
    its entry, written by the caller. A pure function of (bytes, settings), flat memory."""
    a = settings.audio
    info = info or audio.probe(path)
    parts: list[Any] = []
    starts: list[float] = []
    lengths: list[int] = []
    pending: list[audio.Chunk] = []

    def flush() -> None:
        if pending:
            samples = np.stack([c.samples for c in pending])
            parts.append(
                backend.embedder.chunks(samples, np.array([c.length for c in pending]), a.sample_rate)
            )
            pending.clear()

    from ..extract import _read_ahead  # decode the next chunks while these are embedded

    chunks = audio.chunks(path, a.sample_rate, a.chunk_seconds, a.min_chunk_seconds, info)
    for chunk in _read_ahead(chunks, BATCH_CHUNKS):
        if cancel is not None and cancel.is_set():
            raise Cancelled("extraction cancelled")
        pending.append(chunk)
        starts.append(chunk.start)
        lengths.append(chunk.length)
        if len(pending) == BATCH_CHUNKS:
            flush()
    flush()
    meta = {
        "source": str(path),
        "chunks": len(lengths),
        "duration": sum(lengths) / a.sample_rate,
        "format": info.format,
        "channels": info.channels,
        "source_rate": info.sample_rate,
        "created": time.time(),
        "musicnn": backend.variant,
        "tag_names": backend.embedder.tags,
    }
    arrays: dict[str, np.ndarray | RawArray] = {
        "embedding": np.concatenate([p.mean for p in parts]),
        "embedding_std": np.concatenate([p.std for p in parts]),
        "tags": np.concatenate([p.tags for p in parts]),
        "patches": np.concatenate([p.patches for p in parts]),
        "starts": np.asarray(starts, dtype=np.float64),
        "lengths": np.asarray(lengths, dtype=np.int64),
    }
    return meta, arrays
