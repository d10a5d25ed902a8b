"""The musicnn backend end to end: extract -> train linear/mlp -> query, with the real wheel's weights.

Short chunks (6 s, 2 patches each) keep the network's CPU time to a few seconds; the code paths
are those of 30-s chunks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import genre_in_process, make_dataset
from pretrained_helpers import WAVS, golden, installed_workspace

from genre_erkennung.core import config as config_mod
from genre_erkennung.core import registry
from genre_erkennung.core.pretrained.head import chunk_probabilities
from genre_erkennung.core.store import EMBEDDING_ARRAYS, FeatureStore, config_key
from genre_erkennung.core.workspace import Workspace

GENRES = {"tone": ("sine", 330.0), "noise": ("pink", 0.0)}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(workspace with musicnn, dataset, config) shared by the tests of this module."""
    root = tmp_path_factory.mktemp("musicnn-e2e")
    ws = installed_workspace(root / "ws").root
    ds = make_dataset(root / "ds", GENRES, per_split=(3, 2), seconds=12.0)
    cfg = root / "musicnn.toml"
    cfg.write_text(
        "[audio]\nchunk_seconds = 6.0\nmin_chunk_seconds = 3.0\n"
        '[features]\nbackend = "musicnn"\ndevice = "cpu"\n'
        "[training]\nepochs = 40\nthreads = 1\n"
    )
    r = genre_in_process("extract", "--dataset", ds, "--workspace", ws, "--config", cfg, "--workers", "2")
    assert r.returncode == 0, r.stderr
    return ws, ds, cfg


def _store(ws: Path, cfg: Path) -> FeatureStore:
    settings = config_mod.load(cfg)
    return FeatureStore(ws / "features", config_key(settings))


def test_extraction_stores_chunk_embeddings(setup: tuple[Path, Path, Path]) -> None:
    ws, _, cfg = setup
    store = _store(ws, cfg)
    keys = store.entries()
    assert len(keys) == 10
    arrays, meta = store.load_arrays(keys[0], ("embedding", "embedding_std", "tags", "patches", "lengths"))
    chunks = len(arrays["lengths"])
    assert chunks == 2  # 12-13 s songs in 6-s chunks; a tail under 3 s is dropped
    assert arrays["embedding"].shape == (chunks, 200) and arrays["tags"].shape == (chunks, 50)
    assert arrays["patches"].tolist() == [2] * chunks and np.isfinite(arrays["embedding"]).all()
    assert (arrays["embedding_std"] > 0).any()
    assert meta["musicnn"] == "msd" and len(meta["tag_names"]) == 50
    manifest = json.loads((store.folder / "config.json").read_text())
    assert manifest["backend"] == "musicnn" and manifest["musicnn"]["variant"] == "msd"
    other = config_mod.load(cfg)
    other.features.musicnn = "mtt"
    assert config_key(other) != store.key  # each weight set has its own store
    again = genre_in_process("extract", "--dataset", setup[1], "--workspace", ws, "--config", cfg)
    assert again.returncode == 0 and "all 10 songs are already in the store" in again.stderr
    assert not (store.folder / "damaged").exists()  # an embedding entry is whole, not "damaged"


def test_train_linear_and_mlp_then_query(setup: tuple[Path, Path, Path]) -> None:
    ws, ds, cfg = setup
    common = ("--dataset", ds, "--workspace", ws, "--config", cfg)
    r = genre_in_process("train", *common, "--model", "linear", "--name", "lin")
    assert r.returncode == 0, r.stderr
    card = json.loads((ws / "models" / "lin" / "model.json").read_text())
    assert card["architecture"] == {"kind": "linear", "genres": 2, "inputs": 200, "hidden": 0, "dropout": 0.0}
    assert card["features"]["backend"] == "musicnn" and card["genres"] == ["noise", "tone"]
    assert card["input"]["baseline"] == "logistic regression on one mean embedding per song"
    assert len(card["normalisation"]["mean"]) == 200 and min(card["normalisation"]["std"]) > 0
    assert card["baseline"]["chunks"] == card["baseline"]["songs"] == 4  # one row per test song
    assert card["metrics"]["chunks"] == 8 and card["metrics"]["song_accuracy"] >= 0.75
    assert len(card["history"]) == card["training"]["epochs_run"] >= 1
    mlp = genre_in_process("train", *common, "--model", "mlp", "--name", "mlp")
    assert mlp.returncode == 0, mlp.stderr
    assert json.loads((ws / "models" / "mlp" / "model.json").read_text())["architecture"]["hidden"] == 256
    listed = genre_in_process("models", "list", "--workspace", ws)
    assert listed.returncode == 0 and "lin" in listed.stdout and "mlp" in listed.stdout

    song = sorted((ds / "test" / "noise").iterdir())[0]
    q = genre_in_process("query", song, "--model", "lin", "--json", "--workspace", ws, "--config", cfg)
    assert q.returncode == 0, q.stderr
    result = json.loads(q.stdout)["results"][0]
    assert len(result["chunks"]) == 2 and result["verdict"]["majority"] in ("noise", "tone")
    assert len(result["tags"]) == 10 and result["tags"][0][1] >= result["tags"][-1][1]
    # A query reads the model's own weights (msd) even where the config now says mtt.
    mtt = cfg.with_name("mtt.toml")
    mtt.write_text(cfg.read_text().replace('backend = "musicnn"', 'backend = "musicnn"\nmusicnn = "mtt"'))
    again = genre_in_process("query", song, "--model", "lin", "--json", "--workspace", ws, "--config", mtt)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["results"][0]["chunks"] == result["chunks"]
    scored = genre_in_process(
        "evaluate", "lin", "--dataset", ds, "--workspace", ws, "--config", cfg, "--json"
    )
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["metrics"]["chunks"] == card["metrics"]["chunks"]
    shown = genre_in_process("models", "show", "lin", "--workspace", ws)
    assert shown.returncode == 0 and "mean of the chunk's 3-s musicnn patch embeddings" in shown.stdout
    assert "linear: inputs=200" in shown.stdout


def test_refusals_say_what_to_do(setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    ws, ds, cfg = setup
    native = genre_in_process("train", "--dataset", ds, "--workspace", ws, "--model", "linear")
    assert native.returncode == 1 and "--backend musicnn" in native.stderr
    assert native.stderr.count("\n") == 1
    resume = genre_in_process(
        "train", "--dataset", ds, "--workspace", ws, "--config", cfg, "--model", "mlp", "--resume"
    )
    assert resume.returncode == 1 and "not resumable" in resume.stderr
    bare = genre_in_process("extract", "--dataset", ds, "--workspace", tmp_path / "empty", "--config", cfg)
    assert bare.returncode == 1 and "run `genre pretrained install musicnn`" in bare.stderr


def test_features_tags_rank_the_golden_taggram(setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    ws, _, _ = setup
    out = tmp_path / "tags.json"
    r = genre_in_process(
        "features", WAVS / "sweep_44k.wav", "--format", "tags", "--out", out, "--workspace", ws
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    g = golden("sweep_44k", "MSD")
    truth = g["taggram"].mean(axis=0)
    assert doc["patches"] == len(g["taggram"]) and len(doc["tags"]) == 50
    assert [t for t, _ in doc["tags"][:5]] == [str(g["tags"][i]) for i in np.argsort(-truth)[:5]]
    assert all(abs(s - float(truth[list(g["tags"]).index(t)])) < 1e-3 for t, s in doc["tags"])
    table = genre_in_process("features", WAVS / "sweep_44k.wav", "--format", "tags", "--workspace", ws)
    assert table.returncode == 0 and doc["tags"][0][0] in table.stdout


def test_head_models_are_calibrated_and_can_be_uncertain(setup: tuple[Path, Path, Path]) -> None:
    """Temperature scaling on the validation chunks, on the card, applied by queries (issue 13)."""
    ws, ds, cfg = setup
    short = cfg.with_name("short.toml")  # 2 epochs: far from saturated, so T = 1 is not optimal
    short.write_text(cfg.read_text().replace("epochs = 40", "epochs = 2\nvalidation_share = 0.4"))
    for kind in ("linear", "mlp"):
        r = genre_in_process(
            "train",
            "--dataset",
            ds,
            "--workspace",
            ws,
            "--config",
            short,
            "--model",
            kind,
            "--name",
            f"c-{kind}",
        )
        assert r.returncode == 0, r.stderr
        cal = json.loads((ws / "models" / f"c-{kind}" / "model.json").read_text())["calibration"]
        assert cal["chunks"] > 0 and cal["nll_after"] < cal["nll_before"] and cal["temperature"] != 1.0
    loaded = registry.load(Workspace(ws), "c-linear")
    arrays, meta = _store(ws, cfg).load_arrays(_store(ws, cfg).entries()[0], EMBEDDING_ARRAYS)
    probs = chunk_probabilities(loaded, arrays, meta)[0]
    loaded.card.calibration = None
    raw = chunk_probabilities(loaded, arrays, meta)[0]
    assert np.array_equal(probs.argmax(1), raw.argmax(1)) and not np.allclose(probs, raw)

    strict = cfg.with_name("strict.toml")
    strict.write_text(cfg.read_text() + "[query]\nmin_confidence = 0.999\n")
    song = sorted((ds / "test" / "tone").iterdir())[0]
    for config, uncertain in ((cfg, False), (strict, True)):
        q = genre_in_process(
            "query", song, "--model", "c-linear", "--json", "--workspace", ws, "--config", config
        )
        assert q.returncode == 0, q.stderr
        v = json.loads(q.stdout)["results"][0]["verdict"]
        assert v["uncertain"] is uncertain and 0.5 <= v["confidence"] < 0.999
