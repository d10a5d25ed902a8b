"""What the feature store holds for a song, as the panes show it."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from genre_erkennung.core.config import Settings
from genre_erkennung.core.dataset import Song
from genre_erkennung.core.workspace import Workspace

if TYPE_CHECKING:
    from genre_erkennung.core.store import FeatureStore


class FeatureState(enum.Enum):
    """A song's features under the app's feature settings."""

    EXTRACTED = "extracted"
    FAILED = "failed"
    MISSING = "not yet"
    UNKNOWN = "unknown (feature backend unavailable)"


class StoreView:
    """The store for the app's feature settings, opened on first use: a backend that cannot load
    makes every state UNKNOWN instead of breaking the panes."""

    def __init__(self, workspace: Workspace, settings: Settings) -> None:
        self._workspace = workspace
        self._settings = settings
        self._store: FeatureStore | None = None
        self._unavailable = False

    def _open(self) -> FeatureStore | None:
        if self._store is None and not self._unavailable:
            try:
                from genre_erkennung.core.store import FeatureStore, config_key

                self._store = FeatureStore(self._workspace.features, config_key(self._settings))
            except Exception:  # the feature backend may be unavailable; the TUI still works
                self._unavailable = True
        return self._store

    def state(self, song: Song) -> FeatureState:
        store = self._open()
        if store is None:
            return FeatureState.UNKNOWN
        if store.has(song.key):
            return FeatureState.EXTRACTED
        return FeatureState.FAILED if store.failure(song.key) else FeatureState.MISSING

    def failure(self, song: Song) -> str | None:
        """Why the song's extraction failed (None if it did not)."""
        store = self._open()
        return store.failure(song.key) if store is not None else None

    def extracted(self, songs: list[Song]) -> int:
        return sum(1 for s in songs if self.state(s) is FeatureState.EXTRACTED)
