"""Training on small synthetic stores: real torch, real files, no mocks."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import make_dataset, settings

from genre_erkennung.core import registry, tensors
from genre_erkennung.core.device import pick_device
from genre_erkennung.core.errors import Cancelled, GenreError
from genre_erkennung.core.events import EpochEnd, Event, Message
from genre_erkennung.core.metrics import baseline, class_weights, evaluate
from genre_erkennung.core.model import Architecture, build
from genre_erkennung.core.run import Run, RunState
from genre_erkennung.core.threads import measure_threads
from genre_erkennung.core.train import fit, train
from genre_erkennung.core.workspace import Workspace


def test_training_learns_and_two_runs_agree(tmp_path: Path) -> None:
    ds, store = make_dataset(tmp_path)
    ws = Workspace(tmp_path / "ws")
    events: list[Event] = []
    a = train(ds, settings(), ws, store=store, name="a", report=events.append)
    b = train(ds, settings(), ws, store=store, name="b")
    assert a.metrics.song_accuracy > 0.6  # chance is 1/3
    assert a.metrics.to_json() == b.metrics.to_json()
    assert [h.loss for h in a.history] == [h.loss for h in b.history]
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert [e.epoch for e in epochs] == list(range(1, 7))
    assert all(e.chunks_per_s > 0 and e.val_loss == e.val_loss for e in epochs)
    assert any(isinstance(e, Message) and "cpu with 1 thread" in e.text for e in events)


def test_stopped_run_saves_its_best_and_resumes_exactly(tmp_path: Path) -> None:
    ds, store = make_dataset(tmp_path)
    ws = Workspace(tmp_path / "ws")
    whole = train(ds, settings(), ws, store=store, name="whole")

    cancel = threading.Event()

    def stop_after_two(event: Event) -> None:
        if isinstance(event, EpochEnd) and event.epoch == 2:
            cancel.set()

    part = train(ds, settings(), ws, store=store, name="part", report=stop_after_two, cancel=cancel)
    assert part.stopped == "cancelled"
    assert part.card.status == "stopped" and len(part.history) == 2
    registry.load(ws, "part")  # the best epoch so far is a usable model
    resumed = train(ds, settings(device="cpu"), ws, store=store, name="part", resume=True)
    assert resumed.stopped == "epochs" and resumed.card.status == "complete"
    assert [h.loss for h in resumed.history] == [h.loss for h in whole.history]
    assert resumed.metrics.to_json() == whole.metrics.to_json()
    with pytest.raises(GenreError, match="pass a larger --epochs"):
        train(ds, settings(), ws, store=store, name="part", resume=True)
    more = train(ds, settings(), ws, store=store, name="part", resume=True, epochs=7)
    assert [h.epoch for h in more.history] == list(range(1, 8))


def test_cancel_before_the_first_epoch_saves_nothing(tmp_path: Path) -> None:
    ds, store = make_dataset(tmp_path)
    ws = Workspace(tmp_path / "ws")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled, match="nothing was saved"):
        train(ds, settings(), ws, store=store, name="never", cancel=cancel)
    assert not (ws.models / "never").exists()


def _tensors(tmp_path: Path) -> tensors.TrainingData:
    ds, store = make_dataset(tmp_path)
    return tensors.load_dataset(ds, store)


def test_early_stopping_keeps_the_best_epoch(tmp_path: Path) -> None:
    data = _tensors(tmp_path)
    # Validation labels shifted by one genre: the better the fit, the worse the validation loss.
    val = dataclasses.replace(data.train, labels=(data.train.labels + 1) % 3)
    torch.manual_seed(0)
    model = build(Architecture("mfcc", 3))
    run = Run(model, torch.optim.Adam(model.parameters(), 3e-3), torch.Generator(), RunState(), {})
    ts = dataclasses.replace(settings().training, epochs=50, patience=2)
    saved: list[int] = []
    stopped = fit(
        run,
        data.train,
        val,
        ts,
        torch.device("cpu"),
        None,
        lambda e: None,
        threading.Event(),
        lambda r: saved.append(r.state.epoch),
    )
    s = run.state
    assert stopped == "early-stop" and s.epoch < 50
    assert s.epoch == s.best_epoch + 2 and saved == list(range(1, s.epoch + 1))
    best_val = min(h.val_loss for h in s.history)
    assert s.history[s.best_epoch - 1].val_loss == best_val == s.best_loss
    assert any(not torch.equal(run.best[k], v) for k, v in model.state_dict().items())


def test_class_weights_when_genres_are_imbalanced(tmp_path: Path) -> None:
    labels = torch.tensor([0] * 6 + [1] * 2 + [2] * 2)
    w = class_weights(labels, 3, balance=True)
    assert w is not None and torch.allclose(w * torch.tensor([6.0, 2, 2]), torch.full((3,), 10 / 3))
    assert class_weights(labels, 3, balance=False) is None
    assert class_weights(torch.tensor([0, 1, 2, 0, 1, 2]), 3, balance=True) is None

    ds, store = make_dataset(tmp_path, train=(8, 3, 3))
    ws = Workspace(tmp_path / "ws")
    on = train(ds, settings(epochs=2), ws, store=store, name="on")
    off = train(ds, settings(epochs=2, balance=False), ws, store=store, name="off")
    assert on.card.training.class_weights is not None
    assert off.card.training.class_weights is None


def test_metrics_vote_by_song_and_balance_genres() -> None:
    genres = ["a", "b"]
    # song 0 (a): votes a, b, tie broken by mean probability (a); song 1 (b): all chunks say a.
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.55, 0.45]])
    labels = np.array([0, 0, 1, 1])
    songs = np.array([0, 0, 1, 1])
    m = evaluate(probs, labels, songs, genres)
    assert m.chunk_accuracy == 0.25
    assert m.song_accuracy == 0.5 and m.song_accuracy_mean == 0.5
    assert m.balanced_accuracy == 0.25 and m.song_balanced_accuracy == 0.5
    assert m.confusion.loc["a"].tolist() == [1, 1] and m.confusion.loc["b"].tolist() == [2, 0]
    assert m.per_genre.loc["a", "precision"] == pytest.approx(1 / 3)
    assert m.per_genre.loc["b", "f1"] == 0.0
    # A model that always answers the biggest genre: high accuracy, balanced accuracy 1/genres.
    majority = evaluate(np.tile([0.9, 0.1], (10, 1)), np.array([0] * 9 + [1]), np.arange(10), genres)
    assert majority.chunk_accuracy == 0.9 and majority.balanced_accuracy == 0.5
    assert json.loads(json.dumps(m.to_json())) == m.to_json()


def test_baseline_beats_chance_on_separable_songs(tmp_path: Path) -> None:
    data = _tensors(tmp_path)
    base = baseline(data.train, data.test, data.genres)
    assert base.song_accuracy > 0.6 and base.songs == 6


def test_contrast_is_compressed_and_statistics_come_from_training_songs(tmp_path: Path) -> None:
    ds, store = make_dataset(tmp_path, frames=(50, 90))
    data = tensors.load_dataset(ds, store)
    train = [store.load(s.key) for s in ds.usable("train")]
    peaks = np.concatenate([np.log10(e.contrast_peaks + 1e-6).reshape(-1, 7) for e in train])
    np.testing.assert_allclose(data.norm.contrast_mean, peaks.mean(0), rtol=1e-5)
    np.testing.assert_allclose(data.norm.contrast_std, peaks.std(0), rtol=1e-4)
    assert data.frames == (50, 90)
    flat = data.train.contrast.reshape(-1, 7)
    assert torch.allclose(flat.mean(0), torch.zeros(7), atol=1e-4)
    assert torch.allclose(flat.std(0), torch.ones(7), atol=1e-3)
    # Chunks of another length are padded (with the training mean) or cropped.
    m, c = tensors.prepare(np.zeros((2, 30, 20)), np.zeros((2, 120, 7)), data.norm, (50, 90))
    assert m.shape == (2, 50, 20) and c.shape == (2, 90, 7)
    assert torch.equal(m[:, 30:], torch.zeros(2, 20, 20))


def test_padding_counts_in_neither_the_statistics_nor_the_baseline(tmp_path: Path) -> None:
    ds, store = make_dataset(tmp_path, frames=(50, 100))
    keys = [s.key for s in ds.usable("train")]
    music = {k: store.load(k) for k in keys}
    for entry in music.values():  # every last chunk: 20 MFCC / 40 contrast frames of music
        entry.lengths[-1] = 20 * 1024 - 7
    for k, entry in music.items():
        store.save(k, entry)
    clean = tensors.load_dataset(ds, store)
    for k, entry in music.items():  # the padding becomes wild numbers: nothing may change
        entry.mfcc[-1, 20:], entry.contrast_peaks[-1, 40:] = 1e4, 1e8
        store.save(k, entry)
    wild = tensors.load_dataset(ds, store)
    assert clean.train.valid()[2].tolist() == [20, 40] and clean.train.valid()[0].tolist() == [50, 100]
    for key in ("mfcc_mean", "mfcc_std", "contrast_mean", "contrast_std"):
        np.testing.assert_allclose(getattr(wild.norm, key), getattr(clean.norm, key), rtol=1e-6)
    valid = np.concatenate([e.mfcc[i, : (20 if i == 2 else 50)] for e in music.values() for i in range(3)])
    np.testing.assert_allclose(clean.norm.mfcc_mean, valid.mean(0), rtol=1e-5, atol=1e-6)
    a, b = baseline(clean.train, clean.test, clean.genres), baseline(wild.train, wild.test, wild.genres)
    assert a.to_json() == b.to_json()


def test_validation_is_a_share_of_training_songs_per_genre(tmp_path: Path) -> None:
    data = _tensors(tmp_path)  # 6 training songs per genre
    fit_ids, val_ids = tensors.validation_split(data.train, 0.34, seed=1)
    assert not set(fit_ids) & set(val_ids) and len(fit_ids) + len(val_ids) == 18
    label = {int(s): int(y) for s, y in zip(data.train.songs, data.train.labels, strict=True)}
    assert sorted(label[i] for i in val_ids) == [0, 0, 1, 1, 2, 2]
    assert tensors.validation_split(data.train, 0.34, seed=1) == (fit_ids, val_ids)
    assert tensors.validation_split(data.train, 0.0, seed=1)[1] == []


def test_thread_measurement_picks_one_of_the_counts(tmp_path: Path) -> None:
    data = _tensors(tmp_path)
    before = torch.get_num_threads()
    best, times = measure_threads(Architecture("merged", 3), data.train, 16, None)
    torch.set_num_threads(before)
    assert best in (1, 2) and (not times or set(times) == {1, 2})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_clear_error() -> None:
    with pytest.raises(GenreError, match="no CUDA GPU"):
        pick_device("cuda")
    assert pick_device("auto").type == "cpu"


def test_bad_datasets_are_refused_with_one_line(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    one, store = make_dataset(tmp_path / "one", genres=("rock",))
    with pytest.raises(GenreError, match="at least 2 genres, found 1 \\(rock\\)"):
        train(one, settings(), ws, store=store)
    empty, store = make_dataset(tmp_path / "empty", train=(4, 0, 4))
    with pytest.raises(GenreError, match="genre 'metal' has no training songs"):
        train(empty, settings(), ws, store=store)
    ds, _ = make_dataset(tmp_path / "ds")
    fresh = tmp_path / "other"
    _, unrelated = make_dataset(fresh, genres=("x", "y"))
    with pytest.raises(
        GenreError,
        match=r"24 of 24 songs have no features yet \(train/blues/song 0.wav, .* and 21 more\): "
        "run `genre extract --dataset",
    ):
        train(ds, settings(), ws, store=unrelated)
    assert not ws.models.exists() or not any(ws.models.iterdir())


def test_existing_names_are_never_overwritten(tmp_path: Path) -> None:
    ds, store = make_dataset(tmp_path)
    ws = Workspace(tmp_path / "ws")
    train(ds, settings(epochs=1), ws, store=store, name="keep")
    card = (ws.models / "keep" / "model.json").read_bytes()
    with pytest.raises(GenreError, match="already exists"):
        train(ds, settings(epochs=1), ws, store=store, name="keep")
    for bad in ("a/b", "..", "../x"):
        with pytest.raises(GenreError, match="bad model name"):
            train(ds, settings(epochs=1), ws, store=store, name=bad)
    assert (ws.models / "keep" / "model.json").read_bytes() == card
    assert not (tmp_path / "x").exists()


def test_without_validation_songs_every_epoch_runs_and_the_last_is_kept(tmp_path: Path) -> None:
    ds, store = make_dataset(tmp_path)
    ws = Workspace(tmp_path / "ws")
    events: list[Event] = []
    result = train(
        ds, settings(epochs=3, validation_share=0.0, model="contrast"), ws, store=store, report=events.append
    )
    assert result.stopped == "epochs" and result.card.training.best_epoch == 3
    assert [h.val_loss for h in result.history] == [None, None, None]
    assert all(e.val_loss != e.val_loss for e in events if isinstance(e, EpochEnd))  # NaN
    assert (
        result.name.startswith("contrast-")
        and registry.load(ws, result.name).card.architecture.kind == "contrast"
    )
