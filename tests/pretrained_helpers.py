"""Fixtures for the musicnn tests: the real wheel from PyPI, one installed workspace, the golden files.

The wheel (~30 MB) is downloaded once with pip (the project's own `download_wheel`) into
`.cache/` at the repo root, or taken from $GENRE_MUSICNN_WHEEL. The golden outputs of the
original code are read from ../shared/pretrained/musicnn-golden (or $GENRE_MUSICNN_GOLDEN), never
copied into the repo. Where either cannot be had the tests skip with the reason, except in CI
(CI=true), where a skip would hide a missing check: there they fail.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest

from genre_erkennung.core.errors import GenreError
from genre_erkennung.core.pretrained import install
from genre_erkennung.core.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(os.environ.get("GENRE_MUSICNN_GOLDEN") or REPO.parent / "shared/pretrained/musicnn-golden")
WAVS = REPO / "tests" / "data" / "golden"
SIGNALS = (
    "chord_44k",
    "chordnoise_22k",
    "clicks_44k",
    "noise_44k",
    "noise_48k",
    "noise_oddlen_44k",
    "silence_44k",
    "stereo_44k",
    "sweep_44k",
)


def unavailable(reason: str) -> None:
    """Skip, or fail in CI where every musicnn check must run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: a skip here would hide a missing check)")
    pytest.skip(reason)


def golden(signal: str, model: str, kaiser: bool = False) -> dict[str, np.ndarray]:
    path = GOLDEN / f"{signal}_{model}_musicnn{'_kaiser_reflect' if kaiser else ''}.npz"
    if not path.is_file():
        unavailable(f"golden file {path} missing (set GENRE_MUSICNN_GOLDEN)")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@functools.cache
def musicnn_wheel() -> Path:
    """The real wheel, downloaded once per machine (the session's later calls reuse it)."""
    env = os.environ.get("GENRE_MUSICNN_WHEEL")
    if env:
        return Path(env)
    try:
        return install.download_wheel(REPO / ".cache")
    except GenreError as exc:
        unavailable(f"musicnn wheel not available: {exc}")
        raise


def installed_workspace(root: Path) -> Workspace:
    """A workspace under `root` with musicnn installed from the real wheel."""
    ws = Workspace(root)
    install.install(ws, "musicnn", musicnn_wheel())
    return ws
