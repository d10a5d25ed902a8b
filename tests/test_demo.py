"""`genre demo` end to end, reduced: real songs, real ffmpeg, real extraction, training and query."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from genre_erkennung.core.workspace import Workspace
from genre_erkennung.tui.commands import demo as demo_cmd

# Three songs per genre (two train, one test) of 12-16 s, cut into 4 s chunks; a short tail is
# dropped rather than padded, so every chunk is whole music.
CONFIG = (
    "[audio]\nchunk_seconds = 4.0\nmin_chunk_seconds = 4.0\n"
    "[training]\nepochs = 15\npatience = 15\nbatch_size = 8\nthreads = 1\n"
)
SMALL = ("--songs-per-genre", "3", "--seconds", "13")

app = typer.Typer()
app.command()(demo_cmd.demo)


@app.callback()
def _root() -> None:
    """Keeps `demo` a subcommand, as `genre` registers it."""


def genre(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result, Result]:
    """The reduced demo twice in one workspace: a fresh run, then a rerun."""
    base = tmp_path_factory.mktemp("demo_cli")
    cfg = base / "config.toml"
    cfg.write_text(CONFIG)
    ws = base / "ws"
    first = genre("demo", *SMALL, "--workspace", ws, "--config", cfg)
    assert first.exit_code == 0, first.stderr
    second = genre("demo", *SMALL, "--workspace", ws, "--config", cfg)
    assert second.exit_code == 0, second.stderr
    return ws, first, second


def test_ends_with_the_test_split_accuracy_and_a_verdict(runs: tuple[Path, Result, Result]) -> None:
    ws, first, _ = runs
    last = first.stdout.strip().splitlines()[-2:]
    acc = re.fullmatch(r"Song accuracy on the demo test split: (\d+)% \((\d) of 4 songs; .*\)", last[0])
    assert acc, last
    verdict = re.search(r"The song is (\d+)% (\w+)$", last[1])
    assert verdict and verdict[2] in ("electronic", "ambient", "rock", "jazz"), last
    card = json.loads((ws / "models" / "demo-1" / "model.json").read_text())
    assert int(acc[1]) == round(100 * card["metrics"]["song_accuracy"])
    assert card["metrics"]["song_accuracy"] >= 0.5, card["metrics"]  # chance: 25%
    assert card["architecture"]["kind"] == "merged"


def test_prints_the_chunk_votes_of_a_held_out_song(runs: tuple[Path, Result, Result]) -> None:
    ws, first, _ = runs
    # demo-1 classifies the first genre's test song; its chunks are listed with their votes.
    assert "classifying a held-out test song: test/electronic/" in first.stderr
    assert re.search(r"^votes (██)+$", first.stdout, re.M)
    assert re.search(r"^0:00–0:04 ", first.stdout, re.M)
    assert "mean probability: " in first.stdout
    assert f"genre tui --config {ws.parent / 'config.toml'} --workspace {ws}" in first.stderr
    assert f"--dataset {ws / 'demo' / 'dataset-3x13s'}" in first.stderr


def test_a_rerun_reuses_songs_and_features_and_trains_a_new_model(
    runs: tuple[Path, Result, Result],
) -> None:
    ws, first, second = runs
    assert "32 were there already" not in first.stderr and "12 were there already" in second.stderr
    assert "0 extracted, 12 already in the store" in second.stderr
    assert sorted(p.name for p in (ws / "models").iterdir()) == ["demo-1", "demo-2"]
    assert "classifying a held-out test song: test/ambient/" in second.stderr  # the next genre
    assert "Song accuracy on the demo test split: " in second.stdout


def test_demo_names_never_take_a_users_model(tmp_path: Path) -> None:
    ws = Workspace(tmp_path).ensure()
    assert demo_cmd.next_name(ws) == "demo-1"
    for name in ("demo", "demo-7", "demo-final", "mine"):
        (ws.models / name).mkdir()
    assert demo_cmd.next_name(ws) == "demo-8"


def test_default_folder_follows_the_demo_size(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    assert ws.demo_dataset() == tmp_path / "demo" / "dataset"
    assert ws.demo_dataset(12, 30.0) == tmp_path / "demo" / "dataset-12x30s"


def test_bad_sizes_are_one_error_line(tmp_path: Path) -> None:
    result = genre("demo", "--songs-per-genre", "1", "--workspace", tmp_path)
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "at least 2" in lines[-1], result.stderr
