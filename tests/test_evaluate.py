"""`genre evaluate MODEL --dataset ROOT` for real: ffmpeg-made songs, extraction, a trained model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from conftest import make_dataset
from typer.testing import CliRunner, Result

from genre_erkennung.tui.commands import evaluate as evaluate_cmd
from genre_erkennung.tui.commands import query as query_cmd
from genre_erkennung.tui.commands import train as train_cmd

pytestmark = pytest.mark.slow  # extracts and trains a model: ~30-60 s on 2 busy cores
GENRES = {"sinus": ("sine", 330.0), "weiss": ("white", 0.0), "braun": ("brown", 0.0)}
CONFIG = (
    "[audio]\nchunk_seconds = 3.0\nmin_chunk_seconds = 1.0\n"
    "[training]\nepochs = 6\npatience = 6\nbatch_size = 8\nthreads = 1\n"
)

app = typer.Typer()
app.command()(train_cmd.train)
app.command()(evaluate_cmd.evaluate)
app.command()(query_cmd.query)


def genre(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(config, workspace, the model's own dataset); the model is named m."""
    base = tmp_path_factory.mktemp("evaluate")
    ds = make_dataset(base / "own", GENRES, per_split=(3, 2), seconds=6.0)
    cfg = base / "config.toml"
    cfg.write_text(CONFIG)
    result = genre(
        "train", "--dataset", ds, "--workspace", base / "ws", "--config", cfg, "--extract", "--name", "m"
    )
    assert result.exit_code == 0, result.stderr
    return cfg, base / "ws", ds


def _json(result: Result) -> dict:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_on_its_own_test_split_it_repeats_the_card(trained: tuple[Path, Path, Path]) -> None:
    """The same songs through the query path give exactly the card's test scores."""
    cfg, ws, own = trained
    doc = _json(genre("evaluate", "m", "--dataset", own, "--workspace", ws, "--config", cfg, "--json"))
    card = json.loads((ws / "models" / "m" / "model.json").read_text())["metrics"]
    m = doc["metrics"]
    assert doc["splits"] == ["test"] and m["songs"] == 6 and m["chunks"] == card["chunks"]
    for key in ("song_accuracy", "song_accuracy_mean", "chunk_accuracy", "balanced_accuracy"):
        assert m[key] == pytest.approx(card[key], abs=1e-9), key
    assert m["confusion"] == card["confusion"] and doc["card_metrics"] == card


def test_another_dataset_all_of_it_and_its_table(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    cfg, ws, _ = trained
    other = make_dataset(tmp_path / "other", {"sinus": ("sine", 350.0), "weiss": ("white", 0.0)}, (2, 1), 4.0)
    doc = _json(
        genre("evaluate", "m", "--dataset", other, "--workspace", ws, "--config", cfg, "--all", "--json")
    )
    assert doc["splits"] == ["train", "test"] and doc["metrics"]["songs"] == 6  # 2 genres x (2 + 1)
    assert doc["metrics"]["per_genre"]["braun"]["support"] == 0  # a genre the dataset lacks
    table = genre("evaluate", "m", "--dataset", other, "--workspace", ws, "--config", cfg)
    assert table.exit_code == 0, table.stderr
    assert "song accuracy (majority vote)" in table.stdout and "its own test split" in table.stdout
    assert "2 songs" in table.stdout  # the test split only: 2 genres x 1


def test_unknown_genres_and_missing_models_are_one_line(
    trained: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    cfg, ws, _ = trained
    other = make_dataset(tmp_path / "other", {"sinus": ("sine", 350.0), "polka": ("pink", 0.0)}, (1, 1), 2.0)
    for args, text in (
        (("m", "--dataset", other), "model 'm' knows braun, sinus, weiss, not polka"),
        (("nope", "--dataset", other), "no model named 'nope'"),
    ):
        result = genre("evaluate", *args, "--workspace", ws, "--config", cfg)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert text in lines[0]


def test_a_song_below_min_confidence_is_uncertain_in_the_json(
    trained: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """A model calibrated to a high temperature is unsure of everything: with min_confidence
    above its confidence a song is uncertain, below it the verdict stands as before."""
    cfg, ws, own = trained
    card = json.loads((ws / "models" / "m" / "model.json").read_text())
    shutil.copytree(ws / "models" / "m", ws / "models" / "m-soft")
    card["name"] = "m-soft"
    card["calibration"] = {"temperature": 1000.0, "nll_before": 1.0, "nll_after": 1.0, "chunks": 3}
    (ws / "models" / "m-soft" / "model.json").write_text(json.dumps(card))
    song = next((own / "test" / "sinus").iterdir())
    strict = tmp_path / "strict.toml"
    strict.write_text(cfg.read_text() + "[query]\nmin_confidence = 0.5\n")
    for model, config, uncertain in (("m", strict, False), ("m-soft", cfg, False), ("m-soft", strict, True)):
        doc = _json(genre("query", song, "--model", model, "--workspace", ws, "--config", config, "--json"))
        v = doc["results"][0]["verdict"]
        assert v["uncertain"] is uncertain and v["confidence"] == dict(v["ranking"])[v["majority"]]
        assert (v["confidence"] < 0.4) is (model == "m-soft")  # 1/3 each at a huge temperature
    text = genre("query", song, "--model", "m-soft", "--workspace", ws, "--config", strict)
    assert text.exit_code == 0 and "Uncertain: perhaps" in text.stdout and "The song is" not in text.stdout


def test_the_card_warns_unless_the_model_clearly_beats_its_baseline(trained: tuple[Path, Path, Path]) -> None:
    from genre_erkennung.core import registry
    from genre_erkennung.core.workspace import Workspace

    _, ws, _ = trained
    card, _ = registry.verified(Workspace(ws), "m")
    for model, base, warned in ((0.9, 0.5, False), (0.55, 0.5, False), (0.54, 0.5, True), (0.4, 0.5, True)):
        card.metrics.song_accuracy, card.baseline.song_accuracy = model, base
        warning = card.baseline_warning()
        assert (warning is not None) is warned, (model, base)
    assert warning == (
        "warning: song accuracy 40% is not clearly above the baseline's 50% (-10 points; the baseline is "
        "a logistic regression on MFCC mean and std): this network does not earn its keep on this test split"
    )
