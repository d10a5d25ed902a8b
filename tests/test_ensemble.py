"""`training.ensemble`: members trained one after another, saved as one model, averaged by a query."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import train_helpers
from safetensors.torch import load_file
from train_helpers import make_dataset

from genre_erkennung.core import plan, registry
from genre_erkennung.core.config import Settings
from genre_erkennung.core.errors import GenreError
from genre_erkennung.core.events import EpochEnd, Event, Message
from genre_erkennung.core.metrics import evaluate
from genre_erkennung.core.model import EnsembleNet, build
from genre_erkennung.core.predict import predict_chunks
from genre_erkennung.core.tensors import load_dataset, prepare, valid_frames
from genre_erkennung.core.train import train
from genre_erkennung.core.workspace import Workspace


def settings(**training: object) -> Settings:
    return train_helpers.settings(**{"epochs": 4, "ensemble": 3, **training})


def test_an_ensemble_saves_loads_and_averages_its_members(tmp_path: Path) -> None:
    ds, store = make_dataset(tmp_path)
    ws = Workspace(tmp_path / "ws")
    events: list[Event] = []
    result = train(ds, settings(), ws, store=store, name="ens", report=events.append)
    card = result.card
    assert card.ensemble is not None and card.calibration is None
    assert [m.seed for m in card.ensemble.members] == [0, 1000, 2000]
    assert all(m.calibration is not None and m.epochs_run == 4 for m in card.ensemble.members)
    assert [e.member for e in events if isinstance(e, EpochEnd)] == [0] * 4 + [1] * 4 + [2] * 4
    assert sum(isinstance(e, Message) and "ensemble member" in e.text for e in events) == 3
    assert {h.member for h in card.history} == {0, 1, 2}

    folder = ws.models / "ens"
    assert registry.read_card(folder, "ens").to_json() == card.to_json()
    weights = load_file(folder / "weights.safetensors")
    assert {k.split(".")[1] for k in weights} == {"0", "1", "2"}
    loaded = registry.load(ws, "ens")
    assert isinstance(loaded.module, EnsembleNet) and loaded.card.temperature == 1.0

    # A query's probabilities are the mean of each member's own calibrated softmax.
    temperatures = [m.calibration.temperature for m in card.ensemble.members if m.calibration]
    nets = []
    for i in range(3):
        net = build(card.architecture).eval()
        prefix = f"members.{i}."
        net.load_state_dict({k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)})
        nets.append(net)
    data = load_dataset(ds, store, card.normalisation, card.frames, card.genres)
    probs, labels, songs = [], [], []
    for n, song in enumerate(ds.usable("test")):
        entry = store.load(song.key)
        p = predict_chunks(loaded, entry.mfcc, entry.contrast_peaks, entry.lengths)
        m, c = prepare(entry.mfcc, entry.contrast_peaks, card.normalisation, card.frames)
        valid = valid_frames(torch.from_numpy(entry.lengths.astype(np.int64)), card.frames)
        with torch.no_grad():
            one = [(n(m, c, valid) / t).softmax(1).numpy() for n, t in zip(nets, temperatures, strict=True)]
        np.testing.assert_allclose(p, np.mean(one, axis=0), atol=1e-6)
        probs.append(p)
        labels += [card.genres.index(song.genre)] * len(p)
        songs += [n] * len(p)
    again = evaluate(np.concatenate(probs), np.array(labels), np.array(songs), card.genres)
    assert again.song_accuracy == pytest.approx(card.metrics.song_accuracy)
    assert len(data.test) == len(labels)

    # Each member has its own validation songs (its own seed).
    splits = {tuple(plan.member_split(ds, data, card.settings, m)[1]) for m in range(3)}
    assert len(splits) > 1  # 6 songs a genre, 1 for validation: two may agree
    assert "merged x3" in [i.kind for i in registry.list_models(ws)]


def test_an_interrupted_ensemble_resumes_with_the_member_it_was_training(tmp_path: Path) -> None:
    ds, store = make_dataset(tmp_path)
    ws = Workspace(tmp_path / "ws")
    whole = train(ds, settings(), ws, store=store, name="whole")
    cancel = threading.Event()

    def stop_in_member_two(event: Event) -> None:
        if isinstance(event, EpochEnd) and (event.member, event.epoch) == (1, 2):
            cancel.set()

    part = train(ds, settings(), ws, store=store, name="part", report=stop_in_member_two, cancel=cancel)
    assert part.stopped == "cancelled" and part.card.status == "stopped"
    assert part.card.ensemble is not None
    assert [m.stopped for m in part.card.ensemble.members] == ["epochs", "cancelled"]
    registry.load(ws, "part")  # what it has so far is a usable model
    kept_weights = load_file(ws.models / "part" / "checkpoint" / "member-0.safetensors")

    events: list[Event] = []
    resumed = train(ds, settings(), ws, store=store, name="part", resume=True, report=events.append)
    epochs = [(e.member, e.epoch) for e in events if isinstance(e, EpochEnd)]
    assert epochs == [(1, 3), (1, 4), (2, 1), (2, 2), (2, 3), (2, 4)]  # member 1 is not trained again
    assert resumed.card.status == "complete"
    assert resumed.metrics.to_json() == whole.metrics.to_json()
    saved = load_file(ws.models / "part" / "weights.safetensors")
    for k, v in kept_weights.items():
        assert torch.equal(saved[f"members.0.{k}"], v)
    with pytest.raises(GenreError, match="nothing to resume"):
        train(ds, settings(), ws, store=store, name="part", resume=True)


def test_a_one_member_ensemble_is_the_plain_model(tmp_path: Path) -> None:
    ds, store = make_dataset(tmp_path)
    ws = Workspace(tmp_path / "ws")
    result = train(ds, settings(ensemble=1), ws, store=store, name="one")
    card = json.loads((ws.models / "one" / "model.json").read_text())
    assert "ensemble" not in card and result.card.calibration is not None
    assert all("member" not in h for h in card["history"])


def test_heads_refuse_an_ensemble(tmp_path: Path) -> None:
    ds, store = make_dataset(tmp_path)
    with pytest.raises(GenreError, match="ensemble"):
        train(ds, settings(model="linear"), Workspace(tmp_path / "ws"), store=store, name="x")
