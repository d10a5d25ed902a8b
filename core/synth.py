"""Songs in four synthetic styles, rendered as numpy arrays: the demo dataset's music.

The styles differ in what the features measure: percussion, timbre and spectral balance.
Everything is vectorised numpy, one small function per instrument. Rendered in float32, one-shots
made once and placed per hit, oscillator phases kept in float64: a 45 s song takes a few tenths of
a second, well below its MP3 encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class _Ctx:
    """A song being rendered: its random source, length in samples, rate, tempo and key."""

    rng: np.random.Generator
    n: int
    sr: int
    bpm: float
    key: int  # semitones above C

    @property
    def beat(self) -> float:
        """Samples per beat."""
        return 60.0 * self.sr / self.bpm

    @property
    def beats(self) -> int:
        """Beats that start inside the song."""
        return int(np.ceil(self.n / self.beat))

    def level(self, db: float, spread: float = 3.0) -> float:
        """A mix level around `db`, randomised by ±`spread` dB per song."""
        return 10 ** ((db + self.rng.uniform(-spread, spread)) / 20)


_TEMPI = {"electronic": (118, 134), "ambient": (56, 80), "rock": (96, 150), "jazz": (120, 200)}


def render(genre: str, seconds: float, sample_rate: int, seed: Sequence[int]) -> np.ndarray:
    """One song as float32 stereo [2, n] with its peak between 0.5 and 0.85; pure in its args."""
    rng = np.random.default_rng([*seed, 1])
    lo, hi = _TEMPI[genre]
    key = int(rng.integers(12))
    c = _Ctx(rng, round(seconds * sample_rate), sample_rate, rng.uniform(lo, hi), key)
    mix = _STYLES[genre](c)
    mix *= _fade(c.n, c.sr, 1.5 if genre == "ambient" else 0.02)
    mix *= rng.uniform(0.5, 0.85) / np.abs(mix).max()
    return mix


def _electronic(c: _Ctx) -> np.ndarray:
    """Four-on-the-floor kick, off-beat hats, a filtered saw bass: thumping lows, ticking highs."""
    beats = np.arange(c.beats, dtype=float)
    kick = _hits(c, _kick(c), beats)
    hats = _hits(c, _hat(c, decay=c.rng.uniform(0.02, 0.05)), beats + 0.5)
    return (
        _pan(kick, c.rng.uniform(-0.05, 0.05), c.level(0))
        + _pan(hats, c.rng.uniform(-0.5, 0.5), c.level(-5))
        + _pan(_saw_bass(c), c.rng.uniform(-0.15, 0.15), c.level(-3))
    )


def _ambient(c: _Ctx) -> np.ndarray:
    """A slowly gliding, breathing chord pad over a drone and some air; no percussion at all."""
    t = np.arange(c.n, dtype=np.float32) / np.float32(c.sr)
    drone = _oscillator(c, np.full(c.n, _hz(36 + c.key))) * _lfo(c, t, 0.02, 0.08)
    width = max(1, round(c.sr / c.rng.uniform(600, 1500)))
    air = _smooth(_smooth(c.rng.standard_normal(c.n, dtype=np.float32), width), width)
    air *= _lfo(c, t, 0.05, 0.2) / air.std()
    return _pad(c, t) + _pan(drone, 0.0, c.level(-10)) + _pan(air, c.rng.uniform(-0.3, 0.3), c.level(-24))


def _rock(c: _Ctx) -> np.ndarray:
    """Two clipped power-chord guitars wide apart, bass, kick, snare on 2 and 4, hats, crashes."""
    bars = np.arange(c.beats // 4 + 1) * 4.0
    kick_beats = np.concatenate([bars, bars + 2, bars + c.rng.choice([2.5, 3.5])])
    eighths = np.arange(c.beats * 2)
    prog = np.array(c.rng.choice([[0, 5, 7, 5], [0, 10, 5, 0], [0, 3, 5, 3], [0, 7, 10, 5]]))
    roots = 40 + c.key + prog[(eighths // 8) % 4]
    muted = c.rng.random(8) < 0.6  # which eighths of a bar are palm-muted chugs
    drive = c.rng.uniform(8, 20)
    left, right = (_guitar(c, roots, muted[eighths % 8], drive) for _ in range(2))
    bass = _notes(c, eighths / 2, roots - 12, lambda k: _saw(c.sr, _hz(k), c.beat / 2 / c.sr, 500, 0.3))
    kick = _hits(c, _kick(c), kick_beats, jitter=0.005)
    snare = _hits(c, _snare(c), np.concatenate([bars + 1, bars + 3]), jitter=0.005)
    hats = _hits(c, _hat(c, 0.04), eighths / 2)
    crash = _hits(c, _crash(c), np.arange(0, c.beats, 16.0))
    width = c.rng.uniform(0.5, 0.8)
    return (
        _pan(left, -width, c.level(-2))
        + _pan(right, width, c.level(-2))
        + _pan(bass, 0.0, c.level(-4))
        + _pan(kick, 0.0, c.level(0))
        + _pan(snare, c.rng.uniform(-0.1, 0.1), c.level(-1))
        + _pan(hats, c.rng.uniform(-0.4, 0.4), c.level(-8))
        + _pan(crash, c.rng.uniform(-0.6, 0.6), c.level(-8))
    )


def _jazz(c: _Ctx) -> np.ndarray:
    """Swung ride, hi-hat on 2 and 4, walking bass and sparse piano chords: open and acoustic."""
    swing = c.rng.uniform(0.6, 0.7)
    chords = _jazz_chords(c)
    beats = np.arange(c.beats, dtype=float)
    backbeats = beats[beats % 2 == 1]
    ride = _hits(c, _ride(c), np.concatenate([beats, backbeats + swing]), jitter=0.008)
    foot = _hits(c, _hat(c, 0.03), backbeats)
    side = c.rng.choice([-1, 1])
    return (
        _pan(ride, side * c.rng.uniform(0.3, 0.6), c.level(-6))
        + _pan(foot, side * c.rng.uniform(0.1, 0.4), c.level(-18))
        + _pan(_walking_bass(c, chords), c.rng.uniform(-0.15, 0.15), c.level(-5))
        + _pan(_comping(c, chords, swing), -side * c.rng.uniform(0.2, 0.5), c.level(-1))
    )


_STYLES: dict[str, Callable[[_Ctx], np.ndarray]] = {
    "electronic": _electronic,
    "ambient": _ambient,
    "rock": _rock,
    "jazz": _jazz,
}


# --- instruments --------------------------------------------------------------------------------


def _kick(c: _Ctx) -> np.ndarray:
    """A sine whose pitch drops fast: the thump of a bass drum."""
    t = _time(c.sr, 0.45)
    hz = c.rng.uniform(45, 60) + c.rng.uniform(80, 140) * np.exp(-t / 0.035)
    return _sin(np.cumsum(hz) / c.sr) * np.exp(-t / c.rng.uniform(0.12, 0.2))


def _snare(c: _Ctx) -> np.ndarray:
    """A short tone plus bright noise: the crack of a snare."""
    t = _time(c.sr, 0.3)
    noise = _highpass(c.rng.standard_normal(len(t)), c.sr, 1500)
    noise *= 0.5 / noise.std() * np.exp(-t / c.rng.uniform(0.06, 0.1))
    return noise + _sin(c.rng.uniform(170, 210) * t) * np.exp(-t / 0.05)


def _hat(c: _Ctx, decay: float) -> np.ndarray:
    """A tick of very bright noise: a closed hi-hat."""
    t = _time(c.sr, 0.15)
    noise = _highpass(c.rng.standard_normal(len(t)), c.sr, 7000)
    return noise / noise.std() * 0.4 * np.exp(-t / decay)


def _ride(c: _Ctx) -> np.ndarray:
    """Inharmonic high partials over bright noise, ringing long: a ride cymbal's ping and wash."""
    t = _time(c.sr, 1.2)
    partials = c.rng.uniform(2000, 6000, size=(8, 1))
    ping = _sin(partials * t + c.rng.random((8, 1))).sum(axis=0)
    wash = _highpass(c.rng.standard_normal(len(t)), c.sr, 5000)
    return (0.12 * ping + 0.25 * wash / wash.std()) * np.exp(-t / c.rng.uniform(0.4, 0.8))


def _crash(c: _Ctx) -> np.ndarray:
    """A long burst of bright noise: the crash that opens each phrase."""
    t = _time(c.sr, 2.0)
    noise = _highpass(c.rng.standard_normal(len(t)), c.sr, 3000)
    return noise / noise.std() * 0.5 * np.exp(-t / 0.7)


def _saw(sr: int, hz: float, seconds: float, cutoff: float, decay: float) -> np.ndarray:
    """A plucked saw note through a low-pass: the synth bass, and the bass under the guitars."""
    t = _time(sr, seconds)
    return _lowpass((2 * ((hz * t) % 1.0) - 1) * _envelope(t, 0.004, decay), sr, cutoff, order=3)


def _saw_bass(c: _Ctx) -> np.ndarray:
    """Eighth-note saw bass jumping octaves over a minor loop of roots, two bars per root."""
    prog = np.array(c.rng.choice([[0, 8, 3, 10], [0, 5, 8, 7], [0, 0, 8, 10]]))
    pattern = c.rng.choice([0, 0, 12, 7, 10], size=8)
    pattern[0] = 0
    eighths = np.arange(c.beats * 2)
    keys = 33 + c.key + prog[(eighths // 16) % 4] + pattern[eighths % 8]
    cutoff, decay, step = c.rng.uniform(300, 900), c.rng.uniform(0.1, 0.25), c.beat / 2 / c.sr
    return _notes(c, eighths / 2, keys, lambda k: _saw(c.sr, _hz(k), step, cutoff, decay))


def _guitar(c: _Ctx, roots: np.ndarray, muted: np.ndarray, drive: float) -> np.ndarray:
    """One guitar's eighth-note power chords, palm-muted where `muted`, slightly detuned."""
    ratios = np.array([1.0, 1.5, 2.0]) * 2 ** (c.rng.normal(0, 5, 3) / 1200)
    phases = c.rng.random(3)
    cutoff, step = c.rng.uniform(3500, 6000), c.beat / 2 / c.sr

    def chord(key: tuple[int, bool]) -> np.ndarray:
        hz = _hz(key[0]) * ratios
        return _power_chord(c.sr, hz, phases, step, 0.07 if key[1] else 0.5, drive, cutoff)

    keys = list(zip(roots.tolist(), muted.tolist(), strict=True))
    return _notes(c, np.arange(len(keys)) / 2, keys, chord, jitter=0.004)


def _power_chord(
    sr: int,
    hz: np.ndarray,
    phases: np.ndarray,
    seconds: float,
    decay: float,
    drive: float,
    cutoff: float,
) -> np.ndarray:
    """Root, fifth and octave saws driven into clipping, then a cabinet-like band-pass."""
    t = _time(sr, seconds)
    saws = (2 * ((hz[:, None] * t + phases[:, None]) % 1.0) - 1).sum(axis=0)
    clipped = np.clip(1.2 * np.tanh(drive * saws * _envelope(t, 0.003, decay)), -1, 1)
    return _highpass(_lowpass(clipped, sr, cutoff), sr, 90)


def _jazz_chords(c: _Ctx) -> np.ndarray:
    """Per bar (one more than the song needs), a seventh chord as semitones above C."""
    qualities = {"m7": [0, 3, 7, 10], "7": [0, 4, 7, 10], "maj7": [0, 4, 7, 11]}
    progression = [
        [(2, "m7"), (7, "7"), (0, "maj7"), (9, "7")],
        [(0, "maj7"), (9, "7"), (2, "m7"), (7, "7")],
        [(2, "m7"), (7, "7"), (0, "maj7"), (0, "maj7")],
    ][c.rng.integers(3)]
    loop = np.array([[root + c.key + q for q in qualities[kind]] for root, kind in progression])
    return loop[np.arange(c.beats // 4 + 2) % 4]


def _walking_bass(c: _Ctx, chords: np.ndarray) -> np.ndarray:
    """A note per beat: the root, two chord tones, then a half step into the next bar's root."""
    beat = np.arange(c.beats)
    bar, pos = beat // 4, beat % 4
    root = 36 + chords[bar, 0] % 12
    tone = root + chords[bar, c.rng.integers(1, 4, len(beat))] - chords[bar, 0]
    approach = 36 + chords[bar + 1, 0] % 12 + c.rng.choice([-1, 1], len(beat))
    keys = np.select([pos == 0, pos == 3], [root, approach], tone)
    return _notes(c, beat, keys, lambda k: _pluck(c.sr, _hz(k), c.beat / c.sr))


def _pluck(sr: int, hz: float, seconds: float) -> np.ndarray:
    """A plucked string: fundamental plus a fast-fading overtone."""
    t = _time(sr, seconds)
    return (_sin(hz * t) + 0.5 * _sin(2 * hz * t) * np.exp(-t / 0.08)) * _envelope(t, 0.004, 0.6)


def _comping(c: _Ctx, chords: np.ndarray, swing: float) -> np.ndarray:
    """Piano chords on one to three swung spots per bar, each left ringing."""
    spots = np.array([0, swing, 1, 1 + swing, 2, 2 + swing, 3, 3 + swing])
    bars = range(c.beats // 4 + 1)
    hits = [
        (bar * 4 + spot, bar % 4)
        for bar in bars
        for spot in np.sort(c.rng.choice(spots, size=c.rng.integers(1, 4), replace=False))
    ]
    beats, keys = zip(*hits, strict=True)
    return _notes(c, np.array(beats), keys, lambda k: _piano_chord(c.sr, chords[k]), jitter=0.006)


def _piano_chord(sr: int, chord: np.ndarray) -> np.ndarray:
    """Third, fifth, seventh and ninth above the root; higher partials die first, like a piano."""
    t = _time(sr, 1.6)
    notes = 52 + chord[0] % 12 + np.array([*(chord[1:] - chord[0]), 14])
    k = np.arange(1, 7)[:, None]
    out = np.zeros(len(t), dtype=np.float32)
    for hz in _hz(notes):
        stretched = k * hz * np.sqrt(1 + 0.0004 * k**2)  # real strings' partials run sharp
        out += (_sin(stretched * t) / k**1.3 * np.exp(-t * k / 0.5)).sum(axis=0)
    return out * _envelope(t, 0.002, 0.9) / 4


def _pad(c: _Ctx, t: np.ndarray) -> np.ndarray:
    """Four chord voices gliding from chord to chord, each swelling, wavering and placed apart."""
    voicings = np.array([[0, 4, 7, 11], [-3, 0, 4, 7], [-7, -3, 0, 4], [-5, 2, 7, 11]])
    chords = voicings[c.rng.permutation(4)] + 60 + c.key - (12 if c.key > 5 else 0)
    seg = c.beat * c.rng.choice([8, 12, 16])  # samples per chord
    n_seg = int(np.ceil(c.n / seg)) + 1
    knots = (np.arange(n_seg)[:, None] + np.array([0.3, 0.7])).ravel() * seg
    samples = np.arange(c.n)
    places = c.rng.permutation([-0.8, -0.3, 0.3, 0.8])
    out = np.zeros((2, c.n), dtype=np.float32)
    for voice in range(4):
        hz = np.interp(samples, knots, np.repeat(_hz(chords[np.arange(n_seg) % 4, voice]), 2))
        vibrato = 1 + 0.003 * _lfo(c, t, 3, 6)  # a slight shimmer instead of a detuned twin
        tone = _soft_tone(c, hz * vibrato, t) * _lfo(c, t, 0.03, 0.12)
        out += _pan(tone, places[voice], 0.3)
    return out


def _soft_tone(c: _Ctx, hz: np.ndarray, t: np.ndarray) -> np.ndarray:
    """A sine with slowly breathing 2nd and 3rd harmonics (Chebyshev shaping: cheap, no alias)."""
    s = _oscillator(c, hz)
    bright = 0.3 * _lfo(c, t, 0.02, 0.1)
    return s + bright * (1 - 2 * s * s) + 0.5 * bright * (3 * s - 4 * s * s * s)


# --- helpers --------------------------------------------------------------------------------------


def _hz(midi: np.ndarray | int) -> Any:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=float) - 69) / 12)


def _time(sr: int, seconds: float) -> np.ndarray:
    return np.arange(round(seconds * sr)) / sr


def _sin(cycles: np.ndarray) -> np.ndarray:
    """sin(2π·cycles) in float32, reduced to one cycle in float64 first so pitch stays exact."""
    return np.sin(np.float32(2 * np.pi) * (cycles - np.floor(cycles)).astype(np.float32))


def _oscillator(c: _Ctx, hz: np.ndarray) -> np.ndarray:
    """A sine following a per-sample frequency, from a random phase."""
    return _sin(np.cumsum(hz) / c.sr + c.rng.random())


def _envelope(t: np.ndarray, attack: float, decay: float) -> np.ndarray:
    """Linear attack, exponential decay, and a 5 ms release at the end so a cut never clicks."""
    release = np.minimum((t[-1] - t) / 0.005, 1)
    return np.minimum(t / attack, 1) * np.exp(-t / decay) * release


def _notes(
    c: _Ctx,
    beats: np.ndarray,
    keys: Sequence[Hashable] | np.ndarray,
    make: Callable[[Any], np.ndarray],
    jitter: float = 0.0,
) -> np.ndarray:
    """A track with `make(key)` struck at each beat position; each key's sound is made once.

    Velocity varies a little; `jitter` (seconds) humanises the timing.
    """
    out = np.zeros(c.n, dtype=np.float32)
    sounds: dict[Hashable, np.ndarray] = {}
    starts = np.round(beats * c.beat + c.rng.normal(0, jitter * c.sr, len(beats)))
    for key, start in zip(keys, starts.astype(np.int64).tolist(), strict=True):
        if key not in sounds:
            sounds[key] = make(key).astype(np.float32)
        _place(out, sounds[key], max(start, 0), c.rng.uniform(0.8, 1.0))
    return out


def _hits(c: _Ctx, sound: np.ndarray, beats: np.ndarray, jitter: float = 0.0) -> np.ndarray:
    """A track with one drum sound struck at each beat position."""
    return _notes(c, beats, [None] * len(beats), lambda _: sound, jitter)


def _place(track: np.ndarray, sound: np.ndarray, start: int, gain: float) -> None:
    """Mix a one-shot into `track` at sample `start`, cut at the track's end."""
    m = min(len(sound), len(track) - start)
    if m > 0:
        track[start : start + m] += np.float32(gain) * sound[:m]


def _pan(mono: np.ndarray, position: float, gain: float) -> np.ndarray:
    """Equal-power pan, -1 left to +1 right: float32 stereo [2, n]."""
    angle = (position + 1) * np.pi / 4
    return np.stack([np.float32(np.cos(angle) * gain) * mono, np.float32(np.sin(angle) * gain) * mono])


def _lfo(c: _Ctx, t: np.ndarray, lo_hz: float, hi_hz: float) -> np.ndarray:
    """A slow swell between 0.3 and 1 at a random rate and phase: what makes a pad evolve."""
    rate, phase = np.float32(c.rng.uniform(lo_hz, hi_hz)), np.float32(c.rng.uniform(0, 2 * np.pi))
    return 0.65 + 0.35 * np.sin(np.float32(2 * np.pi) * rate * t + phase)


def _fade(n: int, sr: int, seconds: float) -> np.ndarray:
    """Linear fade in and out, so no song starts or ends with a click."""
    k = np.arange(n, dtype=np.float32)
    return np.minimum(1, np.minimum(k + 1, n - k) / np.float32(seconds * sr))


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average over `width` samples via a running sum: an O(n) low-pass for long noise."""
    total = np.cumsum(np.concatenate([np.zeros(width), x]))
    return ((total[width:] - total[:-width]) / width).astype(np.float32)


def _lowpass(x: np.ndarray, sr: int, cutoff: float, order: int = 2) -> np.ndarray:
    """A zero-phase Butterworth-shaped low-pass (for one-shots; done in the frequency domain)."""
    return _filter(x, sr, lambda f: 1 / np.sqrt(1 + (f / cutoff) ** (2 * order)))


def _highpass(x: np.ndarray, sr: int, cutoff: float, order: int = 2) -> np.ndarray:
    """A zero-phase Butterworth-shaped high-pass (for one-shots; done in the frequency domain)."""
    return _filter(x, sr, lambda f: 1 / np.sqrt(1 + (cutoff / np.maximum(f, 1e-3)) ** (2 * order)))


def _filter(x: np.ndarray, sr: int, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    size = 2 * len(x)  # zero padding keeps the tail from wrapping around onto the attack
    spectrum = np.fft.rfft(x, size) * gain(np.fft.rfftfreq(size, 1 / sr))
    return np.fft.irfft(spectrum, size)[: len(x)]
