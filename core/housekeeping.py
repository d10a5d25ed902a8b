"""Workspace hygiene: what each feature store and the downloads hold, and pruning what nothing uses.

Feature stores pile up, one per backend and parameter set, and downloads can hold multi-GB mixes.
A store is kept while a saved model (or a stopped run) was trained on it, or while the current
settings compute into it; everything else is ours to remove. Only files this app wrote are ever
removed: store folders, and downloads its manifest lists. A user's song is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Settings
from .errors import ModelError
from .registry import CHECKPOINT, list_models, model_dir, read_card
from .store import DAMAGED, config_key
from .workspace import Workspace, check_writable


@dataclass
class StoreInfo:
    key: str
    folder: Path
    config: dict[str, Any]
    bytes: int
    songs: int
    failed: int
    damaged: int
    models: list[str] = field(default_factory=list)
    current: bool = False  # the store the current settings compute into

    @property
    def in_use(self) -> bool:
        return bool(self.models) or self.current


@dataclass
class DownloadsInfo:
    folder: Path
    bytes: int
    files: list[Path]  # what the manifest lists, plus partial downloads


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _model_stores(workspace: Workspace) -> dict[str, list[str]]:
    """Store key -> the saved models and stopped runs that were trained on it."""
    used: dict[str, list[str]] = {}
    for info in list_models(workspace):
        folder = model_dir(workspace, info.name)
        key = None
        try:
            key = read_card(folder, info.name).features.config_key
        except ModelError:  # a stopped run that never saved a card: its checkpoint names the store
            try:
                state = json.loads((folder / CHECKPOINT / "state.json").read_text(encoding="utf-8"))
                key = state.get("feature_key")
            except (OSError, ValueError):
                pass
        if key:
            used.setdefault(key, []).append(info.name)
    return used


def stores(workspace: Workspace, settings: Settings) -> list[StoreInfo]:
    """Every feature store, largest first."""
    if not workspace.features.is_dir():
        return []
    used, current = _model_stores(workspace), config_key(settings)
    out = []
    for folder in sorted(p for p in workspace.features.iterdir() if p.is_dir()):
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = {}
        damaged = folder / DAMAGED
        out.append(
            StoreInfo(
                key=folder.name,
                folder=folder,
                config=config if isinstance(config, dict) else {},
                bytes=_size(folder),
                songs=sum(1 for _ in folder.glob("*.npz")),
                failed=sum(1 for _ in folder.glob("*.failed.json")),
                damaged=sum(1 for _ in damaged.glob("*.npz")) if damaged.is_dir() else 0,
                models=sorted(used.get(folder.name, [])),
                current=folder.name == current,
            )
        )
    return sorted(out, key=lambda s: -s.bytes)


def downloads(workspace: Workspace) -> DownloadsInfo:
    folder = workspace.downloads
    files: list[Path] = []
    try:
        index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        items = index.get("items", {}) if isinstance(index, dict) else {}
        files = [folder / str(i["file"]) for i in items.values() if isinstance(i, dict) and "file" in i]
    except (OSError, ValueError):
        pass
    if folder.is_dir():
        files += [p for p in folder.iterdir() if p.suffix in (".part", ".ytdl")]
    files = sorted({f for f in files if f.is_file() and f.parent == folder})
    return DownloadsInfo(folder, sum(f.stat().st_size for f in files), files)


@dataclass
class Pruned:
    removed: list[tuple[Path, int]] = field(default_factory=list)  # (path, bytes)

    @property
    def bytes(self) -> int:
        return sum(b for _, b in self.removed)


def prune(workspace: Workspace, settings: Settings, *, dry_run: bool, with_downloads: bool) -> Pruned:
    """Remove stores no model uses and the current settings do not compute into, the damaged
    entries set aside in kept stores, and (with `with_downloads`) the downloads."""
    result = Pruned()
    targets: list[Path] = []
    for s in stores(workspace, settings):
        if not s.in_use:
            targets.append(s.folder)
        elif s.damaged:
            targets.append(s.folder / DAMAGED)
    fetched = downloads(workspace) if with_downloads else None
    if fetched is not None:
        targets += fetched.files
    if not dry_run and targets:
        check_writable(workspace.root)
    for path in targets:
        result.removed.append((path, _size(path)))
        if dry_run:
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            os.unlink(path)
    if fetched is not None and fetched.files and not dry_run:
        (workspace.downloads / "index.json").unlink(missing_ok=True)
    return result
