"""Decode a cold query's song while torch loads.

A cold `genre query FILE` spends most of its time importing torch (about 1.3 s on one core of
a 2-core box) while the other core idles. `start` probes, hashes and decodes the song in a
thread before the model is loaded: on the CPU the feature math (numpy) runs meanwhile too; on
a GPU it waits for torch at its first batch (the read-ahead of `extract_song` holds the decoded
chunks meanwhile). The entry lands in the feature store, where `classify_file` then finds it.
Failures are left to the normal path, which does the same work again and reports them in its
own words.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import numpy as np

from . import audio
from .config import FeatureSettings, Settings
from .dataset import content_key
from .extract import extract_song
from .features import Backend, FeatureBatch, one_math_thread
from .store import store_for
from .workspace import Workspace


class _Deferred:
    """A feature backend built at its first batch, so that decoding never waits for it (nor for
    torch, which the model's load imports meanwhile)."""

    name = "deferred"

    def __init__(self, settings: FeatureSettings) -> None:
        self.settings = settings
        self._real: Backend | None = None

    def _backend(self) -> Backend:
        if self._real is None:
            from .features import get_backend
            from .features.musicnn import MusicnnBackend

            real = get_backend(self.settings)
            if isinstance(real, MusicnnBackend):  # `start` never defers musicnn's extraction
                raise TypeError("musicnn extraction cannot be deferred")
            self._real = real
            one_math_thread(real)  # as classify_file does: ffmpeg has the other core
        return self._real

    def batch(self, chunks: np.ndarray, sample_rate: int) -> FeatureBatch:
        return self._backend().batch(chunks, sample_rate)

    def whole_file(self, path: str | Path, sample_rate: int | None) -> dict[str, np.ndarray]:
        return self._backend().whole_file(path, sample_rate)


def start(
    source: str, settings: Settings, workspace: Workspace, cancel: threading.Event
) -> threading.Thread | None:
    """Extract `source` into the store for `settings` in a thread; None when there is nothing
    to start (a URL, a folder, no such file). `settings` must carry the model's framing
    (`predict.settings_for_card`), so the entry is the one the query reads."""
    path = Path(source).expanduser()
    if not path.is_file() or settings.features.backend == "musicnn":
        return None  # musicnn's entries are embeddings: extract_song needs its real backend

    def work() -> None:
        with contextlib.suppress(Exception):
            info = audio.probe(path)
            key = content_key(path)
            store = store_for(workspace.ensure(), settings)
            with store.claim(key) as mine:
                if mine and not store.has(key):
                    extract_song(path, key, store, settings, _Deferred(settings.features), cancel, info)

    thread = threading.Thread(target=work, name="prefetch", daemon=True)
    thread.start()
    return thread
