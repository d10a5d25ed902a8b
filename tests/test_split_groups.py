"""`genre dataset split --group-by`: a folder, artist or album never lands on both sides."""

from pathlib import Path

import pytest
import torch
from conftest import make_audio, run_genre

from genre_erkennung.core import dataset, tensors
from genre_erkennung.core.errors import ConfigError


def _sides(dest: Path) -> dict[str, set[str]]:
    """relative path below the genre folder (split/genre stripped) -> the splits holding it."""
    out: dict[str, set[str]] = {}
    for p in dest.rglob("*.*"):
        split, _genre, *rest = p.relative_to(dest).parts
        out.setdefault("/".join(rest), set()).add(split)
    return out


def test_folder_groups_stay_on_one_side(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for genre in ("rock", "jazz"):
        for a in range(6):
            for i in range(3):
                (src / genre / f"artist {a}").mkdir(parents=True, exist_ok=True)
                (src / genre / f"artist {a}" / f"{genre} {i}.mp3").write_bytes(b"x" * (a + i + 1))
    (src / "jazz" / "loose.mp3").write_bytes(b"loose")
    result = dataset.split(src, tmp_path / "ds", test_ratio=0.3, seed=3, group_by="folder")
    for genre in ("rock", "jazz"):
        for a in range(6):
            held = {p.parts[0] for p in (tmp_path / "ds").glob(f"*/{genre}/artist {a}/*")}
            assert len(held) == 1, f"{genre}/artist {a} is in {held}"
    assert result.per_genre["rock"][1] == 6  # two of six folders: 6 of 18 songs, the 30% asked
    assert all(n_train and n_test for n_train, n_test in result.per_genre.values())
    assert set(result.groups) == {f"folder artist {a}" for a in range(6)}
    assert result.untagged == 1 and result.one_sided == []
    dataset.split(src, tmp_path / "ds2", test_ratio=0.3, seed=3, group_by="folder")
    assert _sides(tmp_path / "ds2") == _sides(tmp_path / "ds")


def test_artists_are_kept_apart_across_genres(tmp_path: Path) -> None:
    """An artist with songs in two genres lands on one side in both; untagged songs are alone."""
    src = tmp_path / "src"
    artists = ["Ann", "Bob", "Cleo", "Dan", "Eve"]
    for g, genre in enumerate(("rock", "jazz")):
        for a, artist in enumerate(artists):
            for i in range(2):
                name = src / genre / f"{artist.lower()}-{i}.ogg"
                tag = artist.upper() if (a + i) % 2 else artist  # tags differ only in case
                make_audio(
                    name, 0.3, freq=300 + 40 * a + 7 * i + 400 * g, extra=["-metadata", f"artist={tag}"]
                )
        make_audio(src / genre / "untagged.ogg", 0.3, freq=999 + g)
    proc = run_genre("dataset", "split", src, tmp_path / "ds", "--group-by", "artist", "--seed", "5")
    assert proc.returncode == 0, proc.stderr
    assert "artist groups, each on one side" in proc.stderr
    assert "2 songs have no artist" in proc.stderr
    side = {}
    for p in (tmp_path / "ds").rglob("*.ogg"):
        split, _genre, name = p.relative_to(tmp_path / "ds").parts
        if name != "untagged.ogg":
            side.setdefault(name.split("-")[0], set()).add(split)
    assert len(side) == 5 and all(len(s) == 1 for s in side.values()), side
    assert {next(iter(s)) for s in side.values()} == {"train", "test"}


def test_unknown_group_by_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "src" / "rock").mkdir(parents=True)
    with pytest.raises(ConfigError, match="--group-by must be one of song, folder, artist, album"):
        dataset.split(tmp_path / "src", tmp_path / "ds", group_by="label")


def _tensors(labels: list[int]) -> tensors.Tensors:
    """Song i has label labels[i] and one chunk (only songs and labels matter to the split)."""
    n = len(labels)
    return tensors.Tensors(
        torch.zeros(n, 1, 1), torch.zeros(n, 1, 1), torch.tensor(labels), torch.arange(n), torch.ones(n), []
    )


def test_grouped_validation_never_puts_a_group_on_both_sides() -> None:
    # genre 0: groups a (3 songs), b (2), c (2); genre 1: a (2), d (3); genre 2: e only
    labels = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2]
    groups = ["a", "a", "a", "b", "b", "c", "c", "a", "a", "d", "d", "d", "e", "e"]
    data = _tensors(labels)
    seen = set()
    for seed in range(20):
        fit, val = tensors.validation_split(data, 0.3, seed, groups)
        assert sorted(fit + val) == list(range(14))
        fit_groups, val_groups = {groups[i] for i in fit}, {groups[i] for i in val}
        assert not fit_groups & val_groups, (seed, fit_groups, val_groups)
        assert "e" in fit_groups  # a genre with one group keeps it for fitting
        for genre in (0, 1):
            assert any(labels[i] == genre for i in fit)
        seen.add(frozenset(val_groups))
    assert len(seen) > 2  # the seed chooses which groups validate
    assert tensors.validation_split(data, 0.3, 4, groups) == tensors.validation_split(data, 0.3, 4, groups)


def test_song_groups_of_a_scanned_dataset(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for split, folders in (("train", ("one", "two")), ("test", ("three",))):
        for i, folder in enumerate(folders):
            make_audio(root / split / "sinus" / folder / "a.wav", 0.5, freq=300 + 100 * i + 50 * len(split))
    make_audio(root / "train" / "sinus" / "loose.wav", 0.5, freq=900)
    ds = dataset.scan(root)
    by_path = {
        s.path.name if s.path.parent.name == "sinus" else s.path.parent.name: s.key
        for s in ds.usable("train")
    }
    groups = dataset.song_groups(ds, "folder")
    assert groups[by_path["one"]] == "folder one" and groups[by_path["two"]] == "folder two"
    assert groups[by_path["loose.wav"]].startswith("\0") and len(groups) == 3
    assert len(set(dataset.song_groups(ds, "song").values())) == 3
