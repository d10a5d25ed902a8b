"""`genre train` and `genre models` for real: ffmpeg-made songs, real extraction, real training."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import typer
from conftest import make_dataset
from typer.testing import CliRunner, Result

from genre_erkennung.tui.commands import models as models_cmd
from genre_erkennung.tui.commands import train as train_cmd

GENRES = {"sinus": ("sine", 330.0), "weiss": ("white", 0.0), "braun": ("brown", 0.0)}
CONFIG = (
    "[audio]\nchunk_seconds = 3.0\nmin_chunk_seconds = 1.0\n"
    "[training]\nepochs = 12\npatience = 12\nbatch_size = 8\nthreads = 1\n"
)

# The commands as `genre` registers them, so these tests do not depend on the rest of the CLI.
app = typer.Typer()
app.command()(train_cmd.train)
app.add_typer(models_cmd.app, name="models")


def genre(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(result: Result, text: str) -> None:
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Result]:
    base = tmp_path_factory.mktemp("train_cli")
    ds = make_dataset(base / "ds", GENRES, per_split=(5, 2), seconds=6.0)
    cfg = base / "config.toml"
    cfg.write_text(CONFIG)
    ws = base / "ws"
    result = genre(
        "train", "--dataset", ds, "--workspace", ws, "--config", cfg, "--extract", "--name", "demo"
    )
    assert result.exit_code == 0, result.stderr
    return ds, cfg, ws, result


def test_train_beats_chance_and_prints_its_scores(trained: tuple[Path, Path, Path, Result]) -> None:
    _, _, ws, result = trained
    card = json.loads((ws / "models" / "demo" / "model.json").read_text())
    assert card["metrics"]["song_accuracy"] >= 0.8  # chance: 1/3
    assert card["genres"] == ["braun", "sinus", "weiss"]
    assert card["features"]["config"]["chunk_seconds"] == 3.0
    assert card["features"]["backend"] == "native"
    assert len(card["history"]) == 12 and card["status"] == "complete"
    assert "song accuracy (majority vote)" in result.stdout and "baseline" in result.stdout
    assert "confusion" in result.stdout and "epoch" not in result.stdout
    assert "epoch 1/12" in result.stderr and "saved model demo" in result.stderr
    assert "training on cpu with 1 thread" in result.stderr


def test_models_list_show_and_rm(trained: tuple[Path, Path, Path, Result], tmp_path: Path) -> None:
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(trained[2], ws)
    listed = genre("models", "list", "--workspace", ws)
    assert listed.exit_code == 0 and "demo" in listed.stdout and "sinus" in listed.stdout
    shown = genre("models", "show", "demo", "--workspace", ws)
    assert shown.exit_code == 0, shown.stderr
    assert "model demo" in shown.stdout and "confusion" in shown.stdout
    assert "loss" in shown.stdout and "validation" in shown.stdout and "epoch" in shown.stdout
    removed = genre("models", "rm", "demo", "--workspace", ws)
    assert removed.exit_code == 0 and not (ws / "models" / "demo").exists()
    one_error_line(genre("models", "show", "demo", "--workspace", ws), "no model named 'demo'")
    empty = genre("models", "list", "--workspace", ws)
    assert empty.exit_code == 0 and empty.stdout == "" and "no models" in empty.stderr


def test_resume_continues_to_a_new_total(trained: tuple[Path, Path, Path, Result]) -> None:
    ds, cfg, ws, _ = trained
    args = ("--dataset", ds, "--workspace", ws, "--config", cfg)
    assert genre("train", *args, "--epochs", "2", "--name", "short").exit_code == 0
    more = genre("train", *args, "--resume", "--name", "short", "--epochs", "3")
    assert more.exit_code == 0, more.stderr
    assert "epoch 3/3" in more.stderr and "epoch 1/" not in more.stderr
    card = json.loads((ws / "models" / "short" / "model.json").read_text())
    assert [h["epoch"] for h in card["history"]] == [1, 2, 3]
    one_error_line(genre("train", *args, "--resume", "--name", "short"), "pass a larger --epochs")


def test_ctrl_c_stops_after_the_batch_and_keeps_the_best(
    trained: tuple[Path, Path, Path, Result],
) -> None:
    ds, cfg, ws, _ = trained
    here = str(Path(__file__).parent)
    code = f"import sys; sys.path.insert(0, {here!r}); from test_train_cli import app; app()"
    cmd = [sys.executable, "-c", code, "train", "--dataset", ds, "--workspace", ws, "--config", cfg]
    cmd += ["--epochs", "500", "--name", "long"]
    proc = subprocess.Popen(list(map(str, cmd)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("epoch 2/500"):
            proc.send_signal(signal.SIGINT)
            break
    out, rest = proc.communicate(timeout=120)
    stderr = "".join(seen) + rest
    assert proc.returncode == 130, stderr
    assert "stopping after this batch" in stderr and "--resume --name long" in stderr
    card = json.loads((ws / "models" / "long" / "model.json").read_text())
    assert card["status"] == "stopped" and 2 <= card["training"]["epochs_run"] < 500
    assert "song accuracy" in out
    # No --config: a resumed run reads the feature store it was trained on.
    more = str(card["training"]["epochs_run"] + 1)
    resumed = genre(
        "train", "--dataset", ds, "--workspace", ws, "--resume", "--name", "long", "--epochs", more
    )
    assert resumed.exit_code == 0, resumed.stderr
    card = json.loads((ws / "models" / "long" / "model.json").read_text())
    assert card["status"] == "complete"


def test_a_dataset_that_is_not_extracted_says_what_to_run(
    trained: tuple[Path, Path, Path, Result], tmp_path: Path
) -> None:
    ds, cfg, _, _ = trained
    result = genre("train", "--dataset", ds, "--workspace", tmp_path / "fresh", "--config", cfg)
    one_error_line(result, "run `genre extract")
    assert "--extract" in result.stderr


def test_bad_datasets_give_one_line(tmp_path: Path) -> None:
    solo = make_dataset(tmp_path / "solo", {"solo": ("sine", 440.0)}, per_split=(1, 1), seconds=2.0)
    one_error_line(genre("train", "--dataset", solo, "--workspace", tmp_path / "ws"), "at least 2 genres")
    lopsided = make_dataset(tmp_path / "lop", {"a": ("sine", 440.0), "b": ("white", 0.0)}, (1, 1), 2.0)
    make_dataset(tmp_path / "lop", {"c": ("brown", 0.0)}, per_split=(0, 1), seconds=2.0)
    one_error_line(
        genre("train", "--dataset", lopsided, "--workspace", tmp_path / "ws"),
        "genre 'c' has no training songs",
    )
    assert not (tmp_path / "ws" / "models").exists() or not any((tmp_path / "ws" / "models").iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_without_a_gpu(trained: tuple[Path, Path, Path, Result]) -> None:
    ds, cfg, ws, _ = trained
    args = ("--dataset", ds, "--workspace", ws, "--config", cfg, "--name", "gpu")
    one_error_line(genre("train", *args, "--device", "cuda"), "no CUDA GPU")
    assert not (ws / "models" / "gpu").exists()


def test_names_and_damaged_models(trained: tuple[Path, Path, Path, Result], tmp_path: Path) -> None:
    import shutil

    ds, cfg, original, _ = trained
    ws = tmp_path / "ws"
    shutil.copytree(original, ws)
    args = ("--dataset", ds, "--workspace", ws, "--config", cfg, "--epochs", "1")
    before = (ws / "models" / "demo" / "model.json").read_bytes()
    one_error_line(genre("train", *args, "--name", "demo"), "already exists")
    for bad in ("../evil", "a/b", ".."):
        one_error_line(genre("train", *args, "--name", bad), "bad model name")
        one_error_line(genre("models", "rm", bad, "--workspace", ws), "bad model name")
    assert (ws / "models" / "demo" / "model.json").read_bytes() == before
    assert not (ws / "evil").exists() and not (tmp_path / "evil").exists()

    weights = ws / "models" / "demo" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    one_error_line(genre("models", "show", "demo", "--workspace", ws), "damaged")
    card = json.loads(before)
    card["format_version"] = 99
    (ws / "models" / "demo" / "model.json").write_text(json.dumps(card))
    one_error_line(genre("models", "show", "demo", "--workspace", ws), "newer genre-erkennung")


def test_an_ensemble_from_the_command_line(trained: tuple[Path, Path, Path, Result]) -> None:
    ds, cfg, ws, _ = trained
    args = ("--dataset", ds, "--workspace", ws, "--config", cfg)
    result = genre("train", *args, "--ensemble", "2", "--epochs", "3", "--name", "pair")
    assert result.exit_code == 0, result.stderr
    assert "ensemble member 2 of 2 (seed 1000)" in result.stderr and "epoch 2: 3/3" in result.stderr
    assert "2 members, epochs 3, 3" in result.stderr
    assert "ensemble of 2 members" in result.stdout and "spread" in result.stdout
    listed = genre("models", "list", "--workspace", ws)
    assert "merged x2" in listed.stdout
    shown = genre("models", "show", "pair", "--workspace", ws)
    assert shown.exit_code == 0 and "ensemble of 2 members" in shown.stdout
    assert "validation 1" in shown.stdout or "validation 2" in shown.stdout  # plot labels per member
