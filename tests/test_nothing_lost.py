"""Nothing lost, nothing mislabelled: two real processes on one workspace, damaged state, hints.

Each test reproduces a defect a user met (issues 10 and 17) with the installed `genre` command,
real ffmpeg-made songs and real training.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_audio, make_dataset, run_genre

GENRES = {"sinus": ("sine", 330.0), "weiss": ("white", 0.0)}
FAST = (
    "[audio]\nchunk_seconds = 3.0\nmin_chunk_seconds = 1.0\n"
    "[training]\nepochs = 3\nbatch_size = 8\nthreads = 1\n"
)


def _genre(*args: str | Path) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("genre")
    return subprocess.Popen(
        [str(exe), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("lost")
    ds = make_dataset(base / "ds", GENRES, per_split=(3, 1), seconds=5.0)
    cfg = base / "fast.toml"
    cfg.write_text(FAST)
    return ds, cfg


def test_a_song_shorter_than_a_chunk_does_not_block_training(tmp_path: Path) -> None:
    """Issue 10's defect: extract flagged the 2-s intro, train scanned differently and refused."""
    ds = make_dataset(tmp_path / "ds", GENRES, per_split=(2, 1), seconds=11.0)
    make_audio(ds / "train" / "sinus" / "intro.wav", 2.0, freq=500)
    ws = tmp_path / "ws"
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "[audio]\nchunk_seconds = 5.0\nmin_chunk_seconds = 4.0\n[training]\nepochs = 2\nthreads = 1\n"
    )
    extract = run_genre("extract", "--dataset", ds, "--workspace", ws, "--config", cfg)
    assert "intro.wav" in extract.stderr and "too short" in extract.stderr
    train = run_genre("train", "--dataset", ds, "--workspace", ws, "--config", cfg, "--name", "m")
    assert train.returncode == 0, train.stderr
    card = json.loads((ws / "models" / "m" / "model.json").read_text())
    assert [s["path"] for s in card["dataset"]["skipped"]] == [str(ds / "train" / "sinus" / "intro.wav")]


def test_the_missing_message_counts_the_missing_and_repeats_the_workspace(
    small: tuple[Path, Path], tmp_path: Path
) -> None:
    ds, cfg = small
    ws = tmp_path / "my ws"
    proc = run_genre("train", "--dataset", ds, "--workspace", ws, "--config", cfg)
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1
    assert line.startswith("error: 8 of 8 songs have no features yet (train/sinus/sinus song 0.mp3, ")
    assert f"--workspace '{ws}'" in line and f"--config {cfg}" in line
    # Following the hint as printed fills the store the train command reads.
    hint = shlex.split(line.split("`")[1])
    assert hint[0] == "genre"
    assert run_genre(*hint[1:]).returncode == 0
    assert run_genre("train", "--dataset", ds, "--workspace", ws, "--config", cfg).returncode == 0


def test_two_trainings_of_one_name_never_both_say_saved(small: tuple[Path, Path], tmp_path: Path) -> None:
    ds, cfg = small
    ws = tmp_path / "ws"
    run_genre("extract", "--dataset", ds, "--workspace", ws, "--config", cfg, check=True)
    args = ("train", "--dataset", ds, "--workspace", ws, "--config", cfg, "--name", "x", "--epochs", "30")
    procs = [_genre(*args), _genre(*args)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    saved = [err for (_, err), p in zip(outs, procs, strict=True) if p.returncode == 0]
    refused = [err for (_, err), p in zip(outs, procs, strict=True) if p.returncode != 0]
    assert codes[0] == 0 and codes[1] == 1, outs
    assert len(saved) == 1 and "saved model x" in saved[0]
    assert "already exists" in refused[0] or "being trained by another run" in refused[0]
    assert "Traceback" not in refused[0]
    card = json.loads((ws / "models" / "x" / "model.json").read_text())
    assert card["status"] == "complete" and card["settings"]["epochs"] == 30
    assert not (ws / "models" / "x" / ".lock").exists()


def test_two_extractions_on_one_workspace_both_end_complete(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for i in range(4):
        make_audio(root / "train" / "a" / f"a{i}.wav", 20.0, kind="white", seed=i)
        make_audio(root / "train" / "b" / f"b{i}.wav", 20.0, freq=300 + 50 * i)
    make_audio(root / "test" / "a" / "t.wav", 12.0, kind="white", seed=9)
    make_audio(root / "test" / "b" / "t.wav", 12.0, freq=900)
    ws = tmp_path / "ws"
    args = ("extract", "--dataset", root, "--workspace", ws, "--workers", "1")
    procs = [_genre(*args), _genre(*args)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert " 0 failed" in err and "in progress" not in err, err
    store = next((ws / "features").iterdir())
    assert len(list(store.glob("*.npz"))) == 10
    assert not list(store.glob("*.failed.json")) and not list(store.glob(".*.tmp"))


def _truncate_one_entry(ws: Path) -> Path:
    entry = sorted((ws / "features").glob("*/*.npz"))[0]
    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) // 2])
    return entry


def test_a_damaged_entry_is_moved_aside_and_extracted_again(small: tuple[Path, Path], tmp_path: Path) -> None:
    ds, cfg = small
    ws = tmp_path / "ws"
    run_genre("extract", "--dataset", ds, "--workspace", ws, "--config", cfg, check=True)
    entry = _truncate_one_entry(ws)
    train = run_genre("train", "--dataset", ds, "--workspace", ws, "--config", cfg)
    assert train.returncode == 1 and "Traceback" not in train.stderr
    assert "1 stored entries were damaged and are moved aside" in train.stderr
    assert "genre extract --dataset" in train.stderr
    assert list((entry.parent / "damaged").iterdir()) and not entry.exists()
    again = run_genre("extract", "--dataset", ds, "--workspace", ws, "--config", cfg)
    assert again.returncode == 0 and "1 extracted" in again.stderr, again.stderr
    assert entry.exists()
    other = _truncate_one_entry(ws)  # found by extract itself this time
    third = run_genre("extract", "--dataset", ds, "--workspace", ws, "--config", cfg)
    assert third.returncode == 0 and "1 extracted" in third.stderr, third.stderr
    assert "damaged" in third.stderr and "extracting again" in third.stderr
    assert other.exists() and len(list((entry.parent / "damaged").iterdir())) == 2
    ok = run_genre("train", "--dataset", ds, "--workspace", ws, "--config", cfg)
    assert ok.returncode == 0, ok.stderr


def test_the_same_recording_under_two_genres_is_reported_and_refused(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", GENRES, per_split=(2, 1), seconds=5.0)
    copy = ds / "train" / "weiss" / "stolen.mp3"
    copy.write_bytes((ds / "train" / "sinus" / "sinus song 0.mp3").read_bytes())
    ws = tmp_path / "ws"
    show = run_genre("dataset", "show", ds, "--workspace", ws)
    assert show.returncode == 1 and "two-genres:" in show.stdout and "stolen.mp3" in show.stdout
    cfg = tmp_path / "c.toml"
    cfg.write_text(FAST)
    train = run_genre("train", "--dataset", ds, "--workspace", ws, "--config", cfg, "--extract")
    assert train.returncode == 1
    assert "the same recording is under two genres" in train.stderr and "stolen.mp3" in train.stderr


#: Runs `genre ARGS` with FOLDER mounted read-only (a private mount namespace: the test's own).
_READ_ONLY = """
import os, subprocess, sys
folder, exe, *args = sys.argv[1:]
subprocess.run(["mount", "--bind", folder, folder], check=True)
subprocess.run(["mount", "-o", "remount,ro,bind", folder], check=True)
os.execv(exe, [exe, *args])
"""


def _read_only(folder: Path, *args: str | Path) -> subprocess.CompletedProcess:
    exe = str(Path(sys.executable).with_name("genre"))
    cmd = ["unshare", "-m", "--", sys.executable, "-c", _READ_ONLY, str(folder), exe, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _can_mount_read_only(tmp_path: Path) -> bool:
    probe = ["unshare", "-m", "--", "mount", "--bind", str(tmp_path), str(tmp_path)]
    try:
        return subprocess.run(probe, capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def test_a_read_only_workspace_says_so_in_one_line(small: tuple[Path, Path], tmp_path: Path) -> None:
    if not _can_mount_read_only(tmp_path):
        pytest.skip("needs `unshare -m` and bind mounts to make a truly read-only folder")
    ds, cfg = small
    ws = tmp_path / "ws"
    args = ("train", "--dataset", ds, "--workspace", ws, "--config", cfg, "--extract", "--name", "m")
    run_genre(*args, check=True)
    listed = _read_only(ws, "models", "list", "--workspace", ws)
    assert listed.returncode == 0 and "m" in listed.stdout, listed.stderr
    shown = _read_only(ws, "models", "show", "m", "--workspace", ws)
    assert shown.returncode == 0, shown.stderr
    for what in (("train", "--dataset", ds, "--config", cfg, "--name", "n"), ("models", "rm", "m")):
        proc = _read_only(ws, *what, "--workspace", ws)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "not writable" in lines[0], proc.stderr
    assert (ws / "models" / "m" / "model.json").exists()


def test_store_list_and_prune_keep_what_a_model_uses(small: tuple[Path, Path], tmp_path: Path) -> None:
    ds, cfg = small
    ws = tmp_path / "ws"
    run_genre(
        "train", "--dataset", ds, "--workspace", ws, "--config", cfg, "--extract", "--name", "m", check=True
    )
    other = tmp_path / "other.toml"
    other.write_text(FAST.replace("chunk_seconds = 3.0", "chunk_seconds = 4.0"))
    run_genre("extract", "--dataset", ds, "--workspace", ws, "--config", other, check=True)
    (ws / "downloads").mkdir(exist_ok=True)
    (ws / "downloads" / "x.part").write_bytes(b"0" * 1000)
    listed = run_genre("store", "list", "--workspace", ws)
    assert listed.returncode == 0, listed.stderr
    assert "m" in listed.stdout and "nothing" in listed.stdout and "downloads" in listed.stdout
    stores = sorted(p.name for p in (ws / "features").iterdir())
    assert len(stores) == 2
    dry = run_genre("store", "prune", "--dry-run", "--workspace", ws)
    assert dry.returncode == 0 and "would remove" in dry.stdout
    assert sorted(p.name for p in (ws / "features").iterdir()) == stores
    done = run_genre("store", "prune", "--downloads", "--workspace", ws)
    assert done.returncode == 0, done.stderr
    kept = [p.name for p in (ws / "features").iterdir()]
    card = json.loads((ws / "models" / "m" / "model.json").read_text())
    assert kept == [card["features"]["config_key"]]
    assert not (ws / "downloads" / "x.part").exists()
    assert all(p.exists() for p in ds.rglob("*.mp3"))  # the songs are never touched
    query = run_genre("query", next(ds.rglob("*.mp3")), "--workspace", ws, "--config", cfg)
    assert query.returncode == 0, query.stderr
