import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_audio, make_dataset, run_genre

from genre_erkennung.core import config, dataset
from genre_erkennung.core.extract import extract
from genre_erkennung.core.store import FeatureStore, config_key, store_for
from genre_erkennung.core.workspace import Workspace

GENRES = {"sinus": ("sine", 440.0), "weiß": ("white", 0.0), "rosa": ("pink", 0.0)}


def _settings(chunk: float = 3.0, minimum: float = 1.0, workers: int = 2) -> config.Settings:
    s = config.Settings()
    s.audio.chunk_seconds, s.audio.min_chunk_seconds = chunk, minimum
    s.extraction.workers = workers
    return s


@pytest.fixture(scope="module")
def ds_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("x") / "ds", GENRES, per_split=(2, 1), seconds=7.0)


def test_extract_stores_every_song_and_resumes(ds_root: Path, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    s = _settings()
    ds = dataset.scan(ds_root)
    events: list = []
    first = extract(ds.songs, s, ws, events.append)
    assert (first.done, first.cached, first.failed) == (9, 0, [])
    store = store_for(ws, s)
    for song in ds.songs:
        e = store.load(song.key)
        n = 3  # 7-8 s in 3 s chunks: 2 full + a padded tail
        assert e.chunks == n
        assert e.mfcc.shape == (n, 130, 20) and e.mfcc.dtype == np.float32
        assert e.contrast_peaks.shape == e.contrast_valleys.shape == (n, 260, 7)
        assert list(e.starts) == [0.0, 3.0, 6.0]
        assert e.lengths[0] == 3 * 44100 and 0 < e.lengths[-1] < 3 * 44100
        assert not e.mfcc[-1, -10:].any()  # the zero padding stays silent
    second = extract(ds.songs, s, ws)
    assert (second.done, second.cached) == (0, 9)


def test_changed_parameter_gets_its_own_store() -> None:
    a, b = _settings(), _settings(chunk=4.0)
    assert config_key(a) != config_key(b)
    assert config_key(a) == config_key(_settings(workers=1))  # workers do not change the numbers


def test_bad_files_are_recorded_and_the_batch_goes_on(ds_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_audio(root / "train" / "a" / "good.wav", 4.0)
    make_audio(root / "train" / "a" / "short.mp3", 0.5)
    (root / "train" / "a" / "fake.mp3").write_text("no")
    make_audio(root / "test" / "a" / "ok.wav", 4.0, freq=300)
    ws = Workspace(tmp_path / "ws")
    r = extract(dataset.scan(root).songs, _settings(), ws)
    assert r.done == 2 and len(r.failed) == 2
    reasons = dict(r.failed)
    assert "too short" in reasons[str(root / "train" / "a" / "short.mp3")]
    again = extract(dataset.scan(root).songs, _settings(), ws)
    assert again.cached == 2 and len(again.failed) == 2


def _store_is_whole(ws: Path) -> FeatureStore:
    [folder] = [p for p in (ws / "features").iterdir() if p.is_dir()]
    store = FeatureStore(ws / "features", folder.name)
    for key in store.entries():
        store.load(key)  # every visible entry is complete
    return store


@pytest.mark.slow
def test_kill_9_mid_run_then_resume(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for i in range(8):
        make_audio(root / ("train" if i < 6 else "test") / "g" / f"s{i}.mp3", 40.0, kind="pink", seed=i)
    ws = tmp_path / "ws"
    cfg = tmp_path / "c.toml"
    cfg.write_text("[audio]\nchunk_seconds = 5.0\nmin_chunk_seconds = 1.0\n")
    exe = Path(sys.executable).with_name("genre")
    proc = subprocess.Popen(
        [exe, "extract", "--dataset", root, "--workspace", ws, "--config", cfg, "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not list(ws.glob("features/*/*.npz")):
        time.sleep(0.05)
    # Kill one ffmpeg decode worker, then the whole run, both with SIGKILL.
    children = subprocess.run(
        ["pgrep", "-f", "-P", str(proc.pid), "ffmpeg"], capture_output=True, text=True
    ).stdout.split()
    if children:
        with contextlib.suppress(ProcessLookupError):  # it may have finished its song meanwhile
            os.kill(int(children[0]), signal.SIGKILL)
    time.sleep(0.3)
    proc.kill()
    proc.wait()
    store = _store_is_whole(ws)
    assert 0 < len(store.entries()) < 8
    assert not list(store.folder.glob("*.failed.json"))  # a killed decoder is not the file's fault
    rerun = run_genre("extract", "--dataset", root, "--workspace", ws, "--config", cfg)
    assert rerun.returncode == 0, rerun.stderr
    assert len(_store_is_whole(ws).entries()) == 8


def test_ctrl_c_stops_quickly_and_cleanly(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for i in range(6):
        make_audio(root / "train" / "g" / f"s{i}.wav", 60.0, kind="white", seed=i)
    make_audio(root / "test" / "g" / "t.wav", 5.0)
    ws = tmp_path / "ws"
    exe = Path(sys.executable).with_name("genre")
    proc = subprocess.Popen(
        [exe, "extract", "--dataset", root, "--workspace", ws, "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not list(ws.glob("features/*/config.json")):
        time.sleep(0.05)
    time.sleep(0.5)
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.time() - sent < 3.0
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    _store_is_whole(ws)
    records = [json.loads(p.read_text()) for p in ws.glob("features/*/*.failed.json")]
    assert [r["path"] for r in records if "too short" not in r["error"]] == []  # t.wav is 5 s


def test_cli_lists_failures_with_exit_1(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_audio(root / "train" / "a" / "good.wav", 11.0)
    (root / "train" / "a" / "empty.mp3").touch()
    make_audio(root / "test" / "a" / "ok.wav", 11.0, freq=300)
    proc = run_genre("extract", "--dataset", root, "--workspace", tmp_path / "ws")
    assert proc.returncode == 1
    assert "failed songs:" in proc.stderr and "empty.mp3" in proc.stderr and "empty file" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_prefetch_stores_what_extraction_stores(ds_root: Path, tmp_path: Path) -> None:
    """A cold query's prefetch thread (core/prefetch.py) writes the very entry `extract` does:
    its failures are silent by design, so this is where a broken prefetch shows."""
    import threading

    from genre_erkennung.core import prefetch

    s = _settings()
    song = next(x for x in dataset.scan(ds_root).songs if x.path.suffix == ".mp3")
    thread = prefetch.start(str(song.path), s, Workspace(tmp_path / "early"), threading.Event())
    assert thread is not None
    thread.join(60)
    early = store_for(Workspace(tmp_path / "early"), s).load(song.key)
    extract([song], s, Workspace(tmp_path / "late"))
    late = store_for(Workspace(tmp_path / "late"), s).load(song.key)
    assert early.chunks == late.chunks == 3
    for name in ("mfcc", "contrast_peaks", "contrast_valleys", "starts", "lengths"):
        np.testing.assert_array_equal(getattr(early, name), getattr(late, name), err_msg=name)
    missing = str(tmp_path / "missing.mp3")
    assert prefetch.start(missing, s, Workspace(tmp_path / "x"), threading.Event()) is None
