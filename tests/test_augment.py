"""Feature-space augmentation: the gain mapping equals the features of the louder/quieter audio.

Tolerances: the features of g*x are computed by the real native backend from the scaled float32
samples; MFCC C0 must move by sqrt(40)*log10(g) and C1..C19 stay, within 2e-4 absolute (float32
rounding of values of magnitude ~10); log10 contrast peaks must move by log10(g) within 1e-4
wherever the peak is above 1e-3 (the 1e-6 floor is then negligible). After standardising, the
Augment.gain of the quiet chunk's inputs must match the loud chunk's inputs within 1e-3.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genre_erkennung.core.augment import Augment
from genre_erkennung.core.config import TrainingSettings
from genre_erkennung.core.features.native import NativeBackend
from genre_erkennung.core.store import Entry
from genre_erkennung.core.tensors import Norm, compress_contrast, fit_norm, prepare, valid_frames

SR = 44100


def _music(seconds: float, seed: int) -> np.ndarray:
    """A chord with vibrato over quiet noise, then 0.5 s of digital silence: a padded tail."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = sum(0.2 * np.sin(2 * np.pi * f * t + 3 * np.sin(2 * np.pi * 5 * t)) for f in (220, 277, 330, 1760))
    x = x + 0.02 * rng.standard_normal(len(t))
    return np.concatenate([x, np.zeros(SR // 2)]).astype(np.float32)


def _norm() -> Norm:
    """Statistics of one dummy chunk."""
    e = Entry(
        np.ones((1, 3, 20), np.float32),
        np.ones((1, 6, 7), np.float32),
        np.ones((1, 6, 7), np.float32),
        np.zeros(1),
        np.array([3 * 1024]),
    )
    return fit_norm([e])


@pytest.mark.parametrize("db", [6.0, -9.5])
def test_gain_moves_c0_and_log_contrast_exactly(db: float) -> None:
    backend = NativeBackend(torch.device("cpu"))
    x = _music(3.0, seed=1)
    g = 10 ** (db / 20)
    quiet, loud = backend.batch(x[None], SR), backend.batch((x * np.float32(g))[None], SR)
    n = math.ceil((len(x) - SR // 2) / 1024) - 1  # frames whose window holds no silence
    dm = loud.mfcc[0, :n] - quiet.mfcc[0, :n]
    np.testing.assert_allclose(dm[:, 0], math.sqrt(40) * math.log10(g), atol=2e-4)
    np.testing.assert_allclose(dm[:, 1:], 0.0, atol=2e-4)
    peaks = quiet.peaks[0, : 2 * n]
    dc = compress_contrast(loud.peaks[0, : 2 * n]) - compress_contrast(peaks)
    assert (peaks > 1e-3).mean() > 0.99
    np.testing.assert_allclose(dc[peaks > 1e-3], math.log10(g), atol=1e-4)


def test_augment_gain_on_standardised_inputs_matches_the_louder_audio() -> None:
    backend = NativeBackend(torch.device("cpu"))
    x = _music(2.5, seed=2)
    db = 4.0
    quiet, loud = backend.batch(x[None], SR), backend.batch((x * np.float32(10 ** (db / 20)))[None], SR)
    entry = Entry(quiet.mfcc, quiet.peaks, quiet.valleys, np.zeros(1), np.array([len(x) - SR // 2]))
    norm = fit_norm([entry])
    frames = (quiet.mfcc.shape[1], quiet.peaks.shape[1])
    mq, cq = prepare(quiet.mfcc, quiet.peaks, norm, frames)
    ml, cl = prepare(loud.mfcc, loud.peaks, norm, frames)
    valid = valid_frames(torch.tensor([len(x) - SR // 2]), frames) - torch.tensor([[1, 2]])
    aug = Augment.from_settings(TrainingSettings(augment_gain_db=6.0), norm)
    assert aug is not None
    ma, ca = aug.gain(mq, cq, valid, torch.tensor([db]))
    v_m, v_c = int(valid[0, 0]), int(valid[0, 1])
    np.testing.assert_allclose(ma[0, :v_m], ml[0, :v_m], atol=1e-3)
    on = torch.from_numpy(quiet.peaks[0, :v_c] > 1e-3)
    np.testing.assert_allclose(ca[0, :v_c][on], cl[0, :v_c][on], atol=1e-3)
    assert torch.equal(ma[0, v_m:], mq[0, v_m:]) and torch.equal(ca[0, v_c:], cq[0, v_c:])  # padding stays


def test_time_mask_blanks_one_stretch_of_valid_frames_in_both_branches() -> None:
    aug = Augment(0.0, 0.4, 1.0, torch.ones(7))
    mfcc, contrast = torch.ones(64, 50, 20), torch.ones(64, 100, 7)
    valid = torch.tensor([[40, 80]] * 64)
    g = torch.Generator().manual_seed(0)
    m, c = aug(mfcc, contrast, valid, g)
    for i in range(64):
        off = (m[i, :, 0] == 0).nonzero().flatten()
        assert len(off) <= 16 and torch.all(m[i, 40:] == 1)  # at most 40% of 40 valid frames
        if len(off):
            assert off.max() - off.min() + 1 == len(off)  # one stretch
            c_off = (c[i, :, 0] == 0).nonzero().flatten()
            assert torch.equal(c_off, torch.arange(2 * int(off.min()), 2 * int(off.max()) + 2))
    assert sum(int((m[i, :, 0] == 0).any()) for i in range(64)) > 40
    assert Augment.from_settings(TrainingSettings(), _norm()) is None
