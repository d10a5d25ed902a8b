"""Augmentation of the cached, standardised training features, against other mastering chains.

*Gain* is applied in feature space because the math makes it exact: scaling the audio by g
scales every mel filter energy by g (they are weighted sums of magnitudes), so each of the 40
log10 energies moves by log10(g) and the orthonormal DCT-II puts all of it into C0:
C0 += sqrt(40) * log10(g), C1..C19 unchanged. Spectral-contrast peaks scale linearly with g, so
log10(peaks + 1e-6) moves by log10(g) wherever the peak is well above the 1e-6 floor. Both are
exact up to float32 rounding, except in frames of digital silence (whose zero energies stay
zero) - which is why only a chunk's valid frames are shifted; tests/test_augment.py checks the
mapping against features computed from the scaled audio.

*Time masking* blanks a random stretch of a chunk's valid frames in both branches (set to 0,
the training mean after standardising). It is a regulariser, not a model of the audio.

Spectral tilt/EQ is not offered: a tilt changes the energies inside a mel band unevenly, so no
feature-space mapping is exact; it would have to be applied to the audio at extraction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import TrainingSettings
from .tensors import Norm

#: C0 moves by sqrt(40) * log10(g): 40 mel filters, orthonormal DCT-II.
C0_PER_LOG10 = math.sqrt(40.0)


@dataclass(frozen=True)
class Augment:
    """Random per-chunk gain (uniform in +-gain_db dB) and time masking (up to `time_mask` of
    the valid frames), on standardised inputs whose statistics are `norm`."""

    gain_db: float
    time_mask: float
    c0_per_db: float  # standardised C0 change per dB of gain
    contrast_per_db: torch.Tensor  # [bands] standardised change per dB

    @classmethod
    def from_settings(cls, ts: TrainingSettings, norm: Norm) -> Augment | None:
        if ts.augment_gain_db <= 0 and ts.time_mask <= 0:
            return None
        return cls(
            ts.augment_gain_db,
            ts.time_mask,
            C0_PER_LOG10 / 20.0 / float(norm.mfcc_std[0]),
            torch.from_numpy(1.0 / 20.0 / norm.contrast_std).float(),
        )

    def gain(
        self, mfcc: torch.Tensor, contrast: torch.Tensor, valid: torch.Tensor, db: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs of the same chunks played `db` [N] dB louder (new tensors)."""
        m_on = torch.arange(mfcc.shape[1], device=mfcc.device) < valid[:, :1]  # [N, T]
        c_on = torch.arange(contrast.shape[1], device=contrast.device) < valid[:, 1:]
        db = db.to(mfcc.device, mfcc.dtype)
        mfcc = mfcc.clone()
        mfcc[:, :, 0] += (db * self.c0_per_db)[:, None] * m_on
        shift = db[:, None, None] * self.contrast_per_db.to(contrast.device)[None, None, :]
        return mfcc, contrast + shift * c_on[:, :, None]

    def mask(
        self, mfcc: torch.Tensor, contrast: torch.Tensor, valid: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Blank one random stretch of up to `time_mask` of each chunk's valid MFCC frames (and
        the contrast frames covering the same time: two per MFCC frame)."""
        n = len(mfcc)
        frames = valid[:, 0].cpu().float()
        length = (torch.rand(n, generator=generator) * self.time_mask * frames).long()
        start = (torch.rand(n, generator=generator) * (frames - length + 1)).long().clamp(min=0)
        t = torch.arange(mfcc.shape[1])
        m_off = (t >= start[:, None]) & (t < (start + length)[:, None])
        t2 = torch.arange(contrast.shape[1])
        c_off = (t2 >= 2 * start[:, None]) & (t2 < 2 * (start + length)[:, None])
        keep_m, keep_c = (~m_off).to(mfcc.device, mfcc.dtype), (~c_off).to(contrast.device, contrast.dtype)
        return mfcc * keep_m[:, :, None], contrast * keep_c[:, :, None]

    def __call__(
        self, mfcc: torch.Tensor, contrast: torch.Tensor, valid: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A random gain and time mask per chunk, drawn from `generator` (a CPU generator, saved
        with the run's checkpoint, so a resumed run draws what the stopped one would have)."""
        if self.gain_db > 0:
            db = (torch.rand(len(mfcc), generator=generator) * 2 - 1) * self.gain_db
            mfcc, contrast = self.gain(mfcc, contrast, valid, db)
        if self.time_mask > 0:
            mfcc, contrast = self.mask(mfcc, contrast, valid, generator)
        return mfcc, contrast
