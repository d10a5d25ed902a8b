"""The demo dataset generator, with the real ffmpeg: layout, decoding, determinism, resuming."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from genre_erkennung.core import audio, dataset, demo, events, synth
from genre_erkennung.core.errors import Cancelled, ConfigError

TINY = {"songs_per_genre": 2, "seconds": 13.0, "seed": 7}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[demo.DemoDataset, list[events.Event]]:
    seen: list[events.Event] = []
    made = demo.generate(tmp_path_factory.mktemp("demo") / "demo", **TINY, report=seen.append)
    return made, seen


def _files(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below `root` (hidden ones too): its bytes and modification time."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def test_layout_one_song_per_genre_and_split(tiny: tuple[demo.DemoDataset, list[events.Event]]) -> None:
    made, _ = tiny
    assert made.genres == demo.GENRES and made.created == 8
    for split, paths in (("train", made.train), ("test", made.test)):
        for genre in demo.GENRES:
            on_disk = sorted((made.root / split / genre).iterdir())
            assert on_disk == sorted(p for p in paths if p.parent.name == genre)
            assert len(on_disk) == 1


def test_progress_events(tiny: tuple[demo.DemoDataset, list[events.Event]]) -> None:
    made, seen = tiny
    assert isinstance(seen[0], events.JobStarted)
    assert (seen[0].job, seen[0].total) == ("demo", 8)
    done = [e for e in seen if isinstance(e, events.SongDone)]
    assert sorted(e.path for e in done) == sorted(map(str, made.train + made.test))
    assert all(e.seconds >= demo.MIN_SECONDS and e.chunks == 0 and not e.cached for e in done)
    assert seen[-1] == events.JobFinished(job="demo")


def test_songs_decode_as_stereo_with_sane_levels(
    tiny: tuple[demo.DemoDataset, list[events.Event]],
) -> None:
    made, _ = tiny
    for path in made.train + made.test:
        info = audio.probe(path)
        assert (info.channels, info.sample_rate) == (2, 44100), path
        assert info.duration is not None and 12.0 <= info.duration <= 13.0 * 1.2 + 0.1, path
        mono = audio.decode(path, 44100)
        assert 0.2 < np.abs(mono).max() <= 0.9, path
        assert np.sqrt(np.mean(mono**2)) > 0.02, path


def test_formats_and_names_are_like_a_real_collection(
    tiny: tuple[demo.DemoDataset, list[events.Event]],
) -> None:
    made, _ = tiny
    names = [p.name for p in made.train + made.test]
    assert {Path(n).suffix for n in names} >= {".mp3", ".flac", ".ogg"}
    assert sum(not n.isascii() and " " in n for n in names) >= 4


def test_the_dataset_scanner_accepts_it(tiny: tuple[demo.DemoDataset, list[events.Event]]) -> None:
    made, _ = tiny
    scanned = dataset.scan(made.root)
    assert scanned.problems == []
    assert scanned.genres == sorted(demo.GENRES)
    assert len(scanned.usable("train")) == len(scanned.usable("test")) == 4


def test_same_seed_same_bytes_other_seed_other_sound(
    tiny: tuple[demo.DemoDataset, list[events.Event]], tmp_path: Path
) -> None:
    made, _ = tiny
    again = demo.generate(tmp_path / "again", **TINY)
    assert [p.name for p in again.train + again.test] == [p.name for p in made.train + made.test]
    for a, b in zip(made.train + made.test, again.train + again.test, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    one = synth.render("rock", 12.0, 44100, (7, 2, 1))
    assert np.array_equal(one, synth.render("rock", 12.0, 44100, (7, 2, 1)))
    assert not np.array_equal(one, synth.render("rock", 12.0, 44100, (8, 2, 1)))


def test_rerun_skips_existing_songs_and_fills_gaps(
    tiny: tuple[demo.DemoDataset, list[events.Event]], tmp_path: Path
) -> None:
    root = tmp_path / "copy"
    shutil.copytree(tiny[0].root, root)
    before = _files(root)
    seen: list[events.Event] = []
    rerun = demo.generate(root, **TINY, report=seen.append)
    assert rerun.created == 0 and _files(root) == before
    assert all(e.cached for e in seen if isinstance(e, events.SongDone))

    lost = rerun.test[0]
    lost.unlink()
    assert demo.generate(root, **TINY).created == 1
    assert _files(root)[str(lost.relative_to(root))][0] == before[str(lost.relative_to(root))][0]


def test_cancel_leaves_whole_songs_only_and_a_rerun_finishes(tmp_path: Path) -> None:
    cancel = threading.Event()
    seen: list[events.Event] = []

    def stop_after_first(event: events.Event) -> None:
        seen.append(event)
        if isinstance(event, events.SongDone):
            cancel.set()

    root = tmp_path / "demo"
    with pytest.raises(Cancelled):
        demo.generate(root, **TINY, report=stop_after_first, cancel=cancel)
    assert seen[-1] == events.JobFinished(job="demo", cancelled=True)
    written = [p for p in root.rglob("*") if p.is_file() and p.name != demo.MANIFEST]
    assert 1 <= len(written) < 8
    assert not [p for p in written if p.name.startswith(".")]  # no temp file left behind
    for path in written:
        audio.probe(path)
    assert demo.generate(root, **TINY).created == 8 - len(written)


def test_refuses_other_settings_and_foreign_datasets(
    tiny: tuple[demo.DemoDataset, list[events.Event]], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="other settings"):
        demo.generate(tiny[0].root, **{**TINY, "seed": 8})
    foreign = tmp_path / "mine"
    (foreign / "train" / "blues").mkdir(parents=True)
    (foreign / "train" / "blues" / "song.mp3").write_bytes(b"not ours")
    with pytest.raises(ConfigError, match="not a demo"):
        demo.generate(foreign, **TINY)
    assert not (foreign / demo.MANIFEST).exists()


@pytest.mark.parametrize(
    ("setting", "value"),
    [("songs_per_genre", 1), ("seconds", 0.0), ("test_ratio", 1.0), ("sample_rate", 8000)],
)
def test_bad_settings_are_config_errors(tmp_path: Path, setting: str, value: float) -> None:
    with pytest.raises(ConfigError):
        demo.generate(tmp_path / "demo", **{**TINY, setting: value})
    assert not (tmp_path / "demo").exists()
