"""Extraction and folder queries on a real two-node Ray cluster on this machine.

Marked `cluster`; the rest of the suite never imports Ray. Without Ray installed these tests skip,
except in CI (which installs it), where a missing Ray is a failure.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_audio, make_dataset

from genre_erkennung.core import config, dataset
from genre_erkennung.core.events import SongStarted
from genre_erkennung.core.extract import extract
from genre_erkennung.core.store import ARRAYS, FeatureStore, store_for
from genre_erkennung.core.workspace import Workspace

pytestmark = pytest.mark.cluster

GENRES = {"sinus": ("sine", 440.0), "weiß": ("white", 0.0)}


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """Two Ray nodes of one CPU each, as Ray's own tests make them."""
    if os.environ.get("CI") and not _has_ray():
        pytest.fail("CI must install Ray (the `cluster` extra)")
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def _has_ray() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _settings(engine: str = "local", ship: str = "auto") -> config.Settings:
    s = config.Settings()
    s.audio.chunk_seconds, s.audio.min_chunk_seconds = 3.0, 1.0
    s.extraction.workers = 2
    s.cluster.engine, s.cluster.ship = engine, ship
    return s


@pytest.fixture(scope="module")
def ds_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_dataset(tmp_path_factory.mktemp("c") / "ds", GENRES, per_split=(2, 1), seconds=5.0)
    (root / "train" / "sinus" / "fake.mp3").write_text("not audio")
    (root / "train" / "sinus" / "empty.wav").touch()
    make_audio(root / "test" / "weiß" / "short.mp3", 0.4)
    return root


def _contents(store: FeatureStore) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Every entry's arrays and metadata (less its creation time) and every failure record."""
    entries = {}
    for key in store.entries():
        e = store.load(key)
        meta = {k: v for k, v in e.meta.items() if k != "created"}
        arrays = {name: getattr(e, name) for name in ARRAYS}
        entries[key] = (arrays, meta)
    failures = {}
    for f in store.folder.glob("*.failed.json"):
        record = json.loads(f.read_text())
        failures[f.name] = {k: v for k, v in record.items() if k != "time"}
    return entries, failures


def _assert_same_store(a: FeatureStore, b: FeatureStore) -> None:
    ea, fa = _contents(a)
    eb, fb = _contents(b)
    assert sorted(ea) == sorted(eb) and ea
    for key, (arrays, meta) in ea.items():
        other_arrays, other_meta = eb[key]
        assert meta == other_meta, key
        for name, x in arrays.items():
            y = other_arrays[name]
            assert x.dtype == y.dtype and x.shape == y.shape, (key, name)
            assert np.array_equal(x, y), (key, name)
    assert fa == fb and fa


def _no_scratch(store: FeatureStore) -> None:
    assert not list(store.folder.glob(".*.tmp")), "scratch files left behind"


def test_ray_store_equals_local_and_rerun_submits_nothing(
    ray_cluster: Any, ds_root: Path, tmp_path: Path
) -> None:
    songs = dataset.scan(ds_root).songs
    local = extract(songs, _settings(), Workspace(tmp_path / "local"))
    assert local.done == 6 and len(local.failed) == 3
    for ship in ("auto", "bytes"):
        s = _settings("ray", ship)
        ws = Workspace(tmp_path / f"ray-{ship}")
        events: list = []
        r = extract(songs, s, ws, events.append)
        assert (r.done, r.cached, sorted(r.failed)) == (6, 0, sorted(local.failed)), ship
        started = [e.path for e in events if isinstance(e, SongStarted)]
        assert sorted(started) == sorted({str(s.path) for s in songs if s.ok}), ship
        _assert_same_store(store_for(Workspace(tmp_path / "local"), s), store_for(ws, s))
        _no_scratch(store_for(ws, s))
    events = []
    again = extract(songs, _settings("ray"), Workspace(tmp_path / "ray-auto"), events.append)
    assert (again.done, again.cached, len(again.failed)) == (0, 6, 3)
    assert not any(isinstance(e, SongStarted) for e in events), "a stored song was submitted again"


def _kill_one_task_worker(stop: threading.Event) -> int | None:
    """SIGKILL the first Ray worker process seen running a song task (Ray titles it so)."""
    while not stop.is_set():
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if cmdline.read_bytes().startswith(b"ray::song_task"):
                    pid = int(cmdline.parent.name)
                    os.kill(pid, signal.SIGKILL)
                    return pid
            except (OSError, ProcessLookupError):
                continue
        time.sleep(0.05)
    return None


def test_a_killed_worker_is_retried_and_the_run_completes(ray_cluster: Any, tmp_path: Path) -> None:
    root = tmp_path / "long"
    for i in range(4):
        make_audio(root / "train" / "a" / f"song {i}.wav", 40.0 + i, kind="pink", seed=i)
    songs = dataset.scan(root).songs
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=lambda: killed.append(_kill_one_task_worker(stop)))
    killer.start()
    s = _settings("ray")
    ws = Workspace(tmp_path / "ws")
    try:
        r = extract(songs, s, ws)
    finally:
        stop.set()
        killer.join()
    assert killed and killed[0] is not None, "no task was running to kill"
    assert (r.done, r.failed) == (4, [])
    store = store_for(ws, s)
    assert store.entries() == sorted(song.key for song in songs)
    for song in songs:
        assert abs(store.load(song.key).meta["duration"] - (song.duration or 0)) < 0.1
    _no_scratch(store)


def test_a_folder_query_on_the_cluster_agrees_with_a_local_one(
    ray_cluster: Any, ds_root: Path, tmp_path: Path
) -> None:
    from genre_erkennung.core import registry
    from genre_erkennung.core.cluster import query_on_ray
    from genre_erkennung.core.predict import query
    from genre_erkennung.core.train import train

    s = _settings()
    s.training.epochs, s.training.threads, s.training.batch_size = 2, 1, 4
    for key in ("mfcc_conv", "mfcc_bottleneck", "mfcc_lstm", "contrast_conv", "contrast_lstm", "head"):
        setattr(s.model, key, 8)
    ws = Workspace(tmp_path / "ws")
    ds = dataset.scan(ds_root)
    extract(ds.songs, s, ws)
    train(ds, s, ws, name="tiny")
    loaded = registry.load(ws, "tiny")
    folder = tmp_path / "query"
    make_audio(folder / "new song.mp3", 7.0, kind="pink", seed=9)  # not in the store yet
    make_audio(folder / "sub" / "tone.wav", 4.0, freq=500)
    (folder / "sub" / "broken.mp3").write_text("not audio")
    arrived: list[str] = []
    remote = query_on_ray(
        [str(folder)],
        loaded,
        _settings("ray"),
        ws,
        20,
        on_result=lambda r: arrived.append(r.source),
    )
    here = query([str(folder)], loaded, _settings(), ws)
    assert [r.to_json() for r in remote.results] == [r.to_json() for r in here.results]
    assert remote.errors == here.errors and len(here.errors) == 1
    assert sorted(arrived) == sorted(r.source for r in here.results) and len(arrived) == 2


def test_the_musicnn_backend_on_ray_is_one_line_before_ray_starts(ds_root: Path, tmp_path: Path) -> None:
    from genre_erkennung.core.errors import GenreError

    s = _settings("ray")
    s.features.backend = "musicnn"
    with pytest.raises(GenreError, match="the musicnn backend does not run on Ray"):
        extract(dataset.scan(ds_root).songs, s, Workspace(tmp_path / "ws"))


def test_the_cli_starts_without_ray() -> None:
    code = "import sys; from genre_erkennung.tui.cli import app; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_cluster_that_is_not_there_is_one_line(ds_root: Path, tmp_path: Path) -> None:
    from conftest import refused_port, run_genre

    pytest.importorskip("ray")
    cfg = tmp_path / "c.toml"
    cfg.write_text("[audio]\nchunk_seconds = 3.0\nmin_chunk_seconds = 1.0\n")
    proc = run_genre(
        "extract",
        "--dataset",
        ds_root,
        "--config",
        cfg,
        "--workspace",
        tmp_path / "ws",
        "--engine",
        "ray",
        "--address",
        f"127.0.0.1:{refused_port()}",
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[-1].startswith("error: cannot reach the Ray cluster at 127.0.0.1:"), proc.stderr
