"""resampy's `kaiser_best` resampler, the condition musicnn's checkpoints were trained with.

musicnn-training ran librosa 0.7 with resampy 0.2.1, whose default resampler is a band-limited
sinc interpolation with the `kaiser_best` filter: a Kaiser-windowed sinc (64 zero crossings,
2^9 table entries per crossing, rolloff 0.9475937167399596, beta 14.769656459379492), linearly
interpolated between table entries. resampy >= 0.3 ships another filter under the same name
(50 crossings, 2^13 entries, rolloff 0.9173..., beta 12.98...): that is what the golden
`_kaiser_reflect` files used, so the tests check the algorithm with that filter and the
training filter's table against values of resampy 0.2.1's. Written from the description, not
a copy: resampy needs numba, and the project must not depend on it.

resampy walks the outputs one by one. For an integer rate ratio up/down (16000/44100 =
160/441) the filter phase of output k depends only on k mod up, so here each phase's taps are
computed once and its outputs are one matrix-vector product over a strided view of the input
(no copy): about 0.1 s per 30-s chunk instead of numba's loop. Positions are exact rationals
(resampy accumulates them in float64, which moves a phase by ~1e-12): measured against the
golden `_kaiser_reflect` files' `audio_16k` (resampy 0.4.3) in tests/test_musicnn_parity.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import gcd

import numpy as np


@dataclass(frozen=True)
class Filter:
    """A Kaiser-windowed sinc, tabulated at `2**precision` entries per zero crossing."""

    zeros: int
    precision: int
    rolloff: float
    beta: float

    @property
    def table(self) -> int:
        return 2**self.precision


#: resampy 0.2.1's kaiser_best (musicnn's training); the table matches its file to 2.3e-16.
TRAINING = Filter(64, 9, 0.9475937167399596, 14.769656459379492)
#: resampy 0.4.3's kaiser_best (the golden `_kaiser_reflect` files); only the tests use it.
RESAMPY_043 = Filter(50, 13, 0.9173473712608761, 12.984585247040322)


@lru_cache(maxsize=2)
def half_window(f: Filter) -> np.ndarray:
    """The right half of the windowed sinc, [zeros * table + 1] float64 (resampy's sinc_window)."""
    n = f.zeros * f.table
    sinc = f.rolloff * np.sinc(f.rolloff * np.linspace(0.0, f.zeros, n + 1))
    taper = np.kaiser(2 * n + 1, f.beta)[n:]
    out = taper * sinc
    out.setflags(write=False)
    return out


def _wing(win: np.ndarray, delta: np.ndarray, frac: float, step: int, table: int) -> np.ndarray:
    """One side's taps for a filter offset `frac` (0..scale): table lookups, linearly interpolated."""
    index = frac * table
    offset = int(index)
    eta = index - offset
    count = (len(win) - offset) // step
    idx = offset + np.arange(count) * step
    return win[idx] + eta * delta[idx]


#: Most float32 entries of one block's kernel matrix (its phases share one matrix product).
BLOCK = 1 << 20


@dataclass(frozen=True)
class Plan:
    """How to resample rate_in -> rate_out: phase blocks of one matrix product each.

    Output k = p + m * up (phase p) reads the padded input from `m * down + first[p] + 1` on,
    `width` samples; a block of phases p0.. is then rows `m * down + lo` of the input times a
    matrix whose column for phase p holds that phase's taps at row `first[p] + 1 - lo`."""

    up: int
    down: int
    left: int  # taps before (and including) the input sample at or left of each output
    span: int  # input samples one row of the widest block reads
    blocks: tuple[tuple[int, int, np.ndarray], ...]  # (first phase, lo, matrix [rows, phases])


@lru_cache(maxsize=8)
def plan(rate_in: int, rate_out: int, f: Filter) -> Plan:
    g = gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    ratio = rate_out / rate_in
    scale = min(1.0, ratio)
    step = int(scale * f.table)
    win = half_window(f) * scale if ratio < 1 else half_window(f)
    delta = np.append(np.diff(win), 0.0)
    wings = []
    for p in range(up):
        frac = scale * ((p * down) % up) / up
        wings.append((_wing(win, delta, frac, step, f.table), _wing(win, delta, scale - frac, step, f.table)))
    left = max(len(a) for a, _ in wings)
    width = left + max(len(b) for _, b in wings)
    first = [(p * down) // up + 1 for p in range(up)]
    group = max(1, min(up, BLOCK // (width + down)))
    blocks = []
    for p0 in range(0, up, group):
        phases = range(p0, min(up, p0 + group))
        lo = first[p0]
        matrix = np.zeros((first[phases[-1]] - lo + width, len(phases)), dtype=np.float64)
        for j, p in enumerate(phases):
            a, b = wings[p]
            at = first[p] - lo + left
            matrix[at - len(a) : at, j] = a[::-1]  # x[n - i] for i = len(a)-1 .. 0
            matrix[at : at + len(b), j] = b  # x[n + 1 + k]
        matrix = matrix.astype(np.float32)
        matrix.setflags(write=False)
        blocks.append((p0, lo, matrix))
    span = max(lo + len(m) for _, lo, m in blocks)
    return Plan(up, down, left, span, tuple(blocks))


def resample(signal: np.ndarray, rate_in: int, rate_out: int, f: Filter = TRAINING) -> np.ndarray:
    """float32 mono `rate_in` -> `rate_out`; floor(n * rate_out / rate_in) samples, as resampy."""
    x = np.ascontiguousarray(signal, dtype=np.float32)
    n_out = len(x) * rate_out // rate_in
    if rate_in == rate_out:
        return x.copy()
    pl = plan(rate_in, rate_out, f)
    rows = -(-n_out // pl.up)
    # zeros around the signal stand for resampy's clipping of each wing at the ends
    pad = np.zeros(rows * pl.down + pl.span, dtype=np.float32)
    pad[pl.left : pl.left + len(x)] = x
    out = np.empty((rows, pl.up), dtype=np.float32)
    item = pad.itemsize
    for p0, lo, matrix in pl.blocks:
        view = np.lib.stride_tricks.as_strided(
            pad[lo:], shape=(rows, len(matrix)), strides=(pl.down * item, item), writeable=False
        )
        out[:, p0 : p0 + matrix.shape[1]] = view @ matrix
    return out.ravel()[:n_out]
