"""Feature store -> padded, standardised tensors for training and evaluation.

Spectral contrast is a linear magnitude that spans orders of magnitude and is exactly 0 in
silence, so it is compressed with log10(x + 1e-6) first. Every input is then standardised per
coefficient with statistics of the training songs only; the statistics travel with the model, so
a query feeds the network the same numbers it was trained on.

A song's last chunk is zero-padded to full length; `lengths` keeps each chunk's true length in
samples, `valid_frames` turns it into the frames that hold real audio. The model reads its LSTMs
at the last valid step, and the statistics count valid frames only, so padding changes nothing.
"""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .card import Norm
from .dataset import Dataset, Song
from .errors import GenreError, NotExtracted
from .store import DamagedEntry, Entry, FeatureStore

LOG_FLOOR = 1e-6
#: Samples per MFCC frame at any sample rate (`features.frame_counts`); contrast has two per step.
MFCC_STEP = 1024


def valid_frames(lengths: torch.Tensor, frames: tuple[int, int]) -> torch.Tensor:
    """True chunk lengths in samples [N] -> valid (MFCC, contrast) frames [N, 2].

    L samples give ceil(L / 1024) MFCC frames and twice as many contrast frames; the rest of a
    chunk's frames are padding. Clamped to [1, frames], so whole chunks get every frame.
    """
    blocks = torch.div(lengths + (MFCC_STEP - 1), MFCC_STEP, rounding_mode="floor")
    return torch.stack([blocks.clamp(1, frames[0]), (2 * blocks).clamp(1, frames[1])], dim=1)


@dataclass
class Tensors:
    """The chunks of one split, ready for a model. `songs` indexes into `song_keys`."""

    mfcc: torch.Tensor  # float32 [N, T_mfcc, coeffs], standardised
    contrast: torch.Tensor  # float32 [N, T_sc, bands], log-compressed, standardised
    labels: torch.Tensor  # int64 [N]
    songs: torch.Tensor  # int64 [N]
    lengths: torch.Tensor  # int64 [N] true samples of each chunk
    song_keys: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def frames(self) -> tuple[int, int]:
        return int(self.mfcc.shape[1]), int(self.contrast.shape[1])

    def valid(self, idx: torch.Tensor | slice = slice(None)) -> torch.Tensor:
        """Valid (MFCC, contrast) frames [n, 2] of the chunks `idx`, on the tensors' device."""
        return valid_frames(self.lengths[idx], self.frames)

    def select(self, song_ids: list[int]) -> Tensors:
        """The chunks of the given songs (song ids keep their meaning)."""
        mask = torch.isin(self.songs, torch.as_tensor(song_ids, dtype=torch.int64))
        return Tensors(
            self.mfcc[mask],
            self.contrast[mask],
            self.labels[mask],
            self.songs[mask],
            self.lengths[mask],
            self.song_keys,
        )

    def to(self, device: torch.device | str) -> Tensors:
        return Tensors(
            self.mfcc.to(device),
            self.contrast.to(device),
            self.labels.to(device),
            self.songs.to(device),
            self.lengths.to(device),
            self.song_keys,
        )

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.mfcc, self.contrast, self.labels))


@dataclass
class TrainingData:
    """Both splits of a dataset, standardised with the training split's statistics."""

    train: Tensors
    test: Tensors
    genres: list[str]
    norm: Norm
    frames: tuple[int, int]  # (T_mfcc, T_sc) every chunk is padded or cropped to
    skipped: list[tuple[str, str]]  # (path, reason) of songs whose extraction failed


def compress_contrast(x: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(x, 0.0) + LOG_FLOOR).astype(np.float32)


def fit_norm(entries: list[Entry]) -> Norm:
    """Mean/std over the valid frames of every chunk (padding left out), per coefficient,
    accumulated in float64."""

    def stats(arrays: list[np.ndarray], valid: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        width = arrays[0].shape[-1]
        total, squares, n = np.zeros(width), np.zeros(width), 0
        for a, v in zip(arrays, valid, strict=True):
            rows = a[np.arange(a.shape[1]) < v[:, None]].astype(np.float64)  # [valid frames, width]
            total += rows.sum(0)
            squares += (rows**2).sum(0)
            n += rows.shape[0]
        mean = total / n
        std = np.sqrt(np.maximum(squares / n - mean**2, 0.0))
        return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)

    valid = [
        valid_frames(
            torch.from_numpy(e.lengths.astype(np.int64)), (e.mfcc.shape[1], e.contrast_peaks.shape[1])
        ).numpy()
        for e in entries
    ]
    mfcc_mean, mfcc_std = stats([e.mfcc for e in entries], [v[:, 0] for v in valid])
    peaks = [compress_contrast(e.contrast_peaks) for e in entries]
    contrast_mean, contrast_std = stats(peaks, [v[:, 1] for v in valid])
    return Norm(mfcc_mean, mfcc_std, contrast_mean, contrast_std)


def _fit_frames(x: np.ndarray, frames: int) -> np.ndarray:
    """Crop or zero-pad axis 1 to `frames` (zero is the training mean after standardising)."""
    if x.shape[1] >= frames:
        return x[:, :frames]
    pad = np.zeros((x.shape[0], frames - x.shape[1], x.shape[2]), dtype=x.dtype)
    return np.concatenate([x, pad], axis=1)


def prepare(
    mfcc: np.ndarray, peaks: np.ndarray, norm: Norm, frames: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw store arrays [C, T, k] -> the network's inputs: compress, standardise, pad or crop."""
    m = (np.asarray(mfcc, dtype=np.float32) - norm.mfcc_mean) / norm.mfcc_std
    c = (compress_contrast(np.asarray(peaks)) - norm.contrast_mean) / norm.contrast_std
    m, c = _fit_frames(m, frames[0]), _fit_frames(c, frames[1])
    return torch.from_numpy(np.ascontiguousarray(m)), torch.from_numpy(np.ascontiguousarray(c))


def build(
    songs: list[Song],
    entries: list[Entry],
    genres: list[str],
    norm: Norm,
    frames: tuple[int, int],
) -> Tensors:
    """Stack the chunks of `songs` into one set of tensors, one song id per song."""
    label = {g: i for i, g in enumerate(genres)}
    n = sum(e.chunks for e in entries)
    out = Tensors(
        mfcc=torch.empty(n, frames[0], len(norm.mfcc_mean)),
        contrast=torch.empty(n, frames[1], len(norm.contrast_mean)),
        labels=torch.empty(n, dtype=torch.int64),
        songs=torch.empty(n, dtype=torch.int64),
        lengths=torch.empty(n, dtype=torch.int64),
        song_keys=[s.key for s in songs],
    )
    at = 0
    for i, (song, entry) in enumerate(zip(songs, entries, strict=True)):
        end = at + entry.chunks
        out.mfcc[at:end], out.contrast[at:end] = prepare(entry.mfcc, entry.contrast_peaks, norm, frames)
        out.labels[at:end] = label[song.genre]
        out.songs[at:end] = i
        out.lengths[at:end] = torch.from_numpy(entry.lengths.astype(np.int64))
        at = end
    return out


def _names(songs: list[Song], root: Path) -> str:
    shown = ", ".join(str(s.path.relative_to(root)) for s in songs[:3])
    return shown + (f" and {len(songs) - 3} more" if len(songs) > 3 else "")


def _extract_hint(dataset: Dataset, store: FeatureStore) -> str:
    """The command that fills `store` for `dataset`: same dataset, same workspace."""
    root, workspace = shlex.quote(str(dataset.root)), shlex.quote(str(store.root.parent))
    return f"`genre extract --dataset {root} --workspace {workspace}`"


def _training_songs(dataset: Dataset) -> list[Song]:
    """Readable songs, each recording once; the same recording under two genres is refused (which
    label would be right?), and a copy under the same genre counts once. Whether a song is too
    short is the store's to say: extraction records it as a failure there."""
    by_key: dict[tuple[str, str], list[Song]] = {}
    for song in dataset.readable():
        by_key.setdefault((song.split, song.key), []).append(song)
    for same in by_key.values():
        if len({s.genre for s in same}) > 1:
            raise GenreError(
                f"the same recording is under two genres: {_names(same, dataset.root)}: keep one copy "
                "(see `genre dataset show`)"
            )
    return [same[0] for same in by_key.values()]


def load_dataset(
    dataset: Dataset,
    store: FeatureStore,
    norm: Norm | None = None,
    frames: tuple[int, int] | None = None,
    genres: list[str] | None = None,
) -> TrainingData:
    """Both splits from the store; checks that there is something sensible to train on.

    `norm`, `frames` and `genres` are fitted on the training split unless given (a resumed run
    passes those of the stopped run). Damaged entries are moved aside and named.
    """
    usable = _training_songs(dataset)
    _check(dataset, [s for s in usable if s.split == "train"], [s for s in usable if s.split == "test"])
    missing, skipped, damaged, loaded = [], [], [], []
    for song in usable:
        if store.has(song.key):
            try:
                loaded.append((song, store.load(song.key)))
            except DamagedEntry:
                store.quarantine(song.key)
                damaged.append(song)
        elif reason := store.failure(song.key):
            skipped.append((str(song.path), reason))
        else:
            missing.append(song)
    if damaged:
        raise NotExtracted(
            f"{len(damaged)} stored entries were damaged and are moved aside "
            f"({_names(damaged, dataset.root)}): re-extract them with {_extract_hint(dataset, store)}"
        )
    if missing:
        raise NotExtracted(
            f"{len(missing)} of {len(usable)} songs have no features yet ({_names(missing, dataset.root)}): "
            f"run {_extract_hint(dataset, store)} first (or `genre train --extract`)"
        )
    loaded = [(s, e) for s, e in loaded if e.chunks > 0]
    train = [(s, e) for s, e in loaded if s.split == "train"]
    test = [(s, e) for s, e in loaded if s.split == "test"]
    _check(dataset, [s for s, _ in train], [s for s, _ in test], True, len(skipped))
    train_genres = sorted({s.genre for s, _ in train})
    genres = genres or train_genres
    if train_genres != genres:
        raise GenreError(
            f"the dataset's genres ({', '.join(train_genres)}) differ from the stopped run's "
            f"({', '.join(genres)}): train a new model"
        )
    entries = [e for _, e in train]
    _check_shapes(loaded)
    norm = norm or fit_norm(entries)
    frames = frames or _common_frames(entries)
    return TrainingData(
        train=build([s for s, _ in train], entries, genres, norm, frames),
        test=build([s for s, _ in test], [e for _, e in test], genres, norm, frames),
        genres=genres,
        norm=norm,
        frames=frames,
        skipped=skipped,
    )


def _check(
    dataset: Dataset, train: list[Song], test: list[Song], features: bool = False, failed: int = 0
) -> None:
    """Refuse what cannot make a model: run on the dataset, then on the songs with features."""
    with_features = " with features" if features else ""
    failed_note = f" ({failed} songs failed extraction)" if failed else ""
    train_genres = sorted({s.genre for s in train})
    without = sorted(set(dataset.genres) - set(train_genres))
    if without:
        raise GenreError(
            f"genre {without[0]!r} has no training songs{with_features}: put songs in "
            f"{dataset.root / 'train' / without[0]} or remove that genre{failed_note}"
        )
    if len(train_genres) < 2:
        found = ", ".join(train_genres) or "none"
        raise GenreError(
            f"training needs at least 2 genres, found {len(train_genres)} ({found}) in "
            f"{dataset.root / 'train'}{failed_note}"
        )
    if not test:
        raise GenreError(
            f"no test songs{with_features}: nothing to evaluate on (put songs in "
            f"{dataset.root / 'test'}/<genre>/){failed_note}"
        )


def _check_shapes(loaded: list[tuple[Song, Entry]]) -> None:
    widths = {(e.mfcc.shape[2], e.contrast_peaks.shape[2]) for _, e in loaded}
    if len(widths) > 1:
        raise GenreError(
            f"stored features disagree in width {sorted(widths)}: the store is inconsistent, "
            "re-run `genre extract`"
        )


def _common_frames(entries: list[Entry]) -> tuple[int, int]:
    """The most common chunk length (all chunks of one store normally agree)."""
    mfcc = Counter(e.mfcc.shape[1] for e in entries).most_common(1)[0][0]
    contrast = Counter(e.contrast_peaks.shape[1] for e in entries).most_common(1)[0][0]
    return int(mfcc), int(contrast)


def validation_split(
    data: Tensors, share: float, seed: int, groups: list[str] | None = None
) -> tuple[list[int], list[int]]:
    """Song ids for fitting and for validation: `share` of each genre's songs, never chunks.

    With `groups` (one per song id, e.g. its artist), whole groups go to validation, and a group
    with songs in several genres is on the same side in all of them. A genre keeps at least one
    fitting song (or group); with a single one it has no validation song.
    """
    rng = np.random.default_rng(seed)
    song_label = {int(s): int(y) for s, y in zip(data.songs, data.labels, strict=True)}
    group = (lambda i: groups[i]) if groups is not None else (lambda i: f"\0{i}")
    side: dict[str, str] = {}
    fit, val = [], []
    for genre in sorted(set(song_label.values())):
        ids = sorted(s for s, y in song_label.items() if y == genre)
        keys = list(dict.fromkeys(group(i) for i in ids))
        keys = [keys[i] for i in rng.permutation(len(keys))]
        size = {k: sum(1 for i in ids if group(i) == k) for k in keys}
        want = min(max(round(share * len(ids)), 1), len(ids) - 1) if share > 0 else 0
        have = sum(size[k] for k in keys if side.get(k) == "val")
        for k in keys:
            if k not in side:
                fits = sum(size[j] for j in keys if side.get(j) == "fit")
                room = len(ids) - have - size[k] > 0 or fits > 0  # leave the genre a fitting song
                side[k] = "val" if have < want and room else "fit"
                have += size[k] if side[k] == "val" else 0
        val += [i for i in ids if side[group(i)] == "val"]
        fit += [i for i in ids if side[group(i)] == "fit"]
    return sorted(fit), sorted(val)
