"""Saved models: a complete folder, identical predictions after reload, refusals in one line."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from train_helpers import features, make_dataset

from genre_erkennung.core import registry
from genre_erkennung.core.card import ModelCard
from genre_erkennung.core.config import Settings
from genre_erkennung.core.errors import ModelError
from genre_erkennung.core.predict import predict_chunks
from genre_erkennung.core.train import TrainResult, predict_logits, train
from genre_erkennung.core.workspace import Workspace


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, TrainResult, Path]:
    root = tmp_path_factory.mktemp("registry")
    ds, store = make_dataset(root)
    s = Settings()
    s.training = dataclasses.replace(s.training, epochs=3, threads=1)
    ws = Workspace(root / "ws")
    return ws, train(ds, s, ws, store=store, name="tiny"), root


@pytest.fixture
def ws(trained: tuple[Workspace, TrainResult, Path], tmp_path: Path) -> Workspace:
    """A private copy of the trained workspace, free to damage."""
    copy = Workspace(tmp_path / "ws")
    shutil.copytree(trained[0].root, copy.root)
    return copy


def test_model_folder_is_complete(trained: tuple[Workspace, TrainResult, Path]) -> None:
    ws, result, _ = trained
    folder = ws.models / "tiny"
    assert {p.name for p in folder.iterdir()} == {
        "weights.safetensors",
        "model.json",
        "history.csv",
        "checkpoint",
    }
    assert not list(folder.rglob("*.pt")) and not list(folder.rglob("*.pkl"))
    card = json.loads((folder / "model.json").read_text())
    for key in (
        "format_version",
        "architecture",
        "genres",
        "features",
        "normalisation",
        "input",
        "settings",
        "history",
        "metrics",
        "baseline",
        "dataset",
        "versions",
        "created",
    ):
        assert key in card, key
    assert card["genres"] == ["blues", "metal", "pop"]
    assert card["architecture"]["kind"] == "merged"
    assert card["architecture"]["sizes"]["mfcc_lstm"] == 300
    assert card["features"]["config_key"] == "synthetic"
    assert card["features"]["config"] == {"backend": "synthetic", "frames": 40}
    assert card["input"]["frames"] == [40, 80]
    assert card["dataset"]["fingerprint"] == result.card.dataset.fingerprint
    assert card["metrics"]["confusion"]["counts"] and card["baseline"]["song_accuracy"] >= 0
    assert len(pd.read_csv(folder / "history.csv")) == 3


def test_reload_gives_identical_predictions(trained: tuple[Workspace, TrainResult, Path]) -> None:
    ws, result, root = trained
    loaded = registry.load(ws, "tiny")
    assert loaded.genres == ["blues", "metal", "pop"] and not loaded.module.training
    mfcc, peaks = features(np.random.default_rng(5), genre=1, chunks=4)
    probs = predict_chunks(loaded, mfcc, peaks)
    assert probs.shape == (4, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    again = predict_chunks(registry.load(ws, "tiny"), mfcc, peaks)
    assert np.array_equal(probs, again)
    # The card's test metrics are what the reloaded model scores on the stored test songs.
    from genre_erkennung.core import tensors
    from genre_erkennung.core.metrics import evaluate

    ds, store = make_dataset(root / "again")
    data = tensors.load_dataset(ds, store, loaded.card.normalisation, loaded.card.frames, loaded.genres)
    logits = predict_logits(loaded.module, data.test, torch.device("cpu"))
    m = evaluate(
        torch.softmax(logits, 1).numpy(), data.test.labels.numpy(), data.test.songs.numpy(), loaded.genres
    )
    assert m.to_json() == result.card.to_json()["metrics"]


def test_predictions_of_padded_chunks_ignore_the_padding(
    trained: tuple[Workspace, TrainResult, Path],
) -> None:
    loaded = registry.load(trained[0], "tiny")
    mfcc, peaks = features(np.random.default_rng(6), genre=2, chunks=3)
    whole = predict_chunks(loaded, mfcc, peaks)
    assert np.array_equal(predict_chunks(loaded, mfcc, peaks, np.full(3, 30 * 44100)), whole)
    lengths = np.array([30 * 44100, 30 * 44100, 35 * 1024 - 100])  # the last: 35 of 40 MFCC frames
    padded = predict_chunks(loaded, mfcc, peaks, lengths)
    assert np.array_equal(padded[:2], whole[:2]) and not np.allclose(padded[2], whole[2])
    other_m, other_p = mfcc.copy(), peaks.copy()
    other_m[2, 35:], other_p[2, 70:] = 0.0, 0.0  # digital silence instead of music in the padding
    np.testing.assert_allclose(predict_chunks(loaded, other_m, other_p, lengths), padded, rtol=0, atol=1e-6)
    with pytest.raises(ModelError, match="one length per chunk"):
        predict_chunks(loaded, mfcc, peaks, lengths[:2])


def test_list_newest_and_remove(ws: Workspace) -> None:
    (ws.models / "junk").mkdir()  # not a model folder: not listed, cannot be removed as one
    infos = registry.list_models(ws)
    assert [i.name for i in infos] == ["tiny"]
    tiny = next(i for i in infos if i.name == "tiny")
    assert tiny.genres == ["blues", "metal", "pop"] and tiny.status == "complete"
    assert tiny.song_accuracy is not None and tiny.created
    assert registry.newest(ws).name == "tiny"
    with pytest.raises(ModelError, match="no model named 'junk'"):
        registry.remove(ws, "junk")
    registry.remove(ws, "tiny")
    assert registry.newest(ws) is None and not (ws.models / "tiny").exists()
    with pytest.raises(ModelError, match="no model named 'tiny'"):
        registry.load(ws, "tiny")


@pytest.mark.parametrize("name", ["a/b", "..", "../tiny", "", ".hidden", "x" * 65, "a b"])
def test_bad_names_are_refused(ws: Workspace, name: str) -> None:
    for call in (registry.load, registry.remove):
        with pytest.raises(ModelError, match="bad model name"):
            call(ws, name)
    assert (ws.models / "tiny" / "model.json").exists()


def test_corrupted_weights_are_refused(ws: Workspace) -> None:
    weights = ws.models / "tiny" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"weights\.safetensors is damaged"):
        registry.load(ws, "tiny")
    weights.write_bytes(b"")
    with pytest.raises(ModelError, match="damaged"):
        registry.load(ws, "tiny")


def test_weights_that_do_not_fit_are_refused(ws: Workspace) -> None:
    folder = ws.models / "tiny"
    save_file({"something": torch.zeros(3)}, folder / "weights.safetensors")
    card = json.loads((folder / "model.json").read_text())
    card["weights"]["sha256"] = registry.sha256((folder / "weights.safetensors").read_bytes())
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="does not fit the architecture"):
        registry.load(ws, "tiny")


def test_newer_format_and_broken_cards_are_refused(ws: Workspace) -> None:
    path = ws.models / "tiny" / "model.json"
    card = json.loads(path.read_text())
    path.write_text(json.dumps({**card, "format_version": registry.FORMAT_VERSION + 1}))
    with pytest.raises(ModelError, match="newer genre-erkennung"):
        registry.load(ws, "tiny")
    path.write_text(json.dumps({**card, "genres": ["a", "a", "b"]}))
    with pytest.raises(ModelError, match="malformed"):
        registry.load(ws, "tiny")
    path.write_text("{not json")
    with pytest.raises(ModelError, match="unreadable"):
        registry.load(ws, "tiny")
    infos = registry.list_models(ws)
    assert infos[0].error and registry.newest(ws) is None


def test_check_features_refuses_a_mismatching_model(trained: tuple[Workspace, TrainResult, Path]) -> None:
    from genre_erkennung.core.store import config_key

    card = trained[1].card
    settings = Settings()
    with pytest.raises(ModelError, match="trained on other features"):
        registry.check_features(card, settings)
    matching = dataclasses.replace(
        card, features=dataclasses.replace(card.features, config_key=config_key(settings))
    )
    registry.check_features(matching, settings)


def test_a_model_on_native_features_version_1_is_queried_with_todays(
    trained: tuple[Workspace, TrainResult, Path],
) -> None:
    from genre_erkennung.core.store import feature_config

    settings = Settings()
    now = feature_config(settings)
    card = trained[1].card

    def trained_on(config: dict) -> ModelCard:
        return dataclasses.replace(
            card, features=dataclasses.replace(card.features, config_key="v1", config=config)
        )

    registry.check_features(trained_on({**now, "feature_version": 1}), settings)  # only float32 FFT noise
    with pytest.raises(ModelError, match="feature_version: model 0, now 2"):
        registry.check_features(trained_on({**now, "feature_version": 0}), settings)
    sonic = Settings()
    sonic.features.backend = "sonic-annotator"
    old_sonic = {**feature_config(sonic), "feature_version": 0}
    with pytest.raises(ModelError, match="trained on other features"):
        registry.check_features(trained_on(old_sonic), sonic)
    assert feature_config(sonic)["feature_version"] == 1  # the plugins' numbers did not change
