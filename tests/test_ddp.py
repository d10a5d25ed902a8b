"""Data-parallel training for real: torchrun with two gloo processes on the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import make_dataset, refused_port, run_genre

from genre_erkennung.core import config, dataset, registry
from genre_erkennung.core.extract import extract
from genre_erkennung.core.metrics import evaluate
from genre_erkennung.core.store import store_for
from genre_erkennung.core.tensors import load_dataset
from genre_erkennung.core.train import predict_logits
from genre_erkennung.core.workspace import Workspace

pytestmark = pytest.mark.cluster

GENRES = {"sinus": ("sine", 330.0), "weiss": ("white", 0.0), "braun": ("brown", 0.0)}
CONFIG = (
    "[audio]\nchunk_seconds = 3.0\nmin_chunk_seconds = 1.0\n"
    "[training]\nepochs = 4\npatience = 50\nbatch_size = 4\nthreads = 1\n"
    "[model]\nmfcc_conv = 8\nmfcc_bottleneck = 8\nmfcc_lstm = 8\ncontrast_conv = 8\n"
    "contrast_lstm = 8\nhead = 16\n"
)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("ddp")
    ds = make_dataset(base / "ds", GENRES, per_split=(3, 1), seconds=6.0)
    cfg = base / "config.toml"
    cfg.write_text(CONFIG)
    settings = config.load(cfg)
    r = extract(dataset.scan(ds).songs, settings, Workspace(base / "ws"))
    assert r.done == 12 and not r.failed
    return ds, cfg, base / "ws"


def _card(ws: Path, name: str) -> dict:
    return json.loads((ws / "models" / name / "model.json").read_text())


def test_two_processes_train_one_model(extracted: tuple[Path, Path, Path]) -> None:
    ds, cfg, ws = extracted
    proc = run_genre(
        "train", "--nproc", "2", "--dataset", ds, "--workspace", ws, "--config", cfg, "--name", "ddp"
    )
    assert proc.returncode == 0, proc.stderr
    assert "weights identical on all 2 ranks" in proc.stderr
    assert proc.stderr.count("saved model ddp") == 1  # rank 0 alone reports
    assert sorted(p.name for p in (ws / "models").iterdir()) == ["ddp"]
    card = _card(ws, "ddp")
    assert card["training"]["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert [h["epoch"] for h in card["history"]] == [1, 2, 3, 4]

    settings = config.load(cfg)
    loaded = registry.load(Workspace(ws), "ddp")
    c = loaded.card
    data = load_dataset(
        dataset.scan(ds), store_for(Workspace(ws), settings), c.normalisation, c.frames, c.genres
    )
    probs = torch.softmax(predict_logits(loaded.module, data.test, torch.device("cpu")), dim=1).numpy()
    again = evaluate(probs, data.test.labels.numpy(), data.test.songs.numpy(), c.genres).to_json()
    for key in ("chunks", "songs", "chunk_accuracy", "song_accuracy"):
        assert again[key] == card["metrics"][key], key


@pytest.mark.slow
def test_two_torchrun_nodes_train_one_model(extracted: tuple[Path, Path, Path]) -> None:
    """The README's command across nodes, run as written on one machine: two torchrun agents
    (one process each) meet at a c10d rendezvous and train one model."""
    ds, cfg, ws = extracted
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [torchrun, "--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d"]
    cmd += [f"--rdzv-endpoint=127.0.0.1:{refused_port()}", "-m", "genre_erkennung", "train"]
    cmd += ["--dataset", ds, "--workspace", ws, "--config", cfg, "--name", "nodes"]
    nodes = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "01"]
    try:
        logs = [node.communicate(timeout=300)[1] for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                for pid in _tree(node.pid):
                    os.kill(pid, signal.SIGKILL)
                node.wait()
    assert [node.returncode for node in nodes] == [0, 0], logs
    assert "".join(logs).count("saved model nodes") == 1  # rank 0 alone reports
    assert "weights identical on all 2 ranks" in "".join(logs)
    assert [p.name for p in (ws / "models").iterdir() if p.name.startswith("nodes")] == ["nodes"]
    card = _card(ws, "nodes")
    assert card["training"]["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert card["status"] == "complete"


def _tree(root: int) -> list[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def test_a_killed_distributed_run_resumes_in_one_process(extracted: tuple[Path, Path, Path]) -> None:
    ds, cfg, ws = extracted
    exe = Path(sys.executable).with_name("genre")
    args = ["--dataset", ds, "--workspace", ws, "--config", cfg, "--name", "killed"]
    proc = subprocess.Popen(
        [exe, "train", "--nproc", "2", "--epochs", "400", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = ws / "models" / "killed" / "checkpoint" / "state.json"
    deadline = time.monotonic() + 240
    try:
        while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
    finally:
        for pid in _tree(proc.pid):  # torchrun starts each rank in a session of its own
            os.kill(pid, signal.SIGKILL)
        proc.wait()
    assert state.exists(), "the distributed run wrote no checkpoint"
    done = json.loads(state.read_text())["state"]["epoch"]
    assert 1 <= done < 400
    more = run_genre("train", "--resume", "--epochs", str(done + 2), *args)
    assert more.returncode == 0, more.stderr
    card = _card(ws, "killed")
    assert [h["epoch"] for h in card["history"]] == list(range(1, done + 3))
    assert "distributed" not in card["training"] and card["status"] == "complete"
