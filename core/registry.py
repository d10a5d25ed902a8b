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
import math
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from .atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from .config import Settings
from .errors import ModelError
from .model import KINDS, MIN_FRAMES, Architecture, Sizes, build
from .tensors import Norm
from .workspace import Workspace, check_writable

FORMAT_VERSION = 1
WEIGHTS, CARD, HISTORY, CHECKPOINT = "weights.safetensors", "model.json", "history.csv", "checkpoint"
LOCK = ".lock"  # held (flock) by the run training the model; the kernel drops it if the run dies
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass
class LoadedModel:
    """A model ready to predict (eval mode) and the card it came with."""

    name: str
    path: Path
    module: nn.Module
    card: dict[str, Any]
    architecture: Architecture
    genres: list[str]
    norm: Norm
    frames: tuple[int, int]  # (T_mfcc, T_sc) inputs are padded or cropped to


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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tensor_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    return save_safetensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def save(workspace: Workspace, name: str, module: nn.Module, card: dict[str, Any]) -> Path:
    """Write weights, history.csv, then model.json (the file that makes the folder a model)."""
    folder = model_dir(workspace, name)
    weights = _tensor_bytes(module.state_dict())
    atomic_write_bytes(folder / WEIGHTS, weights)
    history = pd.DataFrame(card.get("history", []))
    atomic_write_text(folder / HISTORY, history.to_csv(index=False))
    card = {
        "format_version": FORMAT_VERSION,
        "name": name,
        **card,
        "weights": {"file": WEIGHTS, "sha256": _sha256(weights)},
    }
    atomic_write_json(folder / CARD, card)
    return folder


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


def _damaged(name: str, why: str) -> ModelError:
    return ModelError(f"model {name!r}: {why}; train it again or remove it (`genre models rm {name}`)")


def read_card(folder: Path, name: str) -> dict[str, Any]:
    """The parsed model.json; refuses a missing, unreadable or too new one."""
    try:
        card = json.loads((folder / CARD).read_text(encoding="utf-8"))
    except FileNotFoundError:
        if (folder / CHECKPOINT).is_dir():
            raise ModelError(
                f"model {name!r} never finished its first save: resume it with "
                f"`genre train --resume --name {name}` or remove it"
            ) from None
        raise ModelError(f"no model named {name!r} (see `genre models list`)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _damaged(name, f"{CARD} is unreadable ({exc})") from None
    if not isinstance(card, dict) or not isinstance(card.get("format_version"), int):
        raise _damaged(name, f"{CARD} has no format_version")
    if card["format_version"] > FORMAT_VERSION:
        raise ModelError(
            f"model {name!r} was saved by a newer genre-erkennung (format version "
            f"{card['format_version']}, this one reads up to {FORMAT_VERSION}): upgrade to use it"
        )
    return card


def _parse(card: dict[str, Any]) -> tuple[Architecture, list[str], Norm, tuple[int, int]]:
    """The parts of a card needed to rebuild the model; raises ValueError on anything odd."""
    arch = Architecture.from_json(card["architecture"])
    for f in dataclasses.fields(Sizes):
        v = getattr(arch.sizes, f.name)
        ok = 0 <= v < 1 if f.name.endswith("dropout") else isinstance(v, int) and v >= 1
        if not ok or isinstance(v, bool):
            raise ValueError(f"architecture size {f.name} = {v!r}")
    if arch.kind not in KINDS:
        raise ValueError(f"unknown architecture {arch.kind!r}")
    genres = card["genres"]
    if (
        not isinstance(genres, list)
        or not all(isinstance(g, str) for g in genres)
        or len(set(genres)) != len(genres)
        or len(genres) != arch.genres
        or len(genres) < 2
    ):
        raise ValueError(f"genres {genres!r} do not fit a {arch.genres}-genre model")
    norm = Norm.from_json(card["normalisation"])
    widths = (arch.coeffs, arch.coeffs, arch.bands, arch.bands)
    for (key, values), width in zip(vars(norm).items(), widths, strict=True):
        if values.shape != (width,) or not all(math.isfinite(v) for v in values):
            raise ValueError(f"normalisation {key} is not {width} finite numbers")
        if key.endswith("std") and not (values > 0).all():
            raise ValueError(f"normalisation {key} holds values <= 0")
    frames = tuple(card["input"]["frames"])
    if len(frames) != 2 or not all(
        isinstance(t, int) and t >= m for t, m in zip(frames, MIN_FRAMES, strict=True)
    ):
        raise ValueError(f"input frames {frames!r}")
    if not isinstance(card["features"]["config_key"], str):
        raise ValueError("features.config_key is not a string")
    return arch, genres, norm, (int(frames[0]), int(frames[1]))


def load(workspace: Workspace, name: str, device: str | torch.device = "cpu") -> LoadedModel:
    """Check the card and the weights' checksum, rebuild the module, load weights (no pickle)."""
    folder = model_dir(workspace, name)
    card = read_card(folder, name)
    try:
        arch, genres, norm, frames = _parse(card)
        expected = card["weights"]["sha256"]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _damaged(name, f"{CARD} is incomplete or malformed ({exc})") from None
    try:
        data = (folder / WEIGHTS).read_bytes()
    except OSError as exc:
        raise _damaged(name, f"{WEIGHTS} cannot be read ({exc.strerror})") from None
    if _sha256(data) != expected:
        raise _damaged(name, f"{WEIGHTS} is damaged (its checksum does not match {CARD})")
    module = build(arch)
    try:
        module.load_state_dict(load_safetensors(data))
    except Exception as exc:  # safetensors raises its own error type for malformed headers
        raise _damaged(name, f"{WEIGHTS} does not fit the architecture ({exc})") from None
    module.to(device).eval()
    return LoadedModel(name, folder, module, card, arch, genres, norm, frames)


def _info(folder: Path) -> ModelInfo:
    info = ModelInfo(folder.name, folder)
    if not (folder / CARD).exists():
        info.status, info.error = "incomplete", "never saved (resume it or remove it)"
        return info
    try:
        card = read_card(folder, folder.name)
        info.created, info.status = card["created"], card["status"]
        info.kind, info.genres = card["architecture"]["kind"], card["genres"]
        info.song_accuracy = card["metrics"]["song_accuracy"]
        info.baseline_song_accuracy = card["baseline"]["song_accuracy"]
    except (ModelError, KeyError, TypeError) as exc:
        info.error = str(exc) if isinstance(exc, ModelError) else f"{CARD} lacks {exc}"
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


def check_features(card: dict[str, Any], settings: Settings) -> None:
    """Refuse a model whose features differ from what the current settings compute."""
    from .store import config_key, feature_config

    have = card["features"]
    if have["config_key"] == config_key(settings):
        return
    want = feature_config(settings)
    trained = have.get("config", {})
    diff = sorted(k for k in set(want) | set(trained) if want.get(k) != trained.get(k))
    detail = "; ".join(f"{k}: model {trained.get(k)!r}, now {want.get(k)!r}" for k in diff[:4])
    raise ModelError(
        f"model {card.get('name', '?')!r} was trained on other features ({detail or 'config key'}):"
        " set the same audio/features settings, or train a model with the current ones"
    )


def save_checkpoint(folder: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """State of a run to continue later: tensors in safetensors, the rest in JSON naming them."""
    data = _tensor_bytes(tensors)
    atomic_write_bytes(folder / CHECKPOINT / "state.safetensors", data)
    atomic_write_json(folder / CHECKPOINT / "state.json", {**meta, "tensors_sha256": _sha256(data)})


def load_checkpoint(folder: Path, name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    where = folder / CHECKPOINT
    try:
        meta = json.loads((where / "state.json").read_text(encoding="utf-8"))
        data = (where / "state.safetensors").read_bytes()
    except FileNotFoundError:
        raise ModelError(f"model {name!r} has no stopped run to resume") from None
    except (OSError, ValueError) as exc:
        raise _damaged(name, f"its checkpoint is unreadable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("tensors_sha256") != _sha256(data):
        raise _damaged(name, "its checkpoint is damaged (checksum mismatch)")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ModelError(f"model {name!r}: its checkpoint is from a newer genre-erkennung")
    return load_safetensors(data), meta
