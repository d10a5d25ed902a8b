"""The dataset: ROOT/{train,test}/<genre>/<songs>, scanned, checked and fingerprinted.

The folder name is the genre. Every non-hidden file below a genre folder is probed with ffmpeg;
what it cannot read as audio is reported, never fatal. The user's files are only ever read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import audio
from .atomic import atomic_path, atomic_write_json
from .config import Settings
from .errors import AudioError, ConfigError, GenreError
from .workspace import Workspace

SPLITS = ("train", "test")
#: Files people keep beside music that are certainly not songs: reported without probing.
_JUNK = (
    ".txt .nfo .cue .m3u .m3u8 .pls .log .jpg .jpeg .png .gif .bmp .webp .pdf .json .xml .db .ini .md"
    " .csv .tsv .npz .npy .err .html .htm .zip .rar .7z .py .sh .toml .yaml .yml .tmp .part .ytdl .sfv"
)
NOT_AUDIO = frozenset(_JUNK.split(" "))


@dataclass
class Song:
    """One song file; `key` is the hash of its bytes (a renamed file keeps its key)."""

    path: Path
    split: str
    genre: str
    key: str = ""
    duration: float | None = None
    format: str = ""
    channels: int = 0
    sample_rate: int = 0
    error: str | None = None
    too_short: bool = False  # readable, but shorter than the shortest chunk the settings keep

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def readable(self) -> bool:
        """Decodable audio, whatever its length: whether it is too short to train on is for the
        feature store to say (its config holds the shortest chunk kept)."""
        return self.error is None or self.too_short


@dataclass(frozen=True)
class Problem:
    """Something the user should look at; `path` is None for dataset-wide problems."""

    kind: (
        str  # missing-split | genre-one-split | empty-genre | duplicate | two-genres | unreadable | not-audio
    )
    message: str
    path: str | None = None


@dataclass
class GenreSummary:
    split: str
    genre: str
    songs: int
    seconds: float
    failed: int


@dataclass
class Dataset:
    root: Path
    songs: list[Song] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def genres(self) -> list[str]:
        """Genres in sorted order of folder names (the label order of every model)."""
        return sorted({s.genre for s in self.songs})

    def usable(self, split: str | None = None) -> list[Song]:
        return [s for s in self.songs if s.ok and (split is None or s.split == split)]

    def readable(self) -> list[Song]:
        return [s for s in self.songs if s.readable]

    @property
    def fingerprint(self) -> str:
        """A stable hash of which audio carries which label in which split (of the files alone:
        scanning with another shortest-chunk setting gives the same fingerprint)."""
        lines = sorted(f"{s.split}\t{s.genre}\t{s.key}" for s in self.readable())
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]

    def summary(self) -> list[GenreSummary]:
        rows: dict[tuple[str, str], GenreSummary] = {}
        for split in SPLITS:
            for genre in self.genres:
                rows[split, genre] = GenreSummary(split, genre, 0, 0.0, 0)
        for s in self.songs:
            row = rows[s.split, s.genre]
            if s.ok:
                row.songs += 1
                row.seconds += s.duration or 0.0
            else:
                row.failed += 1
        return list(rows.values())

    def to_json(self) -> dict:
        return {
            "root": str(self.root),
            "genres": self.genres,
            "fingerprint": self.fingerprint,
            "summary": [vars(r) for r in self.summary()],
            "songs": [
                {
                    "path": str(s.path),
                    "split": s.split,
                    "genre": s.genre,
                    "key": s.key,
                    "duration": s.duration,
                    "format": s.format,
                    "error": s.error,
                }
                for s in self.songs
            ],
            "problems": [vars(p) for p in self.problems],
        }


def content_key(path: Path) -> str:
    """Hash of the file's bytes: a changed file gets a new key, a renamed one keeps it."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:32]


def _visible_files(folder: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


_CACHED = ("key", "duration", "format", "channels", "sample_rate", "error")


class _SongCache:
    """Probe and hash results by (path, size, mtime): a rescan of an unchanged library reads
    no audio at all. A JSON file in the workspace, written atomically; safe to delete."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.data: dict[str, dict] = {}
        if path is not None:
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                self.data = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self.data = {}

    @staticmethod
    def _stamp(path: Path) -> list[int]:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]

    def fill(self, song: Song) -> bool:
        hit = self.data.get(str(song.path.absolute()))
        try:
            if not hit or hit.get("stamp") != self._stamp(song.path):
                return False
        except OSError:
            return False
        for name in _CACHED:
            setattr(song, name, hit[name])
        return True

    def save(self, songs: list[Song]) -> None:
        if self.path is None:
            return
        for s in songs:
            with contextlib.suppress(OSError):
                entry = {name: getattr(s, name) for name in _CACHED}
                self.data[str(s.path.absolute())] = {"stamp": self._stamp(s.path), **entry}
        with contextlib.suppress(OSError):
            atomic_write_json(self.path, self.data)


def _inspect(song: Song) -> Song:
    try:
        info = audio.probe(song.path)
        song.duration, song.format = info.duration, info.format
        song.channels, song.sample_rate = info.channels, info.sample_rate
        song.key = content_key(song.path)
    except AudioError as exc:
        song.error = str(exc).removeprefix(f"{song.path}: ")
    except OSError as exc:
        song.error = f"cannot read ({exc.strerror})"
    return song


def scan_dataset(root: Path, settings: Settings, workspace: Workspace) -> Dataset:
    """The scan every command and the TUI use: the workspace's probe cache and the shortest chunk
    the settings keep, so that "usable", "too short" and "missing" mean the same everywhere."""
    return scan(root, cache=workspace.song_cache, min_seconds=settings.audio.min_chunk_seconds)


def scan(root: Path, workers: int = 8, cache: Path | None = None, min_seconds: float = 0.0) -> Dataset:
    """Find, probe and hash every song; collect problems instead of failing on them.

    With `cache` (a JSON file), unchanged files are not probed or hashed again. Songs shorter
    than `min_seconds` (the shortest chunk kept) are reported as unusable.
    """
    root = Path(root)
    if not root.is_dir():
        raise GenreError(f"dataset {root}: no such folder (expected ROOT/train/<genre>/ ...)")
    ds = Dataset(root)
    candidates: list[Song] = []
    genres_by_split: dict[str, set[str]] = defaultdict(set)
    for split in SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            ds.problems.append(Problem("missing-split", f"no {split}/ folder in {root}"))
            continue
        for genre_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            if genre_dir.name.startswith("."):
                continue
            genres_by_split[split].add(genre_dir.name)
            for path in _visible_files(genre_dir):
                if path.suffix.lower() in NOT_AUDIO:
                    ds.problems.append(Problem("not-audio", "not audio, skipped", str(path)))
                else:
                    candidates.append(Song(path, split, genre_dir.name))
    if not genres_by_split:
        raise GenreError(
            f"dataset {root}: no genre folders found (expected ROOT/train/<genre>/ and "
            "ROOT/test/<genre>/; `genre dataset split` makes this layout)"
        )
    known = _SongCache(cache)
    fresh = [s for s in candidates if not known.fill(s)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(_inspect, fresh))
    known.save(fresh)
    ds.songs = candidates
    for s in ds.songs:
        if s.ok and s.duration is not None and s.duration < min_seconds:
            s.error = f"too short ({s.duration:.1f} s; the shortest chunk kept is {min_seconds:g} s)"
            s.too_short = True
    for s in ds.songs:
        if not s.ok:
            ds.problems.append(Problem("unreadable", s.error or "", str(s.path)))
    _check(ds, genres_by_split)
    return ds


def _check(ds: Dataset, genres_by_split: dict[str, set[str]]) -> None:
    all_genres = set().union(*genres_by_split.values())
    for genre in sorted(all_genres):
        present = [sp for sp in SPLITS if genre in genres_by_split.get(sp, set())]
        if len(present) == 1 and len(genres_by_split) == 2:
            missing = "test" if present == ["train"] else "train"
            ds.problems.append(
                Problem(
                    "genre-one-split",
                    f"genre {genre!r} is in {present[0]}/ only, not in {missing}/",
                )
            )
        for split in present:
            if not any(s.ok and s.genre == genre and s.split == split for s in ds.songs):
                ds.problems.append(Problem("empty-genre", f"{split}/{genre} holds no readable songs"))
    by_key: dict[str, list[Song]] = defaultdict(list)
    for s in ds.readable():
        by_key[s.key].append(s)
    for same in by_key.values():
        paths = " and ".join(str(s.path.relative_to(ds.root)) for s in same)
        if len({s.split for s in same}) > 1:
            ds.problems.append(
                Problem("duplicate", f"the same audio is in both splits: {paths}", str(same[0].path))
            )
        if any(len({s.genre for s in same if s.split == sp}) > 1 for sp in SPLITS):
            ds.problems.append(
                Problem(
                    "two-genres",
                    f"the same audio is under two genres: {paths} (training refuses it: keep one copy)",
                    str(same[0].path),
                )
            )


#: What keeps songs together in `split`: each song alone, the sub-folder under its genre folder
#: (e.g. SRC/rock/<artist>/...), or the artist/album tag.
GROUP_BY = ("song", "folder", "artist", "album")


@dataclass
class SplitResult:
    copied: int = 0
    skipped: int = 0
    per_genre: dict[str, tuple[int, int]] = field(default_factory=dict)  # genre -> (train, test)
    groups: dict[str, str] = field(default_factory=dict)  # group -> split ("" keys never appear)
    untagged: int = 0  # songs without the tag asked for: each is its own group
    one_sided: list[str] = field(default_factory=list)  # genres whose songs all landed on one side


def split(
    src: Path,
    dest: Path,
    test_ratio: float = 0.3,
    seed: int = 0,
    link: bool = False,
    group_by: str = "song",
) -> SplitResult:
    """Make DEST/{train,test}/<genre>/ from SRC/<genre>/, by song or by group, deterministically.

    With `group_by` folder|artist|album every song of a group (a sub-folder of the genre folder,
    or an artist/album tag) lands on the same side, across all genres, so that a test score
    measures music from sources the model never heard. Files are copied (or hard-linked); SRC is
    never modified. Re-running is safe: files already in place with the same size are skipped.
    """
    src, dest = Path(src).resolve(), Path(dest).resolve()
    if not src.is_dir():
        raise GenreError(f"{src}: no such folder (expected SRC/<genre>/<songs>)")
    if not 0.0 < test_ratio < 1.0:
        raise ConfigError(f"--test-ratio must be between 0 and 1 (exclusive), got {test_ratio}")
    if group_by not in GROUP_BY:
        raise ConfigError(f"--group-by must be one of {', '.join(GROUP_BY)}, got {group_by!r}")
    if dest == src or dest.is_relative_to(src):
        raise GenreError(f"{dest}: the destination must not lie inside the source {src}")
    genres = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not genres:
        raise GenreError(f"{src}: no genre folders (expected SRC/<genre>/<songs>)")
    songs_of = {g: sorted(p for p in _visible_files(g) if p.suffix.lower() not in NOT_AUDIO) for g in genres}
    group_of = _groups([p for songs in songs_of.values() for p in songs], src, group_by)
    alone = sum(1 for k in group_of.values() if k.startswith("\0"))
    result = SplitResult(untagged=alone if group_by != "song" else 0)
    side: dict[str, str] = {}  # group -> split, shared by all genres
    plan: list[tuple[Path, Path, Path]] = []  # (song, target, the same place in the other split)
    for genre_dir in genres:
        songs = songs_of[genre_dir]
        if not songs:
            continue
        order = songs[:]
        random.Random(f"{seed}/{genre_dir.name}").shuffle(order)
        n_test = round(len(order) * test_ratio)
        if len(order) >= 2:
            n_test = min(max(n_test, 1), len(order) - 1)
        size: defaultdict[str, int] = defaultdict(int)
        for song in songs:
            size[group_of[song]] += 1
        have = sum(size[k] for k in size if side.get(k) == "test")
        for key in dict.fromkeys(group_of[song] for song in order):  # groups in shuffled order
            if key not in side:
                side[key] = "test" if have < n_test else "train"
                have += size[key] if side[key] == "test" else 0
        test = {song for song in songs if side[group_of[song]] == "test"}
        for song in songs:
            part, other = ("test", "train") if song in test else ("train", "test")
            rel = song.relative_to(genre_dir)
            plan.append((song, dest / part / genre_dir.name / rel, dest / other / genre_dir.name / rel))
        result.per_genre[genre_dir.name] = (len(songs) - len(test), len(test))
        if len(songs) >= 2 and len(test) in (0, len(songs)):
            result.one_sided.append(genre_dir.name)
    if group_by != "song":
        result.groups = {k: v for k, v in sorted(side.items()) if not k.startswith("\0")}
    clashes = [other for _, _, other in plan if other.exists()]
    if clashes:
        raise GenreError(
            f"{dest} already holds another split of these songs ({len(clashes)} would be in both "
            f"train/ and test/, e.g. {clashes[0].relative_to(dest)}): use an empty DEST, or the same "
            "--seed, --test-ratio and --group-by as before"
        )
    for song, target, _ in plan:
        if target.exists() and target.stat().st_size == song.stat().st_size:
            result.skipped += 1
        else:
            _place(song, target, link)
            result.copied += 1
    return result


def _groups(songs: list[Path], src: Path, group_by: str) -> dict[Path, str]:
    """Each song's group key in SRC/<genre>/..., see `group_keys`."""
    genre_dir = {p: src / p.relative_to(src).parts[0] for p in songs}
    return dict(zip(songs, group_keys(songs, group_by, genre_dir.__getitem__), strict=True))


def group_keys(paths: list[Path], how: str, genre_dir: Callable[[Path], Path]) -> list[str]:
    """One group key per song: "song" (each alone), "folder" (the first folder below its genre
    folder), "artist" or "album" (its tags). A song without one is alone: a key starting with
    NUL, which no folder or tag starts with."""
    if how in ("song", "folder"):
        keys = []
        for p in paths:
            parts = p.relative_to(genre_dir(p)).parts
            keys.append("folder " + parts[0] if how == "folder" and len(parts) > 1 else "\0" + str(p))
        return keys
    with ThreadPoolExecutor(max_workers=8) as pool:
        tags = [t.get(how, "").strip() for t in pool.map(read_tags, paths)]
    return [f"{how} {t.casefold()}" if t else "\0" + str(p) for p, t in zip(paths, tags, strict=True)]


def song_groups(dataset: Dataset, how: str, split: str = "train") -> dict[str, str]:
    """Audio key -> group (see `group_keys`) of each usable song of a split."""
    songs = dataset.usable(split)
    genre_dir = {s.path: dataset.root / s.split / s.genre for s in songs}
    keys = group_keys(list(genre_dir), how, genre_dir.__getitem__)
    return {s.key: k for s, k in zip(songs, keys, strict=True)}


_TAG = re.compile(r"^ {4,}(\w+)\s*: (.*)$", re.M)


def read_tags(path: Path) -> dict[str, str]:
    """The file's tags (artist, album, title ...; keys lower-cased) as ffmpeg reads them: the
    container's first, then its streams' (Ogg keeps Vorbis comments on the stream); {} if none."""
    proc = subprocess.run(
        [audio.find_ffmpeg(), "-nostdin", "-hide_banner", "-i", audio.ffmpeg_input(path)],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    tags: dict[str, str] = {}
    for key, value in _TAG.findall(proc.stderr):
        if key.lower() != "duration":
            tags.setdefault(key.lower(), value.strip())
    return tags


def _place(song: Path, target: Path, link: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if link:
        target.unlink(missing_ok=True)
        try:
            os.link(song, target)
            return
        except OSError as exc:
            raise GenreError(
                f"cannot hard-link {song} to {target} ({exc.strerror}); "
                "use the same file system or drop --link to copy"
            ) from None
    with atomic_path(target) as tmp:
        shutil.copy2(song, tmp)
