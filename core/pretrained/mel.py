"""musicnn's input: 16 kHz mono -> 96-band log-mel -> 3-s patches, as its `batch_data` computes it.

The steps and their numerics follow ../shared/pretrained/musicnn-golden/README.md: librosa's
periodic Hann STFT (512, hop 256, centred; rfft in float64, kept as complex64), power in float32,
the Slaney mel filterbank (float32, float32 matmul), then float16 rounding and log10(10000x + 1)
in float32. numpy does this part on purpose: it is the library the reference used, so the mel
matches to float32 rounding; it costs a few ms per 30-s chunk beside the network's seconds.

Resampling to 16 kHz (`features.musicnn_resampler`) is libsoxr's HQ preset by default
(python-soxr): the resampler librosa >= 0.10 uses, so the port reproduces the primary golden
files, and a C library that needs no torch or scipy. "kaiser-best" is the checkpoints' training
condition instead (librosa 0.7: resampy 0.2.1's kaiser_best, see kaiser.py, and reflect STFT
padding).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SR = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH = 187  # frames per patch: librosa.time_to_frames(3 s) + 1 (2.992 s)
#: resampler -> the STFT padding that goes with it (librosa >= 0.10, and librosa 0.7 in training)
PAD_MODES = {"soxr-hq": "constant", "kaiser-best": "reflect"}


def resample(signal: np.ndarray, rate: int, resampler: str = "soxr-hq") -> np.ndarray:
    """float32 mono at `rate` -> 16 kHz, length ceil(n * 16000 / rate) as librosa's `fix`."""
    signal = np.ascontiguousarray(signal, dtype=np.float32)
    if rate == SR:
        return signal
    if resampler == "kaiser-best":
        from . import kaiser

        out = kaiser.resample(signal, rate, SR)
    elif resampler == "soxr-hq":
        import soxr

        out = soxr.resample(signal, rate, SR, quality="soxr_hq").astype(np.float32, copy=False)
    else:
        raise ValueError(f"unknown resampler {resampler!r} (known: {', '.join(PAD_MODES)})")
    n = -(-len(signal) * SR // rate)
    if len(out) >= n:
        return out[:n]
    return np.concatenate([out, np.zeros(n - len(out), dtype=np.float32)])


_F_SP = 200.0 / 3  # Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(f: float) -> float:
    """Slaney's mel scale (librosa's constants, so the edges round the same way)."""
    if f >= _MIN_LOG_HZ:
        return _MIN_LOG_MEL + float(np.log(f / _MIN_LOG_HZ)) / _LOGSTEP
    return f / _F_SP


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    hz = _F_SP * m
    log = m >= _MIN_LOG_MEL
    hz[log] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (m[log] - _MIN_LOG_MEL))
    return hz


@lru_cache(maxsize=1)
def filterbank() -> np.ndarray:
    """[96, 257] float32 Slaney-normalised triangles from 0 to 8 kHz (librosa.filters.mel)."""
    bins = np.fft.rfftfreq(N_FFT, 1.0 / SR)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SR / 2), N_MELS + 2))
    ramps = edges[:, None] - bins[None, :]
    widths = np.diff(edges)
    weights = np.zeros((N_MELS, len(bins)), dtype=np.float32)
    for i in range(N_MELS):
        weights[i] = np.maximum(0.0, np.minimum(-ramps[i] / widths[i], ramps[i + 2] / widths[i + 1]))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    n = np.arange(N_FFT)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)  # periodic Hann, float64


def frame_count(n_samples: int) -> int:
    return 1 + n_samples // HOP


def _reflect_pad(y: np.ndarray) -> np.ndarray:
    """Reflect padding as librosa 0.11 does it: the head and the tail frames' slices are padded
    on their own, so when n % 256 == 0 the tail reflects a 256-sample slice twice over."""
    half = N_FFT // 2
    tail = ((len(y) - half) // HOP + 1) * HOP - half  # first sample of the tail frames
    if len(y) <= N_FFT or tail <= 0:
        return np.pad(y, half, mode="reflect")
    head = np.pad(y[: N_FFT + 1], (half, 0), mode="reflect")[:half]
    end = np.pad(y[tail:], (0, half), mode="reflect")[-half:]
    return np.concatenate([head, y, end])


def mel_power(audio16k: np.ndarray, pad_mode: str = "constant") -> np.ndarray:
    """[T, 96] float32 mel power, T = 1 + n // 256; `pad_mode` "constant" (librosa >= 0.10) or
    "reflect" (librosa < 0.10, what musicnn was trained with)."""
    y = np.asarray(audio16k, dtype=np.float32)
    y = _reflect_pad(y) if pad_mode == "reflect" else np.pad(y, N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP]
    spectrum = np.fft.rfft(frames * _window(), axis=-1).astype(np.complex64)
    power = np.abs(spectrum) ** 2
    return power @ filterbank().T


def log_compress(power: np.ndarray) -> np.ndarray:
    """float16 rounding, then log10(10000 x + 1) in float32 (numpy < 2 semantics; no overflow)."""
    rounded = np.asarray(power, dtype=np.float32).astype(np.float16).astype(np.float32)
    return np.log10(np.float32(10000) * rounded + np.float32(1))


def log_mel(audio16k: np.ndarray, pad_mode: str = "constant") -> np.ndarray:
    """[T, 96] float32: musicnn's network input for a whole signal."""
    return log_compress(mel_power(audio16k, pad_mode))


def patches(mel: np.ndarray) -> np.ndarray:
    """[P, 187, 96] non-overlapping patches; the partial tail is dropped, as the original does.

    A signal shorter than one patch is repeated until it fills one (the training's `repeat-pad`
    for short clips), where the original would crash; an empty one gives no patch.
    """
    t = len(mel)
    if t == 0:
        return np.zeros((0, PATCH, N_MELS), dtype=np.float32)
    if t < PATCH:
        mel = np.tile(mel, (-(-PATCH // t), 1))[:PATCH]
        t = PATCH
    p = (t - PATCH) // PATCH + 1
    return np.ascontiguousarray(mel[: p * PATCH].reshape(p, PATCH, N_MELS), dtype=np.float32)
