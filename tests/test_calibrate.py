"""Temperature scaling on a small real training run, and what queries do with confidences."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import make_dataset

from genre_erkennung.core import registry
from genre_erkennung.core.calibrate import fit_temperature, nll
from genre_erkennung.core.config import Settings
from genre_erkennung.core.predict import predict_chunks, verdict
from genre_erkennung.core.train import train
from genre_erkennung.core.workspace import Workspace


@pytest.mark.slow  # trains a model: ~20-60 s on 2 busy cores
def test_calibration_lowers_the_validation_nll_of_a_real_run(tmp_path: Path) -> None:
    ds, store = make_dataset(tmp_path, train=8, chunks=3)
    s = Settings()
    s.training = dataclasses.replace(s.training, epochs=5, patience=5, threads=1, validation_share=0.4)
    result = train(ds, s, Workspace(tmp_path / "ws"), store=store, name="cal")
    cal = result.card.calibration
    assert cal is not None and cal.chunks == result.card.training.validation.chunks > 0
    assert cal.nll_after < cal.nll_before and cal.temperature != 1.0
    loaded = registry.load(Workspace(tmp_path / "ws"), "cal")
    assert loaded.card.calibration == cal  # stored on the card
    song = next(x for x in ds.usable("test"))
    e = store.load(song.key)
    probs = predict_chunks(loaded, e.mfcc, e.contrast_peaks, e.lengths)
    loaded.card.calibration = None  # the query path applies the temperature: softmax(logits / T)
    raw = predict_chunks(loaded, e.mfcc, e.contrast_peaks, e.lengths)
    assert np.array_equal(probs.argmax(1), raw.argmax(1))
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert not np.allclose(probs, raw)


def test_fit_temperature_softens_an_overconfident_model() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (300,), generator=g)
    logits = torch.randn(300, 3, generator=g) + 2.0 * torch.nn.functional.one_hot(labels, 3)
    wrong = torch.rand(300, generator=g) < 0.3
    labels = torch.where(wrong, (labels + 1) % 3, labels)  # 30% of confident answers are wrong
    cal = fit_temperature(logits * 5, labels)  # 5x too sharp
    assert cal.temperature > 2.0 and cal.nll_after < cal.nll_before
    assert abs(nll(logits * 5, labels, cal.temperature) - cal.nll_after) < 1e-5


def test_a_song_below_min_confidence_is_uncertain() -> None:
    probs = np.array([[0.5, 0.3, 0.2], [0.4, 0.35, 0.25], [0.2, 0.5, 0.3]])
    v = verdict(probs, ["a", "b", "c"], min_confidence=0.5)
    assert v.majority == "a" and abs(v.confidence - 0.3667) < 1e-4 and v.uncertain
    assert not verdict(probs, ["a", "b", "c"], min_confidence=0.3).uncertain
    assert not verdict(probs, ["a", "b", "c"]).uncertain
