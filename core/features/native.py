"""The two Vamp transforms, batched over chunks, exactly as ../shared/features/SPEC.md.

The math is written once over the array operations of xp.py: numpy on the CPU (so that
extraction never imports torch), torch on a GPU.

Framing is sonic-annotator's: frame k of a transform with step S and block 2S is centred on
sample k*S, the signal is zero-padded by S in front and at the end up to a multiple of 1024.
Every computation below works on a *segment*: `CONTEXT` samples of history followed by a
multiple of 1024 new samples, so a whole chunk and a streamed file share one code path.

Precision: both FFTs run in float64, the rest in float32. Spectral contrast needs it: its
valleys sit ~1e-7 below the frame's peak (the chord golden file), where a float32 FFT's
rounding noise would decide them. The MFCC too, since feature version 2: in tonal frames the
upper mel bands hold only window leakage at that noise floor, so every float32 FFT (MKL, cuFFT,
numpy's) gave its own log10 of its own noise there (up to 1% of the coefficients' range); in
float64 numpy and torch, CPU and GPU agree to float32 rounding (and numpy's float64 FFT is the
faster of its two).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import audio
from ..errors import AudioError
from . import FeatureBatch
from .xp import Array, Ops, ops_for

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


def hann(block: int) -> np.ndarray:
    """The periodic Hann window (torch.hann_window's), in float64."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(block) / block)


class _Constants:
    """Windows, filterbank and DCT for one (sample rate, array library and device)."""

    def __init__(self, sample_rate: int, xp: Ops) -> None:
        self.mfcc_window = xp.asarray(hann(MFCC_BLOCK), xp.float64)
        self.sc_window = xp.asarray(hann(SC_BLOCK), xp.float64)
        self.filterbank = xp.asarray(mel_filterbank(sample_rate))
        self.dct = xp.asarray(dct_matrix())


@lru_cache(maxsize=8)
def _constants(sample_rate: int, library: str, device: str) -> _Constants:
    return _Constants(sample_rate, ops_for(device, library))


def _pieces(frames: int, block: int, xp: Ops) -> Iterator[tuple[int, int]]:
    """(first, count) frame ranges covering `frames`: cache-sized on the CPU, all at once on a GPU."""
    if xp.device != "cpu":
        yield from [(0, frames)] if frames else []
        return
    rows = max(1, _CPU_PIECE // block)
    for i in range(0, frames, rows):
        yield i, min(rows, frames - i)


def _mfcc(xp: Ops, seg: Array, c: _Constants, n: int) -> Array:
    """[B, n, 20] qm-mfcc coefficients of segments [B, CONTEXT + n*MFCC_STEP] (the float64
    window promotes the frames: see the module's note on precision)."""
    mags = xp.empty((seg.shape[0], n, c.filterbank.shape[0]))
    for first, count in _pieces(n, MFCC_BLOCK, xp):
        frames = xp.frames(seg, first, count, MFCC_BLOCK, MFCC_STEP)
        xp.magnitude(xp.rfft(frames * c.mfcc_window), mags[:, first : first + count])
    energy = mags @ c.filterbank
    log = xp.where(energy > 0, xp.log10(energy), 0.0)
    return log @ c.dct


def _contrast_magnitudes(xp: Ops, seg: Array, c: _Constants, n: int) -> Array:
    """[B, 512, n] float32 |X| of the spectral-contrast frames, bins first (what the top-k
    selection wants); the FFT runs in float64, as the float64 window promotes the frames."""
    sc = seg[..., CONTEXT - SC_STEP :]  # SC frame k starts SC_STEP before its centre
    mags = xp.empty((seg.shape[0], SC_BLOCK // 2, n))
    for first, count in _pieces(n, SC_BLOCK, xp):
        frames = xp.frames(sc, first, count, SC_BLOCK, SC_STEP)
        xp.magnitude(xp.rfft(frames * c.sc_window), mags[..., first : first + count].swapaxes(1, 2))
    return mags


def _exchange(xp: Ops, regs: Array, y: Array, spare: Array) -> tuple[Array, Array]:
    """Pass y down registers regs[0], regs[1], ... (sorted descending): each keeps the larger,
    y goes on with the smaller. In place, with `spare` as scratch; returns (what fell out at the
    bottom, a free buffer)."""
    for j in range(len(regs)):
        r = regs[j]
        xp.minimum(r, y, out=spare)
        xp.maximum(r, y, out=r)
        y, spare = spare, y
    return y, spare


def _fold(xp: Ops, regs: Array, k: int) -> Array:
    """Halve the lanes (dim -2) of registers [k, ..., lanes, rows] down to one, merging sorted
    lists; the halves are whole rows, so every op stays contiguous."""
    while regs.shape[-2] > 1:
        half = regs.shape[-2] // 2
        lower, upper = regs[..., :half, :], regs[..., half:, :]
        spare = xp.empty_like(lower[0])
        for j in range(k):  # the j-th largest of the upper half lands at j or below
            _, spare = _exchange(xp, lower[j:], upper[j], spare)
        regs = lower
    return regs


def _extreme_sums(xp: Ops, band: Array, k: int) -> tuple[Array, Array]:
    """Per column of band [..., w, n] (w a multiple of 32), the sums of its k largest and k
    smallest values: [..., n] each.

    A sort or top-k per frame costs more than the FFT (~2 us a frame in torch); here every op
    is a wide elementwise compare-exchange on preallocated buffers. Frames are stacked with
    their negation (smallest = -largest of -x). Each of 32 lanes (bins j, j+32, ...) keeps its k
    largest in sorted registers; then the lanes fold in halves, merging sorted lists, down to
    one lane. With bins first, every op runs over whole rows of frames.
    """
    *lead, w, n = band.shape
    regs = xp.empty((k, *lead, _LANES, 2 * n), band.dtype)
    y, spare = xp.empty((*lead, _LANES, 2 * n), band.dtype), xp.empty((*lead, _LANES, 2 * n), band.dtype)
    filled = 0
    for i in range(0, w, _LANES):
        strip = band[..., i : i + _LANES, :]
        xp.copy_(y[..., :n], strip)
        xp.negative(strip, out=y[..., n:])
        y, spare = _exchange(xp, regs[:filled], y, spare)
        if filled < k:
            xp.copy_(regs[filled], y)
            filled += 1
    xp.fill_(regs[filled:], -math.inf)  # lanes shorter than k (the fold fills them from others)
    total = _fold(xp, regs, k).sum(0)[..., 0, :]
    return total[..., :n], -total[..., n:]


def _contrast(xp: Ops, mags: Array) -> tuple[Array, Array]:
    """Peaks and valleys [B, n, 7] of magnitudes [B, bins, n]: means of each band's k largest
    and k smallest magnitudes."""
    peaks, valleys = [], []
    for first, end, k in contrast_bands():
        band = mags[..., first:end, :]
        if k == 1:
            peaks.append(xp.amax(band, -2))
            valleys.append(xp.amin(band, -2))
            continue
        largest, smallest = _extreme_sums(xp, band, k)
        peaks.append(largest / k)
        valleys.append(smallest / k)
    return xp.stack(peaks, -1), xp.stack(valleys, -1)


def segment_features(xp: Ops, seg: Array, sample_rate: int) -> tuple[Array, Array, Array]:
    """mfcc [B, T, 20], peaks and valleys [B, 2T, 7] of float32 segments [B, CONTEXT + T*1024].

    The frames are those centred on the segment's new samples (after the CONTEXT history).
    A CPU takes one segment at a time, so that its working set stays in cache.
    """
    n_new = seg.shape[-1] - CONTEXT
    if n_new % PAD_MULTIPLE:
        raise ValueError(f"segment of {n_new} new samples is not a multiple of {PAD_MULTIPLE}")
    if xp.device == "cpu" and len(seg) > 1:
        parts = [segment_features(xp, seg[i : i + 1], sample_rate) for i in range(len(seg))]
        return tuple(xp.concat(p) for p in zip(*parts, strict=True))
    c = _constants(sample_rate, xp.name, xp.device)
    mfcc = _mfcc(xp, seg, c, n_new // MFCC_STEP)
    peaks, valleys = _contrast(xp, _contrast_magnitudes(xp, seg, c, n_new // SC_STEP))
    return mfcc, peaks, valleys


def _padded(xp: Ops, chunks: np.ndarray) -> Array:
    """Chunks [B, n] as segments: CONTEXT zeros, the samples, zeros up to a multiple of 1024."""
    batch, n = chunks.shape
    total = CONTEXT + math.ceil(n / PAD_MULTIPLE) * PAD_MULTIPLE
    seg = xp.zeros((batch, total))
    seg[:, CONTEXT : CONTEXT + n] = xp.asarray(chunks)
    return seg


class NativeBackend:
    """The default backend: numpy on the CPU, torch on a GPU.

    `device` is "cpu" or "cuda" (a torch.device is read by its name); `library` (numpy | torch)
    overrides the choice, e.g. torch on the CPU to compare the two.
    """

    name = NAME

    def __init__(self, device: object = "cpu", library: str | None = None) -> None:
        self.xp = ops_for(getattr(device, "type", None) or str(device), library)

    def batch(self, chunks: np.ndarray, sample_rate: int) -> FeatureBatch:
        """Features of equal-length mono chunks [B, n], each treated as a file of its own."""
        if chunks.ndim != 2:
            raise ValueError(f"chunks must be [B, n], got shape {chunks.shape}")
        xp = self.xp
        with xp.context():
            mfcc, peaks, valleys = segment_features(xp, _padded(xp, chunks), sample_rate)
            return FeatureBatch(xp.to_numpy(mfcc), xp.to_numpy(peaks), xp.to_numpy(valleys))

    def whole_file(self, path: str | Path, sample_rate: int | None) -> dict[str, np.ndarray]:
        """A whole file, streamed: one decode block plus CONTEXT samples in memory at a time."""
        info = audio.probe(path)
        sr = sample_rate or info.sample_rate
        xp = self.xp
        parts: list[tuple[np.ndarray, ...]] = []
        history = xp.zeros((1, CONTEXT))
        n = 0
        with xp.context():
            for block in audio.stream(path, sr, _STREAM_BLOCK, info):
                n += len(block)
                seg = xp.concat([history, _padded(xp, block[None])[:, CONTEXT:]], 1)
                parts.append(tuple(xp.to_numpy(t[0]) for t in segment_features(xp, seg, sr)))
                history = xp.copy(seg[:, -CONTEXT:])  # not a view: the block can go
        if not parts:
            raise AudioError(f"{path}: no audio decoded")
        mfcc, peaks, valleys = (np.concatenate(p) for p in zip(*parts, strict=True))
        return {
            "mfcc": mfcc,
            "mfcc_timestamps": np.arange(len(mfcc)) * MFCC_STEP / sr,
            "sc_peaks": peaks,
            "sc_valleys": valleys,
            "sc_timestamps": np.arange(len(peaks)) * SC_STEP / sr,
            "sample_rate": np.asarray(sr),
            "n_samples": np.asarray(n),
        }
