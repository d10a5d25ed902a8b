"""The TUI's engine row (Extraction pane): local stays the default, a Ray that is missing or not
there is one line in the pane, and ray extracts (and the Query pane classifies a folder) on a
real Ray cluster whose address is typed into the pane.

The tests that import or start Ray are marked `cluster`, as in tests/test_cluster.py.
"""

from __future__ import annotations

import faulthandler
import os
import sys
from pathlib import Path

import pytest
from conftest import make_dataset, refused_port
from test_tui import make_app, sync, text_of, tiny_settings, until
from textual.widgets import DataTable, Input, Select

from genre_erkennung.core import dataset, predict, registry
from genre_erkennung.core.cluster import connected
from genre_erkennung.core.config import ClusterSettings
from genre_erkennung.core.store import store_for
from genre_erkennung.core.workspace import Workspace
from genre_erkennung.tui.panes.messages import ModelSaved

GENRES = {"sinus": ("sine", 330.0), "rauschen": ("white", 0.0)}
SIZE = (80, 24)


@pytest.fixture
def small_ds(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "ds", GENRES, per_split=(1, 1), seconds=2.0)


def _ray_or_skip() -> object:
    if os.environ.get("CI"):
        import ray  # CI installs the `cluster` extra: a missing Ray fails there

        return ray
    return pytest.importorskip("ray")


async def _choose_ray(pilot, address: str) -> None:
    """The user's keys: e focuses the engine, Enter opens it, down + Enter takes ray, Tab goes to
    the address box (enabled now), the address is typed."""
    app = pilot.app
    await pilot.press("2", "e", "enter", "down", "enter")
    assert app.query_one("#extract-engine", Select).value == "ray"
    assert not app.query_one("#extract-address", Input).disabled
    await pilot.press("tab", *address)
    assert app.settings.cluster.engine == "ray" and app.settings.cluster.address == address


@sync
async def test_the_engine_row_starts_local_or_as_the_config_says(tmp_path: Path) -> None:
    app = make_app(tiny_settings(None, tmp_path / "ws"), scan_on_mount=False, load_models=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        assert app.query_one("#extract-engine", Select).value == "local"
        assert app.query_one("#extract-address", Input).disabled
    settings = tiny_settings(None, tmp_path / "ws")
    settings.cluster.engine, settings.cluster.address = "ray", "10.0.0.1:6390"
    app = make_app(settings, scan_on_mount=False, load_models=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        assert app.query_one("#extract-engine", Select).value == "ray"
        address = app.query_one("#extract-address", Input)
        assert not address.disabled and address.value == "10.0.0.1:6390"


def _one_line_error(app, starts: str) -> None:
    status = text_of(app, "#extraction-status")
    assert status.startswith(f"error: {starts}"), status
    assert "\n" not in status and "Traceback" not in status, status


@sync
async def test_ray_missing_is_one_line_in_the_pane(
    small_ds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as uninstalled
    app = make_app(tiny_settings(small_ds, tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.dataset is not None)
        await _choose_ray(pilot, "")
        await pilot.press("enter")  # Enter in the address box starts
        pane = app.query_one("#extraction-pane")
        await until(pilot, lambda: not pane.running and "error" in text_of(app, "#extraction-status"))
        _one_line_error(app, "cluster.engine = ray needs Ray: pip install 'genre-erkennung[cluster]'")


@pytest.mark.cluster
@sync
async def test_a_ray_cluster_that_is_not_there_is_one_line_in_the_pane(
    small_ds: Path, tmp_path: Path
) -> None:
    _ray_or_skip()
    app = make_app(tiny_settings(small_ds, tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.dataset is not None)
        await _choose_ray(pilot, f"127.0.0.1:{refused_port()}")
        await pilot.press("escape", "s")
        pane = app.query_one("#extraction-pane")
        await until(pilot, lambda: not pane.running and "error" in text_of(app, "#extraction-status"))
        _one_line_error(app, "cannot reach the Ray cluster at 127.0.0.1:")
        assert store_for(Workspace(tmp_path / "ws"), app.settings).entries() == []


def _on_ray_or_error(app, status: str, where: str) -> bool:
    """The job's status says where it runs (Ray at the address), or the job failed (then fail)."""
    text = text_of(app, status)
    assert not text.startswith("error"), text
    return where in text


@pytest.mark.cluster
@pytest.mark.slow
@sync
async def test_the_panes_extract_and_query_a_folder_on_a_ray_cluster(small_ds: Path, tmp_path: Path) -> None:
    ray = _ray_or_skip()
    from ray.cluster_utils import Cluster

    from genre_erkennung.core.train import train

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    enabled = faulthandler.is_enabled()
    faulthandler.disable()  # as in `genre tui` (pytest enables it): Ray then enables it itself
    try:
        settings = tiny_settings(small_ds, tmp_path / "ws")
        app = make_app(settings)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.dataset is not None)
            await _choose_ray(pilot, cluster.address)
            await pilot.press("enter")
            pane = app.query_one("#extraction-pane")
            where = f"on Ray at {cluster.address}"
            await until(pilot, lambda: _on_ray_or_error(app, "#extraction-status", where))
            await until(pilot, lambda: not pane.running, timeout=180)
            status = text_of(app, "#extraction-status")
            assert "Done: 4 extracted, 0 already stored, 0 failed" in status, status
            assert app.query_one("#extract-workers", DataTable).border_title == "Ray tasks"
            assert not ray.is_initialized(), "the job left its Ray connection open"
            ws = Workspace(tmp_path / "ws")
            ds = dataset.scan(small_ds)
            assert store_for(ws, settings).entries() == sorted(s.key for s in ds.songs)

            for key in ("mfcc_conv", "mfcc_bottleneck", "mfcc_lstm", "contrast_conv", "contrast_lstm"):
                setattr(settings.model, key, 8)
            settings.model.head = 8
            train(ds, settings, ws, name="tiny")
            app.post_message(ModelSaved("tiny"))
            await until(pilot, lambda: app.model_name == "tiny")
            folder = small_ds / "test"
            await pilot.press("escape", "4", "slash", *str(folder), "enter")
            query = app.query_one("#query-pane")
            await until(pilot, lambda: _on_ray_or_error(app, "#query-status", f"with tiny {where}"))
            await until(pilot, lambda: not query.running, timeout=180)
            assert "2 songs classified" in text_of(app, "#query-status")
            here = predict.query([str(folder)], registry.load(ws, "tiny"), settings, ws)
            assert [s.to_json() for _, s in query.recent] == [r.to_json() for r in here.results]

        # No address means a Ray instance of its own, even with this cluster's address on record
        # in /tmp/ray (where a bare ray.init() would join it).
        with connected(ClusterSettings(engine="ray")) as joined:
            assert joined.get_runtime_context().gcs_address != cluster.address
    finally:
        cluster.shutdown()
        if enabled and not faulthandler.is_enabled():
            faulthandler.enable(file=sys.__stderr__)
