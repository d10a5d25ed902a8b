"""A generated demo dataset: songs in four clearly different synthetic styles.

A new user with no music at hand must see the whole pipeline work in one command (issue 7), so the
styles differ in what the features measure: percussion, timbre and spectral balance. Everything is
vectorised numpy, one small function per instrument; ffmpeg encodes (mostly MP3, some FLAC, OGG and
WAV, some names with unicode and spaces, as real collections have). Each song is a pure function of
(seed, genre, index): a rerun skips the songs that exist, an interrupted run resumes, and a song
appears under its final name only when it is whole.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import events
from .atomic import atomic_path, atomic_write_json
from .audio import find_ffmpeg
from .errors import Cancelled, ConfigError, GenreError
from .synth import render
from .workspace import DEMO_SECONDS, DEMO_SONGS_PER_GENRE

GENRES = ("electronic", "ambient", "rock", "jazz")
MIN_SECONDS = 12.0
MANIFEST = "demo.json"

#: Per genre, the first title has unicode and spaces, so even the smallest demo exercises them.
_TITLES = {
    "electronic": (
        "Nachtfahrt über die Brücke",
        "Pulse Grid",
        "Kraftwerk-Straße",
        "neon_drift",
        "Σ Sequence [Dub]",
    ),
    "ambient": ("Nebel über dem See", "slow tide", "Glaciär", "Ψ Drift", "Morgenröte"),
    "rock": ("Lärm & Lüge", "Garage Riff", "Übersteuert", "Amp on 11", "Power Chord Highway"),
    "jazz": ("Señor Walker", "café — noir (take 2)", "Blue Sunday", "Zürich, 2 a.m.", "Brushes"),
}

#: Every fifth song (counted across genres, 5 being coprime to 4) is FLAC, OGG or WAV in turn,
#: so the container never goes with the genre.
_OTHER_FORMATS = ("flac", "ogg", "wav")
_CODECS = {
    # LAME quality 7: half the encoding time of its default, and clean at 160k for these sounds.
    "mp3": ["-c:a", "libmp3lame", "-b:a", "160k", "-compression_level", "7", "-f", "mp3"],
    "ogg": ["-c:a", "libvorbis", "-q:a", "5", "-f", "ogg"],
    "flac": ["-c:a", "flac", "-f", "flac"],
    "wav": ["-c:a", "pcm_s16le", "-f", "wav"],
}


@dataclass(frozen=True)
class DemoDataset:
    """What `generate` made: the dataset root, its genres, and every song per split."""

    root: Path
    genres: tuple[str, ...]
    train: tuple[Path, ...]
    test: tuple[Path, ...]
    created: int  # songs written by this call; the others already existed


@dataclass(frozen=True)
class _Song:
    """One planned song: where it goes and how long it is; its sound comes from `seed`."""

    genre: str
    index: int
    split: str
    path: Path
    seconds: float
    seed: tuple[int, ...]


def generate(
    dest: Path,
    songs_per_genre: int = DEMO_SONGS_PER_GENRE,
    seconds: float = DEMO_SECONDS,
    test_ratio: float = 0.25,
    seed: int = 0,
    sample_rate: int = 44100,
    report: events.Reporter = events.ignore,
    cancel: threading.Event | None = None,
) -> DemoDataset:
    """Write `dest/{train,test}/<genre>/` songs (missing ones only) and describe them.

    Song lengths vary by ±20% around `seconds` (never under 12 s). Raises ConfigError for bad
    settings or a folder made with other ones, Cancelled if `cancel` is set midway.
    """
    dest = Path(dest)
    settings = _settings(songs_per_genre, seconds, test_ratio, seed, sample_rate)
    _claim(dest, settings)
    songs = _plan(dest, songs_per_genre, seconds, test_ratio, seed)
    cancel = cancel or threading.Event()
    report(events.JobStarted(job="demo", total=len(songs), seconds=sum(s.seconds for s in songs)))
    created = left = 0
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        futures = [pool.submit(_make, song, sample_rate, cancel) for song in songs]
        try:
            for song, future in zip(songs, futures, strict=True):
                made = future.result()
                if made is None:
                    left += 1
                    continue
                created += made
                report(events.SongDone(str(song.path), 0, song.seconds, cached=not made))
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    if left:
        report(events.JobFinished(job="demo", cancelled=True))
        raise Cancelled(f"demo generation stopped with {left} songs to go; rerun to finish {dest}")
    report(events.JobFinished(job="demo"))
    return DemoDataset(
        root=dest,
        genres=GENRES,
        train=tuple(s.path for s in songs if s.split == "train"),
        test=tuple(s.path for s in songs if s.split == "test"),
        created=created,
    )


def _settings(
    songs_per_genre: int, seconds: float, test_ratio: float, seed: int, sample_rate: int
) -> dict[str, object]:
    if songs_per_genre < 2:
        raise ConfigError("songs per genre must be at least 2 (one for train, one for test)")
    if seconds <= 0:
        raise ConfigError(f"song length must be positive, not {seconds:g} s")
    if not 0 < test_ratio < 1:
        raise ConfigError(f"test ratio must lie between 0 and 1, not {test_ratio:g}")
    if sample_rate < 22050:
        raise ConfigError(f"sample rate must be at least 22050 Hz, not {sample_rate}")
    return {
        "generator": "genre-erkennung demo",
        "songs_per_genre": songs_per_genre,
        "seconds": seconds,
        "test_ratio": test_ratio,
        "seed": seed,
        "sample_rate": sample_rate,
    }


def _claim(dest: Path, settings: dict[str, object]) -> None:
    """Mark `dest` as this demo's folder, refusing a real dataset or a demo made differently.

    Mixing two demos would put songs of one into both splits; writing into a user's dataset would
    pollute it. A matching manifest means resume.
    """
    manifest = dest / MANIFEST
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"{manifest}: unreadable ({err}); delete the folder") from None
        if old != settings:
            diff = ", ".join(f"{k}={old.get(k)!r}" for k in settings if old.get(k) != settings[k])
            raise ConfigError(
                f"{dest} holds a demo made with other settings ({diff}): choose another folder or delete it"
            )
        return
    if any(any((dest / split).iterdir()) for split in ("train", "test") if (dest / split).is_dir()):
        raise ConfigError(f"{dest} already holds a dataset that is not a demo: choose a new folder")
    atomic_write_json(manifest, settings)


def _plan(dest: Path, songs_per_genre: int, seconds: float, test_ratio: float, seed: int) -> list[_Song]:
    """Every song's place and length; the last songs of each genre form the test split."""
    n_test = min(max(round(songs_per_genre * test_ratio), 1), songs_per_genre - 1)
    songs = []
    for g, genre in enumerate(GENRES):
        titles = _TITLES[genre]
        for i in range(1, songs_per_genre + 1):
            song_seed = (seed, g, i)
            rng = np.random.default_rng(song_seed)
            length = max(MIN_SECONDS, round(seconds * rng.uniform(0.8, 1.2), 2))
            k = (i - 1) * len(GENRES) + g
            ext = _OTHER_FORMATS[(k // 5) % 3] if k % 5 == 2 else "mp3"
            split = "test" if i > songs_per_genre - n_test else "train"
            name = f"{titles[(i - 1) % len(titles)]} {i:02d}.{ext}"
            songs.append(_Song(genre, i, split, dest / split / genre / name, length, song_seed))
    return songs


def _workers() -> int:
    """Songs in flight: one per core, plus one to use a core while others wait on the GIL or I/O."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min((cores or 1) + 1, 8)


def _make(song: _Song, sample_rate: int, cancel: threading.Event) -> bool | None:
    """Synthesise and encode one song: True if written, False if it existed, None if cancelled."""
    if song.path.exists():
        return False
    if cancel.is_set():
        return None
    audio = render(song.genre, song.seconds, sample_rate, song.seed)
    _encode(audio, sample_rate, song.path, song.path.stem)
    return True


def _encode(stereo: np.ndarray, sample_rate: int, target: Path, title: str) -> None:
    """Pipe float32 PCM through ffmpeg into a temp file, renamed to `target` once complete."""
    pcm = np.ascontiguousarray(stereo.T, dtype="<f4").tobytes()
    with atomic_path(target) as tmp:
        cmd = [
            find_ffmpeg(),
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "f32le",
            "-ar",
            str(sample_rate),
            "-ac",
            "2",
            "-i",
            "pipe:0",
            "-map_metadata",
            "-1",
            "-metadata",
            f"title={title}",
            "-metadata",
            "album=genre-erkennung demo",
            # bitexact: no encoder version or random stream serial, so a seed gives the same bytes.
            "-fflags",
            "+bitexact",
            "-flags:a",
            "+bitexact",
            *_CODECS[target.suffix[1:]],
            "-y",
            "file:" + os.fspath(tmp),
        ]
        proc = subprocess.run(cmd, input=pcm, capture_output=True, check=False)
        if proc.returncode != 0:
            reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["?"]
            raise GenreError(f"{target}: ffmpeg could not encode it ({reason[0]})")
