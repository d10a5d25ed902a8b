"""Where things live: features/, models/ and downloads/ under one workspace folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .config import APP_NAME, Settings
from .errors import ConfigError

#: The demo's default size, the same for `genre demo` and the TUI's demo key.
DEMO_SONGS_PER_GENRE = 8
DEMO_SECONDS = 45.0


@dataclass(frozen=True)
class Workspace:
    """The folders of one workspace (created on first use)."""

    root: Path

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def song_cache(self) -> Path:
        """Probe and hash results of scanned songs (see dataset.scan)."""
        return self.root / "cache" / "songs.json"

    def demo_dataset(
        self, songs_per_genre: int = DEMO_SONGS_PER_GENRE, seconds: float = DEMO_SECONDS
    ) -> Path:
        """Where the generated demo lives; a demo of other dimensions gets its own folder beside
        it, so that trying `--songs-per-genre 12` never collides with the default demo."""
        if (songs_per_genre, seconds) == (DEMO_SONGS_PER_GENRE, DEMO_SECONDS):
            return self.root / "demo" / "dataset"
        return self.root / "demo" / f"dataset-{songs_per_genre}x{seconds:g}s"

    def ensure(self) -> Workspace:
        """Create the folders; refuse, in one line, a workspace this process cannot write."""
        try:
            for d in (self.features, self.models, self.downloads):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"workspace {self.root}: cannot create it ({exc.strerror})") from None
        for d in (self.root, self.features, self.models, self.downloads):
            check_writable(d)
        return self


def check_writable(folder: Path) -> None:
    """One line naming a folder we must write but cannot (read-only mount, permissions)."""
    if not os.access(folder, os.W_OK):
        raise ConfigError(
            f"{folder} is not writable (read-only file system or permissions): use --workspace "
            "with a folder you can write; commands that only read keep working"
        )


def default_root() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def from_settings(settings: Settings) -> Workspace:
    """The workspace named by the settings, else the platform default."""
    root = Path(settings.workspace).expanduser() if settings.workspace else default_root()
    return Workspace(root.resolve())
