import os
import shutil
from pathlib import Path

import pytest
from conftest import make_audio, make_dataset

from genre_erkennung.core import dataset
from genre_erkennung.core.errors import GenreError

GENRES = {"blues": ("sine", 220.0), "noise rock": ("white", 0.0), "ümbient": ("pink", 0.0)}


def _tree(root: Path) -> dict[str, tuple[int, float]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime)
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def ds_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds"), GENRES, per_split=(2, 1), seconds=3.0)


def test_scan_counts_and_durations(ds_root: Path) -> None:
    ds = dataset.scan(ds_root)
    assert ds.genres == sorted(GENRES)
    assert len(ds.usable("train")) == 6 and len(ds.usable("test")) == 3
    rows = {(r.split, r.genre): r for r in ds.summary()}
    assert rows["train", "blues"].songs == 2
    assert rows["train", "blues"].seconds == pytest.approx(3.0 + 4.0, abs=0.2)
    assert ds.problems == []
    assert all(len(s.key) == 32 for s in ds.songs)


def test_fingerprint_is_stable_and_ignores_renames(ds_root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(ds_root, copy)
    assert dataset.scan(copy).fingerprint == dataset.scan(ds_root).fingerprint
    song = next((copy / "train" / "blues").iterdir())
    song.rename(song.with_name("renamed.mp3"))
    assert dataset.scan(copy).fingerprint == dataset.scan(ds_root).fingerprint
    make_audio(copy / "train" / "blues" / "new.wav", 2.0, freq=999)
    assert dataset.scan(copy).fingerprint != dataset.scan(ds_root).fingerprint


def test_problems_are_reported_not_fatal(ds_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "messy"
    shutil.copytree(ds_root, root)
    before = _tree(root)
    make_audio(root / "train" / "trainonly" / "x.mp3", 2.0)
    (root / "train" / "blues" / "notes.txt").write_text("liner notes")
    (root / "train" / "blues" / "fake.mp3").write_text("not audio")
    (root / "train" / "blues" / "empty.mp3").touch()
    (root / "train" / "blues" / ".hidden.mp3").write_text("ignored")
    (root / "test" / "empty genre").mkdir()
    shutil.copy(next((root / "train" / "ümbient").iterdir()), root / "test" / "ümbient" / "dup.mp3")
    ds = dataset.scan(root)
    kinds = sorted(p.kind for p in ds.problems)
    assert kinds == [
        "duplicate",
        "empty-genre",
        "genre-one-split",
        "genre-one-split",
        "not-audio",
        "unreadable",
        "unreadable",
    ]
    one_split = [p.message for p in ds.problems if p.kind == "genre-one-split"]
    assert any("'trainonly' is in train/ only" in m for m in one_split)
    assert not any(".hidden" in (p.path or "") for p in ds.problems)
    assert len(ds.usable("train")) == 7
    for p in before:
        assert (root / p).stat().st_size == before[p][0]


def test_missing_root() -> None:
    with pytest.raises(GenreError, match="no such folder"):
        dataset.scan(Path("/does/not/exist"))


def test_split_is_deterministic_by_song_and_never_touches_src(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for g, genre in enumerate(("jazz", "rock")):
        for i in range(10):
            make_audio(src / genre / f"-{genre} ü {i}.mp3", 1.0, freq=200 + 500 * g + i * 20)
    (src / "rock" / "live").mkdir()
    make_audio(src / "rock" / "live" / "encore.wav", 1.0)
    before = _tree(src)
    a = dataset.split(src, tmp_path / "a", test_ratio=0.3, seed=1)
    dataset.split(src, tmp_path / "b", test_ratio=0.3, seed=1)
    assert a.per_genre == {"jazz": (7, 3), "rock": (8, 3)}
    files_a = sorted(str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*.*"))
    files_b = sorted(str(p.relative_to(tmp_path / "b")) for p in (tmp_path / "b").rglob("*.*"))
    assert files_a == files_b
    c = dataset.split(src, tmp_path / "c", test_ratio=0.3, seed=2)
    files_c = sorted(str(p.relative_to(tmp_path / "c")) for p in (tmp_path / "c").rglob("*.*"))
    assert files_c != files_a and c.per_genre == a.per_genre
    assert _tree(src) == before
    again = dataset.split(src, tmp_path / "a", test_ratio=0.3, seed=1)
    assert again.copied == 0 and again.skipped == 21
    scanned = dataset.scan(tmp_path / "a")
    assert scanned.problems == [] and len(scanned.usable()) == 21


def test_split_link_makes_hard_links(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(3):
        make_audio(src / "pop" / f"{i}.wav", 1.0, freq=300 + i)
    dataset.split(src, tmp_path / "out", test_ratio=0.3, link=True)
    linked = list((tmp_path / "out").rglob("*.wav"))
    assert len(linked) == 3 and all(os.stat(p).st_nlink == 2 for p in linked)


def test_split_refuses_dest_inside_src(tmp_path: Path) -> None:
    make_audio(tmp_path / "src" / "pop" / "a.wav", 1.0)
    with pytest.raises(GenreError, match="must not lie inside"):
        dataset.split(tmp_path / "src", tmp_path / "src" / "out")


def test_scan_cache_skips_unchanged_files(
    ds_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ds"
    shutil.copytree(ds_root, root)
    cache = tmp_path / "ws" / "cache" / "songs.json"
    first = dataset.scan(root, cache=cache)
    probed: list[Path] = []
    real_probe = dataset.audio.probe

    def counting_probe(path: Path) -> object:
        probed.append(Path(path))
        return real_probe(path)

    monkeypatch.setattr(dataset.audio, "probe", counting_probe)
    again = dataset.scan(root, cache=cache)
    assert probed == [] and again.fingerprint == first.fingerprint
    assert [(s.key, s.duration) for s in again.songs] == [(s.key, s.duration) for s in first.songs]
    changed = next((root / "train" / "blues").iterdir())
    make_audio(changed, 2.5, freq=123)
    third = dataset.scan(root, cache=cache)
    assert probed == [changed] and third.fingerprint != first.fingerprint


def test_split_refuses_a_dest_holding_another_split(tmp_path: Path) -> None:
    for i in range(6):
        make_audio(tmp_path / "src" / "pop" / f"{i}.wav", 1.0, freq=300 + 10 * i)
    dataset.split(tmp_path / "src", tmp_path / "ds", seed=0)
    dataset.split(tmp_path / "src", tmp_path / "ds", seed=0)  # the same split again is fine
    before = _tree(tmp_path / "ds")
    with pytest.raises(GenreError, match="already holds another split"):
        dataset.split(tmp_path / "src", tmp_path / "ds", seed=1)
    assert _tree(tmp_path / "ds") == before


def test_short_songs_are_unusable_when_a_minimum_is_given(tmp_path: Path) -> None:
    make_audio(tmp_path / "ds" / "train" / "a" / "long.wav", 3.0)
    make_audio(tmp_path / "ds" / "train" / "a" / "short.wav", 1.0, freq=500)
    ds = dataset.scan(tmp_path / "ds", min_seconds=2.0)
    assert [s.path.name for s in ds.usable()] == ["long.wav"]
    assert any("too short" in p.message for p in ds.problems)
