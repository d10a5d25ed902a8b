"""Where things live: features/, models/ and downloads/ under one workspace folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .config import APP_NAME, Settings
from .errors import ConfigError


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
