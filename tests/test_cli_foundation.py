import json
from pathlib import Path

import pytest
from conftest import make_audio, make_dataset, run_genre

from genre_erkennung import __version__


def test_version_and_help() -> None:
    assert run_genre("--version", check=True).stdout.strip() == f"genre-erkennung {__version__}"
    out = run_genre("--help", check=True).stdout
    for command in ("dataset", "chunk", "extract"):
        assert command in out


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "mein datensatz"
    return make_dataset(root, {"klassik": ("sine", 330.0), "lärm": ("brown", 0.0)}, seconds=10.5)


def test_dataset_show_table_and_json(ds: Path) -> None:
    table = run_genre("dataset", "show", ds, check=True)
    assert "klassik" in table.stdout and "lärm" in table.stdout
    doc = json.loads(run_genre("dataset", "show", "--json", "--dataset", ds, check=True).stdout)
    assert doc["genres"] == ["klassik", "lärm"]
    assert len(doc["songs"]) == 6 and doc["problems"] == []


def test_dataset_show_reports_problems_with_exit_1(ds: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_audio(root / "train" / "pop" / "a.wav", 1.0)
    proc = run_genre("dataset", "show", root)
    assert proc.returncode == 1
    assert "genre-one-split" in proc.stdout or "missing-split" in proc.stdout


def test_missing_directory_is_one_line(tmp_path: Path) -> None:
    proc = run_genre("dataset", "show", tmp_path / "nope")
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error:") and "no such folder" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "needle"), [("[audio\n", "not valid TOML"), ("[audio]\nrate = 3\n", "unknown key 'audio.rate'")]
)
def test_bad_config_exits_2_with_one_line(ds: Path, tmp_path: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    proc = run_genre("dataset", "show", ds, "--config", cfg)
    assert proc.returncode == 2
    assert needle in proc.stderr and str(cfg) in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_chunk_writes_numbered_wavs(tmp_path: Path) -> None:
    song = make_audio(tmp_path / "-Schöne Grüße [demo].mp3", 25.0, channels=2)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[audio]\nchunk_seconds = 10\nmin_chunk_seconds = 4\n")
    out = tmp_path / "out dir"
    proc = run_genre("chunk", song, "--out", out, "--config", cfg, check=True)
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"-Schöne Grüße [demo]-00{i}.wav" for i in range(3)]
    assert proc.stdout.count(".wav") == 3


def test_chunk_lists_failures_and_continues(tmp_path: Path) -> None:
    good = make_audio(tmp_path / "good.wav", 12.0)
    empty = tmp_path / "empty.mp3"
    empty.touch()
    short = make_audio(tmp_path / "short.mp3", 2.0)
    proc = run_genre("chunk", empty, good, short, "--out", tmp_path / "out")
    assert proc.returncode == 1
    assert (tmp_path / "out" / "good-000.wav").exists()
    assert "2 of 3 songs failed" in proc.stderr and "too short" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bare_genre_without_a_terminal_prints_help() -> None:
    proc = run_genre()
    assert proc.returncode == 0 and "Usage: genre" in proc.stdout


def test_names_with_brackets_are_printed_literally(tmp_path: Path) -> None:
    song = make_audio(tmp_path / "[live] 'eins'.wav", 11.0)
    proc = run_genre("chunk", "--out", tmp_path / "out", song, check=True)
    assert proc.stdout.strip() == str(tmp_path / "out" / "[live] 'eins'-000.wav")


def test_chunk_out_must_be_a_folder(tmp_path: Path) -> None:
    song = make_audio(tmp_path / "a.wav", 11.0)
    proc = run_genre("chunk", song, "--out", song)
    assert proc.returncode == 1 and "is a file; give a folder" in proc.stderr
    assert "Traceback" not in proc.stderr
