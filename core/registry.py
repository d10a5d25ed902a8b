"""Saved models: `WORKSPACE/models/<name>/` with weights.safetensors, model.json, history.csv.

Nothing here unpickles: weights and optimizer state are safetensors, everything else is JSON, so
loading a model never executes code from it. model.json is written last and names the weights'
SHA-256, so a half-written or damaged folder is refused with one clear line, never half-loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from .card import FORMAT_VERSION, CardError, ModelCard, Weights
from .config import Settings
from .errors import ModelError
from .pretrained.headcard import HeadCard, is_head
from .workspace import Workspace, check_writable

if TYPE_CHECKING:  # torch is imported where weights are read or written, not to list models
    import torch
    from torch import nn

WEIGHTS, CARD, HISTORY, CHECKPOINT = "weights.safetensors", "model.json", "history.csv", "checkpoint"
LOCK = ".lock"  # held (flock) by the run training the model; the kernel drops it if the run dies
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass
class LoadedModel:
    """A model ready to predict (eval mode) and the card it came with."""

    name: str
    path: Path
    module: nn.Module
    card: ModelCard

    @property
    def genres(self) -> list[str]:
        return self.card.genres


@dataclass
class ModelInfo:
    """One line of `genre models list`; `error` says why a folder cannot be loaded."""

    name: str
    path: Path
    created: str = ""
    kind: str = ""
    genres: list[str] = dataclasses.field(default_factory=list)
    song_accuracy: float | None = None
    baseline_song_accuracy: float | None = None
    status: str = ""  # complete | stopped | incomplete
    error: str | None = None


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or ".." in name:
        raise ModelError(
            f"bad model name {name!r}: use up to 64 letters, digits, '.', '_' or '-', starting "
            "with a letter or digit (no '/' or '..')"
        )
    return name


def model_dir(workspace: Workspace, name: str) -> Path:
    return workspace.models / check_name(name)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tensor_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save as save_safetensors

    return save_safetensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def save(workspace: Workspace, module: nn.Module, card: ModelCard) -> Path:
    """Write weights, history.csv, then model.json (the file that makes the folder a model)."""
    folder = model_dir(workspace, card.name)
    weights = tensor_bytes(module.state_dict())
    atomic_write_bytes(folder / WEIGHTS, weights)
    atomic_write_text(folder / HISTORY, _history_csv(card))
    card.weights = Weights(WEIGHTS, sha256(weights))
    atomic_write_json(folder / CARD, card.to_json())
    return folder


def _history_csv(card: ModelCard) -> str:
    names = [f.name for f in dataclasses.fields(card.history[0])] if card.history else []
    rows = [",".join(names)] + [
        ",".join("" if v is None else str(v) for v in dataclasses.astuple(h)) for h in card.history
    ]
    return "\n".join(rows) + "\n"


def _busy(name: str) -> ModelError:
    return ModelError(
        f"model {name!r} is being trained by another run right now: wait for it to finish, or "
        "choose another --name"
    )


def _lock(folder: Path) -> int | None:
    """The folder's lock as an open descriptor, or None when another process holds it."""
    while True:
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.stat(folder / LOCK).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the lock file was removed under us: take the new one


@contextlib.contextmanager
def claim(workspace: Workspace, name: str, fresh: bool) -> Iterator[Path]:
    """Hold model folder `name` for one run, so a second run of the same name is refused up
    front and never overwrites the first. `fresh` refuses a name that already holds a model.
    The lock file goes when the run ends; a run that saved nothing leaves no folder behind."""
    workspace.ensure()
    folder = model_dir(workspace, name)
    folder.mkdir(parents=True, exist_ok=True)
    fd = _lock(folder)
    if fd is None:
        raise _busy(name)
    try:
        if fresh and ((folder / CARD).exists() or (folder / CHECKPOINT).exists()):
            raise ModelError(
                f"model {name!r} already exists: choose another --name, continue it with "
                f"--resume, or remove it (`genre models rm {name}`)"
            )
        yield folder
    finally:
        (folder / LOCK).unlink()  # while still held: a waiting run sees a new inode and retries
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if the run saved nothing
        os.close(fd)


def is_training(folder: Path) -> bool:
    """Whether a run holds the folder right now."""
    if not (folder / LOCK).exists():
        return False
    fd = _lock(folder)
    if fd is None:
        return True
    os.close(fd)
    return False


def damaged(name: str, why: str) -> ModelError:
    return ModelError(f"model {name!r}: {why}; train it again or remove it (`genre models rm {name}`)")


def read_card(folder: Path, name: str) -> ModelCard:
    """The checked model.json; refuses a missing, unreadable, malformed or too new one."""
    try:
        data = json.loads((folder / CARD).read_text(encoding="utf-8"))
    except FileNotFoundError:
        if (folder / CHECKPOINT).is_dir():
            raise ModelError(
                f"model {name!r} never finished its first save: resume it with "
                f"`genre train --resume --name {name}` or remove it"
            ) from None
        raise ModelError(f"no model named {name!r} (see `genre models list`)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise damaged(name, f"{CARD} is unreadable ({exc})") from None
    version = data.get("format_version") if isinstance(data, dict) else None
    if not isinstance(version, int):
        raise damaged(name, f"{CARD} has no format_version")
    if version > FORMAT_VERSION:
        raise ModelError(
            f"model {name!r} was saved by a newer genre-erkennung (format version "
            f"{version}, this one reads up to {FORMAT_VERSION}): upgrade to use it"
        )
    try:
        if is_head(data):  # a linear/mlp model on musicnn embeddings
            return HeadCard.from_json(data)  # type: ignore[return-value]
        return ModelCard.from_json(data)
    except CardError as exc:
        raise damaged(name, f"{CARD} is incomplete or malformed ({exc})") from None


def load(workspace: Workspace, name: str, device: str | torch.device = "cpu") -> LoadedModel:
    """Check the card and the weights' checksum, rebuild the module, load weights (no pickle)."""
    from safetensors.torch import load as load_safetensors

    from .model import MIN_FRAMES, from_card

    card, data = verified(workspace, name)
    if isinstance(card, HeadCard):
        from .pretrained.head import build as build_head

        module = build_head(card.architecture)
    else:
        if any(t < m for t, m in zip(card.frames, MIN_FRAMES, strict=True)):
            raise damaged(name, f"{CARD} has input frames {card.frames}, fewer than the layers need")
        module = from_card(card)
    try:
        module.load_state_dict(load_safetensors(data))
    except Exception as exc:  # safetensors raises its own error type for malformed headers
        raise damaged(name, f"{WEIGHTS} does not fit the architecture ({exc})") from None
    module.to(device).eval()
    return LoadedModel(name, model_dir(workspace, name), module, card)


def verified(workspace: Workspace, name: str) -> tuple[ModelCard, bytes]:
    """The checked card and the weights' bytes, whose checksum it names (no torch needed)."""
    folder = model_dir(workspace, name)
    card = read_card(folder, name)
    if card.weights is None:
        raise damaged(name, f"{CARD} names no weights")
    try:
        data = (folder / WEIGHTS).read_bytes()
    except OSError as exc:
        raise damaged(name, f"{WEIGHTS} cannot be read ({exc.strerror})") from None
    if sha256(data) != card.weights.sha256:
        raise damaged(name, f"{WEIGHTS} is damaged (its checksum does not match {CARD})")
    return card, data


def _info(folder: Path) -> ModelInfo:
    info = ModelInfo(folder.name, folder)
    if not (folder / CARD).exists():
        info.status, info.error = "incomplete", "never saved (resume it or remove it)"
        return info
    try:
        card = read_card(folder, folder.name)
    except ModelError as exc:
        info.error = str(exc)
        return info
    info.created, info.status = card.created, card.status
    info.kind, info.genres = card.architecture.kind, card.genres
    if ensemble := card.ensemble:
        info.kind += f" x{len(ensemble.members)}"
    info.song_accuracy = card.metrics.song_accuracy
    info.baseline_song_accuracy = card.baseline.song_accuracy
    return info


def list_models(workspace: Workspace) -> list[ModelInfo]:
    """Every model folder, oldest first (damaged ones too, with their error)."""
    if not workspace.models.is_dir():
        return []
    folders = [
        p
        for p in workspace.models.iterdir()
        if _NAME.fullmatch(p.name) and ((p / CARD).is_file() or (p / CHECKPOINT).is_dir())
    ]
    return sorted((_info(p) for p in folders), key=lambda i: (i.created, i.name))


def newest(workspace: Workspace) -> ModelInfo | None:
    """The most recently created model that has weights to load."""
    usable = [i for i in list_models(workspace) if i.error is None]
    return usable[-1] if usable else None


def remove(workspace: Workspace, name: str) -> Path:
    folder = model_dir(workspace, name)
    if folder.is_dir() and not folder.is_symlink():
        check_writable(workspace.models)
        if is_training(folder):
            raise _busy(name)
    if folder.is_symlink():
        folder.unlink()
    elif folder.is_dir() and ((folder / CARD).exists() or (folder / CHECKPOINT).exists()):
        shutil.rmtree(folder)
    else:
        raise ModelError(f"no model named {name!r} (see `genre models list`)")
    return folder


def check_features(card: ModelCard, settings: Settings) -> None:
    """Refuse a model whose features differ from what the current settings compute."""
    from .features import COMPATIBLE
    from .store import config_key, feature_config

    if card.features.config_key == config_key(settings):
        return
    want, trained = feature_config(settings), card.features.config
    diff = sorted(k for k in set(want) | set(trained) if want.get(k) != trained.get(k))
    if diff == ["feature_version"] and (trained.get("backend"), trained.get("feature_version")) in COMPATIBLE:
        return
    detail = "; ".join(f"{k}: model {trained.get(k)!r}, now {want.get(k)!r}" for k in diff[:4])
    raise ModelError(
        f"model {card.name!r} was trained on other features ({detail or 'config key'}):"
        " set the same audio/features settings, or train a model with the current ones"
    )
