"""`genre pretrained install|list|rm`: musicnn's weights, from its pinned wheel into the workspace.

The wheel `musicnn==0.1.0` is fetched with pip (`pip download --no-deps`), or taken from a file
the user gives for boxes without internet, and must match the pinned sha256. Its checkpoints are
read from the zip in memory; nothing in it is unpacked, imported or run (the tag names come
from `configuration.py` through `ast.literal_eval`). Written atomically to
`WORKSPACE/pretrained/musicnn/`: `msd.safetensors`, `mtt.safetensors`, then `card.json` last,
so a card on disk means a whole install.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load, save

from ..atomic import atomic_write_bytes, atomic_write_json
from ..errors import GenreError
from ..events import Message, Reporter, ignore
from ..workspace import Workspace
from . import PretrainedMissing
from .tfcheckpoint import CheckpointError, read_tensors, shard_name

CARD = "card.json"
FORMAT = 1


@dataclass(frozen=True)
class Pin:
    """One exact release of a pretrained package on PyPI."""

    package: str
    version: str
    filename: str
    sha256: str
    licence: str
    authors: str
    homepage: str


MUSICNN = Pin(
    package="musicnn",
    version="0.1.0",
    filename="musicnn-0.1.0-py3-none-any.whl",
    sha256="f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa",
    licence="ISC",
    authors="Jordi Pons, Xavier Serra (Music Technology Group, Universitat Pompeu Fabra)",
    homepage="https://github.com/jordipons/musicnn",
)

#: variant -> (checkpoint folder in the wheel, tag list in configuration.py, training data)
VARIANTS = {
    "msd": ("MSD_musicnn", "MSD_LABELS", "Million Song Dataset (last.fm tags)"),
    "mtt": ("MTT_musicnn", "MTT_LABELS", "MagnaTagATune"),
}
KNOWN = ("musicnn",)

_INSTALL_HINT = "run `genre pretrained install musicnn`"


def folder(workspace: Workspace, name: str = "musicnn") -> Path:
    return workspace.root / "pretrained" / name


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_name(name: str) -> None:
    if name not in KNOWN:
        raise GenreError(f"unknown pretrained model {name!r}: known are {', '.join(KNOWN)}")


def download_wheel(dest: Path, pin: Pin = MUSICNN, report: Reporter = ignore) -> Path:
    """The pinned wheel in `dest`, fetched with pip (or from an index's JSON API without pip)."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / pin.filename
    if target.is_file() and _sha256_file(target) == pin.sha256:
        return target
    spec = f"{pin.package}=={pin.version}"
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        if importlib.util.find_spec("pip") is not None:
            report(Message(f"downloading {spec} with pip (about 30 MB)"))
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
            cmd += ["--disable-pip-version-check", "--quiet", "--dest", tmp, spec]
            proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
            got = Path(tmp) / pin.filename
            if proc.returncode != 0 or not got.is_file():
                last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
                raise GenreError(
                    f"pip could not download {spec} ({last}): check the network, "
                    f"or download {pin.filename} elsewhere and pass --wheel FILE"
                )
        else:
            got = _download_json_api(pin, Path(tmp), report)
        if _sha256_file(got) != pin.sha256:
            raise GenreError(f"the downloaded {pin.filename} does not match its pinned sha256: not installed")
        os.replace(got, target)
    return target


def _download_json_api(pin: Pin, tmp: Path, report: Reporter) -> Path:
    """Without pip: the file URL that the package index's JSON API gives (`GENRE_PYPI_URL`)."""
    base = os.environ.get("GENRE_PYPI_URL", "").rstrip("/")
    if not base:
        raise GenreError(
            f"pip is not available to download {pin.package}: install pip, set GENRE_PYPI_URL to "
            f"the package index, or download {pin.filename} and pass --wheel FILE"
        )
    try:
        with urllib.request.urlopen(f"{base}/pypi/{pin.package}/{pin.version}/json", timeout=60) as r:
            files = json.load(r)["urls"]
        url = next(f["url"] for f in files if f["filename"] == pin.filename)
        report(Message(f"downloading {url}"))
        got = tmp / pin.filename
        with urllib.request.urlopen(url, timeout=60) as r, open(got, "wb") as f:
            shutil.copyfileobj(r, f, 1 << 20)
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        raise GenreError(
            f"cannot download {pin.filename} from {base} ({exc}): pass --wheel FILE instead"
        ) from None
    return got


def _tags(source: str, variable: str) -> list[str]:
    """A list literal assigned in a module's source, read with ast (never executed)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == variable for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
    raise CheckpointError(f"musicnn/configuration.py has no {variable} list")


def read_wheel(wheel: Path, pin: Pin = MUSICNN) -> dict[str, tuple[dict[str, np.ndarray], list[str]]]:
    """variant -> (torch state dict as numpy, tag names), straight from the wheel's zip."""
    from .network import checkpoint_names, weights_from_checkpoint

    out = {}
    try:
        with zipfile.ZipFile(wheel) as zf:
            config = zf.read(f"{pin.package}/configuration.py").decode("utf-8")
            for variant, (ckpt, labels, _) in VARIANTS.items():
                prefix = f"{pin.package}/{ckpt}/"
                index = zf.read(prefix + ".index")

                def shard(i: int, n: int, prefix: str = prefix) -> bytes:
                    return zf.read(prefix + shard_name(i, n))

                tensors = read_tensors(index, shard, checkpoint_names())
                try:
                    out[variant] = (weights_from_checkpoint(tensors), _tags(config, labels))
                except CheckpointError as exc:
                    raise CheckpointError(f"{ckpt}: {exc}") from None
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise GenreError(f"{wheel}: not a readable {pin.package} wheel ({exc})") from None
    return out


def install(
    workspace: Workspace,
    name: str = "musicnn",
    wheel: Path | None = None,
    report: Reporter = ignore,
) -> dict[str, Any]:
    """Install `name` into the workspace from `wheel` (downloaded if None); returns the card."""
    check_name(name)
    pin = MUSICNN
    if wheel is None:
        with tempfile.TemporaryDirectory(prefix="genre-pretrained-") as tmp:
            return _install_from(workspace, pin, download_wheel(Path(tmp), pin, report), "download", report)
    wheel = Path(wheel).expanduser()
    if not wheel.is_file():
        raise GenreError(f"{wheel}: no such file (pass the path of {pin.filename})")
    return _install_from(workspace, pin, wheel, str(wheel.resolve()), report)


def _install_from(workspace: Workspace, pin: Pin, wheel: Path, origin: str, report: Reporter) -> dict:
    digest = _sha256_file(wheel)
    if digest != pin.sha256:
        raise GenreError(
            f"{wheel}: not the {pin.package} {pin.version} wheel (sha256 {digest[:12]}…, "
            f"expected {pin.sha256[:12]}…): pass {pin.filename}, or omit --wheel to download it"
        )
    report(Message(f"reading the checkpoints in {pin.filename}"))
    try:
        variants = read_wheel(wheel, pin)
    except CheckpointError as exc:
        raise GenreError(f"{wheel}: damaged checkpoint ({exc}): download {pin.filename} again") from None
    dest = folder(workspace, pin.package)
    models = {}
    for variant, (state, tags) in variants.items():
        ckpt, _, data = VARIANTS[variant]
        blob = save(state, metadata={"source": f"{pin.package}=={pin.version}", "checkpoint": ckpt})
        path = dest / f"{variant}.safetensors"
        atomic_write_bytes(path, blob)
        models[variant] = {
            "checkpoint": ckpt,
            "trained_on": data,
            "file": path.name,
            "sha256": hashlib.sha256(blob).hexdigest(),
            "tensors": len(state),
            "parameters": int(sum(v.size for k, v in state.items() if "running_" not in k)),
            "tags": tags,
        }
        report(Message(f"wrote {path} ({len(blob) / 1e6:.1f} MB)"))
    card = {
        "format": FORMAT,
        "name": pin.package,
        "version": pin.version,
        "source": {"package": f"{pin.package}=={pin.version}", "wheel": pin.filename, "sha256": pin.sha256},
        "obtained": origin,
        "licence": pin.licence,
        "authors": pin.authors,
        "homepage": pin.homepage,
        "installed": time.strftime("%Y-%m-%d %H:%M:%S"),
        "models": models,
    }
    atomic_write_json(dest / CARD, card)
    return card


@dataclass(frozen=True)
class Installed:
    """A row of `genre pretrained list`."""

    name: str
    version: str
    variants: tuple[str, ...]
    folder: Path
    size: int
    installed: str
    error: str | None = None


def installed(workspace: Workspace) -> list[Installed]:
    """Every pretrained model in the workspace (a damaged one is listed with its error)."""
    root = workspace.root / "pretrained"
    rows = []
    for name in sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        path = root / name
        size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        try:
            card = read_card(workspace, name)
            rows.append(
                Installed(name, card["version"], tuple(card["models"]), path, size, card["installed"])
            )
        except GenreError as exc:
            rows.append(Installed(name, "?", (), path, size, "", str(exc)))
    return rows


def read_card(workspace: Workspace, name: str = "musicnn") -> dict[str, Any]:
    path = folder(workspace, name) / CARD
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
        if card.get("format") != FORMAT or not isinstance(card.get("models"), dict):
            raise ValueError("unknown card format")
        return card
    except FileNotFoundError:
        raise PretrainedMissing(f"{name} is not installed in {workspace.root}: {_INSTALL_HINT}") from None
    except (OSError, ValueError) as exc:
        raise PretrainedMissing(f"{path}: unreadable card ({exc}): {_INSTALL_HINT} again") from None


def load_state(workspace: Workspace, variant: str, name: str = "musicnn") -> tuple[dict[str, Any], dict]:
    """(numpy state dict, the variant's card entry), its file checked against the card's sha256."""
    card = read_card(workspace, name)
    entry = card["models"].get(variant)
    if entry is None:
        raise PretrainedMissing(f"{name} has no {variant!r} weights installed: {_INSTALL_HINT} again")
    path = folder(workspace, name) / entry["file"]
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise PretrainedMissing(f"{path}: cannot read ({exc.strerror}): {_INSTALL_HINT} again") from None
    if hashlib.sha256(blob).hexdigest() != entry["sha256"]:
        raise PretrainedMissing(f"{path}: damaged (sha256 mismatch): {_INSTALL_HINT} again")
    return load(blob), entry


def remove(workspace: Workspace, name: str) -> Path:
    """Delete an installed pretrained model's folder (only ours: the user's songs are elsewhere)."""
    check_name(name)
    path = folder(workspace, name)
    if not path.is_dir():
        raise PretrainedMissing(f"{name} is not installed in {workspace.root}: nothing to remove")
    shutil.rmtree(path)
    return path
