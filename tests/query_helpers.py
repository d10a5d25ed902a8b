"""The tiny model the query tests share: trained for real once per session, copied where a
test changes a workspace."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import make_dataset, run_genre

GENRES = {"sinus": ("sine", 330.0), "rauschen": ("white", 0.0)}


def tiny_model(factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(workspace, config) of a model `tiny` trained on sine tones against white noise
    (3-second chunks); the first caller in a session trains it."""
    base = factory.getbasetemp() / "query-model"
    ws, cfg = base / "ws", base / "config.toml"
    if (ws / "models" / "tiny" / "model.json").is_file():
        return ws, cfg
    ds = make_dataset(base / "ds", GENRES, per_split=(5, 2), seconds=6.0)
    cfg.write_text(
        "[audio]\nchunk_seconds = 3.0\nmin_chunk_seconds = 1.0\n"
        "[training]\nepochs = 12\npatience = 12\nbatch_size = 8\nthreads = 1\n"
    )
    args = ("train", "--dataset", ds, "--workspace", ws, "--config", cfg, "--extract", "--name", "tiny")
    run_genre(*args, check=True)
    return ws, cfg


def fresh_workspace(trained_ws: Path, dest: Path) -> Path:
    """A workspace holding only the trained models (no features, no downloads)."""
    shutil.copytree(trained_ws / "models", dest / "models")
    return dest
