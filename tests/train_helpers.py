"""Synthetic feature stores for the model and training tests: real numbers, no audio.

Each genre shifts a few MFCC coefficients and the contrast level, so a network can learn the
genres from a few dozen chunks in a few epochs on the CPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from genre_erkennung.core.config import Settings
from genre_erkennung.core.dataset import Dataset, Song
from genre_erkennung.core.store import Entry, FeatureStore

FRAMES = (40, 80)  # the shortest chunks the merged model accepts, rounded up: fast tests


def settings(**training: object) -> Settings:
    """Built-in settings with a short, single-threaded (so repeatable) training run."""
    s = Settings()
    s.training = dataclasses.replace(s.training, **{"epochs": 6, "threads": 1, **training})
    return s


def features(
    rng: np.random.Generator, genre: int, chunks: int, frames: tuple[int, int] = FRAMES
) -> tuple[np.ndarray, np.ndarray]:
    """Raw store arrays (mfcc [C, T, 20], peaks [C, T, 7]) for one song of `genre`."""
    mfcc = rng.normal(0.0, 1.0, (chunks, frames[0], 20)).astype(np.float32)
    mfcc[:, :, genre % 20] += 1.5
    mfcc[:, :, 0] += 5.0 * genre
    level = 10.0 ** (genre * 0.7 + rng.normal(0.0, 0.3, (chunks, frames[1], 7)))
    peaks = (level * np.arange(1, 8)).astype(np.float32)
    return mfcc, peaks


def make_dataset(
    root: Path,
    genres: tuple[str, ...] = ("blues", "metal", "pop"),
    train: int | tuple[int, ...] = 6,
    test: int = 2,
    chunks: int = 3,
    frames: tuple[int, int] = FRAMES,
    seed: int = 0,
) -> tuple[Dataset, FeatureStore]:
    """A dataset whose songs exist only as store entries (`train` songs per genre, or a tuple)."""
    rng = np.random.default_rng(seed)
    store = FeatureStore(root / "features", "synthetic", {"backend": "synthetic", "frames": 40})
    per_genre = train if isinstance(train, tuple) else (train,) * len(genres)
    songs = []
    for split, counts in (("train", per_genre), ("test", (test,) * len(genres))):
        for g, (genre, n) in enumerate(zip(genres, counts, strict=True)):
            for k in range(n):
                key = hashlib.sha256(f"{seed}/{split}/{genre}/{k}".encode()).hexdigest()[:32]
                mfcc, peaks = features(rng, g, chunks, frames)
                entry = Entry(
                    mfcc=mfcc,
                    contrast_peaks=peaks,
                    contrast_valleys=peaks / 10,
                    starts=np.arange(chunks) * 30.0,
                    lengths=np.full(chunks, 30 * 44100),
                )
                store.save(key, entry)
                path = root / "dataset" / split / genre / f"song {k}.wav"
                songs.append(Song(path, split, genre, key=key, duration=30.0 * chunks))
    return Dataset(root / "dataset", songs), store
