"""The two Vamp transforms in torch, batched over chunks, exactly as ../shared/features/SPEC.md.

Framing is sonic-annotator's: frame k of a transform with step S and block 2S is centred on
sample k*S, the signal is zero-padded by S in front and at the end up to a multiple of 1024.
Every computation below works on a *segment*: `CONTEXT` samples of history followed by a
multiple of 1024 new samples, so a whole chunk and a streamed file share one code path.

Precision: the MFCC runs in float32 throughout. Spectral contrast needs a float64 FFT: its
valleys sit ~1e-7 below the frame's peak (the chord golden file), where a float32 FFT's
rounding noise would decide them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .. import audio
from ..errors import AudioError
from . import FeatureBatch

NAME = "native"

PAD_MULTIPLE = 1024  # sonic-annotator's read block: input is zero-padded to a multiple of it
MFCC_BLOCK, MFCC_STEP = 2048, 1024
SC_BLOCK, SC_STEP = 1024, 512
CONTEXT = MFCC_BLOCK - MFCC_STEP  # history a segment's first MFCC frame reaches back into

N_FILTERS, N_CEPS = 40, 20
SC_BANDS, SC_ALPHA = 7, 0.02

# On the CPU, frames go through the FFT in pieces of about this many samples, so the frames,
# their spectra and every temporary stay in cache; a GPU takes the whole batch at once.
_CPU_PIECE = 128 * 1024
# Samples decoded per step when a whole file is streamed (a multiple of PAD_MULTIPLE).
_STREAM_BLOCK = 1024 * PAD_MULTIPLE
# Lanes of the top-k selection (see `_extreme_sums`); a power of two, at least 2.
_LANES = 32


def mel_edges() -> np.ndarray:
    """The 42 filter edge frequencies in Hz: 13 linear from 66.67 Hz, then 29 log-spaced."""
    f = np.empty(N_FILTERS + 2)
    f[:13] = 66.6666666 + np.arange(13) * 66.66666666
    f[13:] = f[12] * 1.0711703 ** np.arange(1, N_FILTERS + 2 - 12)
    return f


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int) -> np.ndarray:
    """[bins, 40] float32 weights on magnitudes; rows end at the last bin any filter uses."""
    f = mel_edges()
    n_bins = MFCC_BLOCK // 2  # the Nyquist bin is dropped
    freq = np.arange(n_bins) * sample_rate / MFCC_BLOCK  # the plugin rounds the rate: ours is int
    w = np.zeros((n_bins, N_FILTERS))
    for i in range(N_FILTERS):
        lo, mid, hi = f[i], f[i + 1], f[i + 2]
        height = 2.0 / (hi - lo)
        rise = (freq > lo) & (freq <= mid)
        fall = (freq > mid) & (freq < hi)
        w[rise, i] = height * (freq[rise] - lo) / (mid - lo)
        w[fall, i] = height * (hi - freq[fall]) / (hi - mid)
    used = np.flatnonzero(w.any(axis=1))
    return w[: used[-1] + 1 if used.size else 1].astype(np.float32)


@lru_cache(maxsize=1)
def dct_matrix() -> np.ndarray:
    """[40, 20] orthonormal DCT-II (scipy's norm='ortho'), C0..C19."""
    i = np.arange(N_FILTERS) + 0.5
    d = np.sqrt(2.0 / N_FILTERS) * np.cos(np.pi * np.outer(i, np.arange(N_CEPS)) / N_FILTERS)
    d[:, 0] /= np.sqrt(2.0)
    return d.astype(np.float32)


@lru_cache(maxsize=1)
def contrast_bands() -> tuple[tuple[int, int, int], ...]:
    """(first bin, end bin, k) per band: octaves below sr/2, bin i placed at (i+1)*sr/N.

    The rule compares (i+1)/N with 1/2^(bands-b), so the split does not depend on the sample
    rate: bins 0-7, 8-15, 16-31, ..., 256-511; k (how many extremes are averaged) is
    round(count*alpha) for bands of at least 1/alpha bins, else 1.
    """
    n_bins = SC_BLOCK // 2
    band_of = []
    band = 0
    for i in range(n_bins):
        while (i + 1) * 2 ** (SC_BANDS - band) > SC_BLOCK and band < SC_BANDS - 1:
            band += 1
        band_of.append(band)
    out = []
    for b in range(SC_BANDS):
        first, end = band_of.index(b), n_bins - band_of[::-1].index(b)
        count = end - first
        k = round(count * SC_ALPHA) if count >= 1 / SC_ALPHA else 1
        out.append((first, end, max(k, 1)))
    return tuple(out)


class _Constants:
    """Windows, filterbank and DCT for one (sample rate, device)."""

    def __init__(self, sample_rate: int, device: torch.device) -> None:
        self.mfcc_window = torch.hann_window(MFCC_BLOCK, device=device)
        self.sc_window = torch.hann_window(SC_BLOCK, dtype=torch.float64, device=device)
        self.filterbank = torch.from_numpy(mel_filterbank(sample_rate)).to(device)
        self.dct = torch.from_numpy(dct_matrix()).to(device)


@lru_cache(maxsize=8)
def _constants(sample_rate: int, device: str) -> _Constants:
    return _Constants(sample_rate, torch.device(device))


def _pieces(frames: int, block: int, device: torch.device) -> Iterator[slice]:
    """Frame ranges covering `frames`: cache-sized on the CPU, all at once on a GPU."""
    if device.type != "cpu":
        yield from [slice(0, frames)] if frames else []
        return
    rows = max(1, _CPU_PIECE // block)
    for i in range(0, frames, rows):
        yield slice(i, min(i + rows, frames))


def _frames(x: torch.Tensor, rows: slice, block: int, step: int) -> torch.Tensor:
    """Frames rows.start..rows.stop-1 of x [..., L], frame k = x[k*step : k*step+block] (a view)."""
    return x[..., rows.start * step : (rows.stop - 1) * step + block].unfold(-1, block, step)


def _magnitudes(spectrum: torch.Tensor, out: torch.Tensor) -> None:
    """out = |spectrum[..., :bins]|, computed in out's dtype (the fastest form found here)."""
    squares = torch.view_as_real(spectrum[..., : out.shape[-1]]).square()
    torch.add(squares[..., 0], squares[..., 1], out=out)
    out.sqrt_()


def _mfcc(seg: torch.Tensor, c: _Constants, n: int) -> torch.Tensor:
    """[B, n, 20] qm-mfcc coefficients of segments [B, CONTEXT + n*MFCC_STEP]."""
    mags = seg.new_empty(seg.shape[0], n, c.filterbank.shape[0])
    for rows in _pieces(n, MFCC_BLOCK, seg.device):
        frames = _frames(seg, rows, MFCC_BLOCK, MFCC_STEP)
        _magnitudes(torch.fft.rfft(frames * c.mfcc_window), mags[:, rows])
    energy = mags @ c.filterbank
    log = torch.where(energy > 0, energy.log10(), 0.0)
    return log @ c.dct


def _contrast_magnitudes(seg: torch.Tensor, c: _Constants, n: int) -> torch.Tensor:
    """[B, n, 512] float32 |X| of the spectral-contrast frames (FFT in float64)."""
    sc = seg[..., CONTEXT - SC_STEP :]  # SC frame k starts SC_STEP before its centre
    mags = seg.new_empty(seg.shape[0], n, SC_BLOCK // 2)
    for rows in _pieces(n, SC_BLOCK, seg.device):
        frames = _frames(sc, rows, SC_BLOCK, SC_STEP).to(torch.float64)
        _magnitudes(torch.fft.rfft(frames * c.sc_window), mags[:, rows])
    return mags


def _exchange(
    regs: Iterable[torch.Tensor], y: torch.Tensor, spare: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pass y down registers sorted descending: each keeps the larger, y goes on with the smaller.

    In place, with `spare` as scratch; returns (what fell out at the bottom, a free buffer).
    """
    for r in regs:
        torch.minimum(r, y, out=spare)
        torch.maximum(r, y, out=r)
        y, spare = spare, y
    return y, spare


def _fold(regs: torch.Tensor, k: int, dim: int, lanes: int) -> torch.Tensor:
    """Halve the lanes (along `dim`) of registers [k, ...] down to `lanes`, merging sorted lists."""
    while regs.shape[dim] > lanes:
        half = regs.shape[dim] // 2
        lower, upper = regs.narrow(dim, 0, half), regs.narrow(dim, half, half)
        spare = torch.empty_like(lower[0])
        for j in range(k):  # the j-th largest of the upper half lands at j or below
            _, spare = _exchange(lower[j:], upper[j], spare)
        regs = lower
    return regs


def _extreme_sums(band: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of band [n, w] (w a multiple of 32), the sums of its k largest and k smallest.

    torch.topk costs ~2 us per row on a CPU, more than the FFT; here every op is a wide
    elementwise compare-exchange on preallocated buffers. Rows are stacked with their negation
    (smallest = -largest of -x). Each of 32 lanes (columns j, j+32, ...) keeps its k largest in
    sorted registers; then the lanes fold in halves, merging sorted lists, down to one lane.
    Short lanes are slow (a cost per row per op), so after the first fold the registers are
    transposed to put the rows innermost.
    """
    n = band.shape[0]
    regs = band.new_empty(k, 2 * n, _LANES)
    y, spare = band.new_empty(2 * n, _LANES), band.new_empty(2 * n, _LANES)
    filled = 0
    for s in band.unflatten(1, (-1, _LANES)).unbind(1):
        y[:n].copy_(s)
        torch.neg(s, out=y[n:])
        y, spare = _exchange(regs[:filled], y, spare)
        if filled < k:
            regs[filled].copy_(y)
            filled += 1
    regs[filled:].fill_(-math.inf)  # lanes shorter than k (the fold fills them from others)
    regs = _fold(regs, k, dim=2, lanes=_LANES // 2).transpose(1, 2).contiguous()
    total = _fold(regs, k, dim=1, lanes=1).sum(0)[0]
    return total[:n], -total[n:]


def _contrast(mags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Peaks and valleys [B, n, 7]: means of each band's k largest and k smallest magnitudes."""
    flat = mags.reshape(-1, mags.shape[-1])
    peaks, valleys = [], []
    for first, end, k in contrast_bands():
        band = flat[:, first:end]
        if k == 1:
            peaks.append(band.amax(1))
            valleys.append(band.amin(1))
            continue
        largest, smallest = _extreme_sums(band, k)
        peaks.append(largest / k)
        valleys.append(smallest / k)
    shape = (*mags.shape[:-1], SC_BANDS)
    return torch.stack(peaks, 1).reshape(shape), torch.stack(valleys, 1).reshape(shape)


def segment_features(seg: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mfcc [B, T, 20], peaks and valleys [B, 2T, 7] of float32 segments [B, CONTEXT + T*1024].

    The frames are those centred on the segment's new samples (after the CONTEXT history).
    A CPU takes one segment at a time, so that its working set stays in cache.
    """
    n_new = seg.shape[-1] - CONTEXT
    if n_new % PAD_MULTIPLE:
        raise ValueError(f"segment of {n_new} new samples is not a multiple of {PAD_MULTIPLE}")
    c = _constants(sample_rate, str(seg.device))
    if seg.device.type == "cpu" and len(seg) > 1:
        parts = [segment_features(one[None], sample_rate) for one in seg]
        return tuple(torch.cat(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]
    mfcc = _mfcc(seg, c, n_new // MFCC_STEP)
    peaks, valleys = _contrast(_contrast_magnitudes(seg, c, n_new // SC_STEP))
    return mfcc, peaks, valleys


def _padded(chunks: np.ndarray, device: torch.device) -> torch.Tensor:
    """Chunks [B, n] as segments: CONTEXT zeros, the samples, zeros up to a multiple of 1024."""
    batch, n = chunks.shape
    total = CONTEXT + math.ceil(n / PAD_MULTIPLE) * PAD_MULTIPLE
    seg = torch.zeros(batch, total, device=device)
    seg[:, CONTEXT : CONTEXT + n] = torch.from_numpy(np.ascontiguousarray(chunks, np.float32))
    return seg


class NativeBackend:
    """The default backend: torch on CUDA when available, else on the CPU."""

    name = NAME

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def batch(self, chunks: np.ndarray, sample_rate: int) -> FeatureBatch:
        """Features of equal-length mono chunks [B, n], each treated as a file of its own."""
        if chunks.ndim != 2:
            raise ValueError(f"chunks must be [B, n], got shape {chunks.shape}")
        with torch.inference_mode():
            mfcc, peaks, valleys = segment_features(_padded(chunks, self.device), sample_rate)
        return FeatureBatch(mfcc.cpu().numpy(), peaks.cpu().numpy(), valleys.cpu().numpy())

    def whole_file(self, path: str | Path, sample_rate: int | None) -> dict[str, np.ndarray]:
        """A whole file, streamed: one decode block plus CONTEXT samples in memory at a time."""
        info = audio.probe(path)
        sr = sample_rate or info.sample_rate
        parts: list[tuple[torch.Tensor, ...]] = []
        history = torch.zeros(1, CONTEXT, device=self.device)
        n = 0
        with torch.inference_mode():
            for block in audio.stream(path, sr, _STREAM_BLOCK, info):
                n += len(block)
                seg = torch.cat([history, _padded(block[None], self.device)[:, CONTEXT:]], 1)
                parts.append(tuple(t[0].cpu() for t in segment_features(seg, sr)))
                history = seg[:, -CONTEXT:].clone()  # not a view: the block can go
        if not parts:
            raise AudioError(f"{path}: no audio decoded")
        mfcc, peaks, valleys = (torch.cat(p).numpy() for p in zip(*parts, strict=True))
        return {
            "mfcc": mfcc,
            "mfcc_timestamps": np.arange(len(mfcc)) * MFCC_STEP / sr,
            "sc_peaks": peaks,
            "sc_valleys": valleys,
            "sc_timestamps": np.arange(len(peaks)) * SC_STEP / sr,
            "sample_rate": np.asarray(sr),
            "n_samples": np.asarray(n),
        }
