"""The TUI driven with Pilot against the real engine on a tiny generated dataset.

Every test asserts on what the widgets show. Audio is a few seconds long and chunked into
1-second pieces, so the whole pipeline (scan, extract, train two epochs, query) takes seconds.
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from conftest import genre_in_process, make_audio, make_dataset
from rich.text import Text
from textual.widgets import DataTable, Input, OptionList, Select, Static, TabbedContent, Tree

from genre_erkennung.core import registry
from genre_erkennung.core.config import Settings
from genre_erkennung.core.dataset import scan
from genre_erkennung.core.extract import extract
from genre_erkennung.core.store import config_key, store_for
from genre_erkennung.core.workspace import Workspace
from genre_erkennung.tui.app import GenreApp
from genre_erkennung.tui.widgets.bigtext import BigText
from genre_erkennung.tui.widgets.infobar import InfoBar
from genre_erkennung.tui.widgets.votestrip import VoteStrip

GENRES = {"sinus": ("sine", 330.0), "rauschen": ("white", 0.0)}
SIZE = (100, 30)


def tiny_settings(dataset: Path | None, workspace: Path, **training: object) -> Settings:
    s = Settings()
    s.workspace = str(workspace)
    s.dataset = str(dataset) if dataset else ""
    s.audio.chunk_seconds = 1.0
    s.audio.min_chunk_seconds = 0.5
    s.extraction.workers = 2
    s.training.epochs = 2
    s.training.batch_size = 8
    s.training.threads = 1
    s.training.device = "cpu"
    for key, value in training.items():
        setattr(s.training, key, value)
    return s


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body in its own event loop (no pytest-asyncio needed)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def make_app(settings: Settings, **kwargs: object) -> GenreApp:
    return GenreApp(settings, device="CPU", **kwargs)  # type: ignore[arg-type]


async def until(
    pilot, condition: Callable[[], object], timeout: float = 60.0, settle: bool = True, what: str = ""
) -> None:
    """Let the app run until `condition()` holds (the engine works in threads meanwhile)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        await pilot.pause(0.05)
    if settle:
        await pilot.pause()  # let the widgets lay out what just arrived


def text_of(app: GenreApp, selector: str) -> str:
    rendered = app.query_one(selector, Static).render()
    return rendered.plain if isinstance(rendered, Text) else str(rendered)


def table_rows(app: GenreApp, selector: str) -> list[list[str]]:
    table = app.query_one(selector, DataTable)
    return [
        [str(c.plain if isinstance(c, Text) else c) for c in table.get_row_at(i)]
        for i in range(table.row_count)
    ]


def tree_labels(app: GenreApp) -> list[str]:
    tree = app.query_one("#dataset-tree", Tree)
    labels: list[str] = []

    def walk(node) -> None:
        for child in node.children:
            labels.append(child.label.plain)
            walk(child)

    walk(tree.root)
    return labels


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("tui") / "ds", GENRES, per_split=(2, 1), seconds=3.0)


@pytest.fixture(scope="module")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with the dataset's features and one tiny model, made by the engine directly."""
    ws = tmp_path_factory.mktemp("tui-ws") / "ws"
    settings = tiny_settings(dataset, ws)
    from genre_erkennung.core.train import train

    ds = scan(dataset)
    extract(ds.songs, settings, Workspace(ws))
    train(ds, settings, Workspace(ws), name="tiny")
    return ws


# ---------------------------------------------------------------------------------------- dataset


@sync
async def test_dataset_pane_shows_tree_counts_and_song(dataset: Path, tmp_path: Path) -> None:
    app = make_app(tiny_settings(dataset, tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.dataset is not None)
        labels = tree_labels(app)
        assert labels[0].startswith("train  4 songs")
        assert any(label.startswith("rauschen  2 ·") for label in labels)
        assert any(label.startswith("sinus song 0.mp3") for label in labels)
        assert "6 songs in 2 genres" in text_of(app, "#dataset-status")
        assert "0 problems" in text_of(app, "#dataset-status")
        rows = table_rows(app, "#dataset-summary")
        assert [r[0] for r in rows] == ["rauschen", "sinus"]
        assert rows[0][1].startswith("2 · 0:0") and rows[0][2].startswith("1 · 0:0")
        assert app.query_one(InfoBar).dataset == str(dataset)
        # down: train > rauschen > first song
        await pilot.press("down", "down")
        detail = text_of(app, "#dataset-detail")
        assert "train/rauschen/rauschen song 0.mp3" in detail
        assert "mp3 · 1 ch · 44100 Hz" in detail and "not yet" in detail


@sync
async def test_dataset_problems_are_listed_and_marked(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds", {"sinus": ("sine", 330.0)}, per_split=(1, 1), seconds=2.0)
    make_audio(root / "train" / "nur-train" / "a.wav", 2.0)
    (root / "train" / "sinus" / "kaputt.mp3").write_bytes(b"not audio at all")
    app = make_app(tiny_settings(root, tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.dataset is not None)
        problems = text_of(app, "#dataset-problems")
        assert "'nur-train' is in train/ only" in problems
        assert "train/sinus/kaputt.mp3" in problems
        labels = tree_labels(app)
        assert "✗ nur-train: missing in test/" in labels
        assert any(label.startswith("✗ kaputt.mp3") for label in labels)
        assert table_rows(app, "#dataset-summary")[0][2] == "missing"


@sync
async def test_dataset_counts_agree_with_the_cli(tmp_path: Path) -> None:
    """The TUI scans as `genre dataset show` does: a song shorter than the shortest chunk kept is
    unusable in both, and a copy of a song counts the same in both."""
    root = make_dataset(tmp_path / "ds", GENRES, per_split=(1, 1), seconds=11.0)
    make_audio(root / "train" / "sinus" / "intro.wav", 2.0)  # under audio.min_chunk_seconds (10 s)
    shutil.copy(root / "train" / "sinus" / "sinus song 0.mp3", root / "test" / "sinus" / "copy.mp3")
    settings = Settings()
    settings.dataset, settings.workspace = str(root), str(tmp_path / "ws")
    cli = genre_in_process("dataset", "show", "--json", "--dataset", root, "--workspace", tmp_path / "ws")
    cli_usable = [s["path"] for s in json.loads(cli.stdout)["songs"] if s["error"] is None]
    app = make_app(settings, load_models=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.dataset is not None)
        assert sorted(str(s.path) for s in app.dataset.usable()) == sorted(cli_usable)
        assert f"{len(cli_usable)} songs in 2 genres" in text_of(app, "#dataset-status")
        assert any(label.startswith("✗ intro.wav") for label in tree_labels(app))


@sync
async def test_open_folder_with_keys_only(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(dataset.parent)  # a relative path is typed faster (Pilot presses key by key)
    app = make_app(tiny_settings(None, tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        assert app.query_one(InfoBar).dataset == ""
        await pilot.press("o")
        await pilot.pause()
        assert isinstance(app.focused, Input) and app.focused.id == "dataset-root"
        await pilot.press("1", "2")  # typed into the input, not pane switches
        assert app.query_one("#panes", TabbedContent).active == "dataset"
        app.focused.value = ""
        await pilot.press(*dataset.name, "enter")
        await until(pilot, lambda: app.dataset is not None)
        assert app.query_one(InfoBar).dataset == str(dataset)
        assert app.focused is app.query_one("#dataset-tree")


@sync
async def test_demo_key_generates_and_opens_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from genre_erkennung.tui.panes import dataset as dataset_pane

    monkeypatch.setattr(dataset_pane, "DEMO_SIZE", (2, 12.0))
    app = make_app(tiny_settings(None, tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("d")
        await until(pilot, lambda: app.dataset is not None, timeout=120)
        assert app.dataset_root == Workspace(tmp_path / "ws").demo_dataset(2, 12.0)  # as `genre demo` does
        assert app.dataset.genres == ["ambient", "electronic", "jazz", "rock"]
        assert "8 songs in 4 genres" in text_of(app, "#dataset-status")
    again = make_app(tiny_settings(None, tmp_path / "ws"))  # the next start opens it by itself
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: again.dataset is not None)
        assert again.query_one(InfoBar).dataset.endswith("demo/dataset-2x12s")


# ---------------------------------------------------------------------------------------- extraction


@sync
async def test_extraction_pane_extracts_then_counts_stored(dataset: Path, tmp_path: Path) -> None:
    app = make_app(tiny_settings(dataset, tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.dataset is not None)
        await pilot.press("2")
        assert "0 of 6 songs already extracted" in text_of(app, "#extraction-status")
        await pilot.press("s")
        pane = app.query_one("#extraction-pane")
        await until(pilot, lambda: not pane.running and "Done" in text_of(app, "#extraction-status"))
        assert "6 extracted, 0 already stored, 0 failed" in text_of(app, "#extraction-status")
        assert "realtime" in text_of(app, "#extract-rate")
        assert app.query_one("#extract-failures", DataTable).row_count == 0
        await pilot.press("s")
        await until(pilot, lambda: not pane.running and "Done: 0" in text_of(app, "#extraction-status"))
        assert "0 extracted, 6 already stored" in text_of(app, "#extraction-status")
        # the dataset pane now says the song's features are there
        await pilot.press("1", "down", "down")
        assert "extracted" in text_of(app, "#dataset-detail")


@sync
async def test_extraction_failures_are_listed_with_reasons(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds", GENRES, per_split=(1, 1), seconds=2.0)
    (root / "train" / "sinus" / "kaputt.mp3").write_bytes(b"\xff\xfb" + b"\x00" * 64)
    app = make_app(tiny_settings(root, tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.dataset is not None)
        await pilot.press("2", "s")
        pane = app.query_one("#extraction-pane")
        await until(pilot, lambda: not pane.running and "Done" in text_of(app, "#extraction-status"))
        rows = table_rows(app, "#extract-failures")
        assert len(rows) == 1 and rows[0][0] == "sinus/kaputt.mp3" and rows[0][1]
        assert "1 failed" in text_of(app, "#extraction-status")


@sync
async def test_quit_mid_extraction_leaves_the_store_whole(tmp_path: Path) -> None:
    # long enough songs that one worker is still busy when q arrives, even on an idle machine:
    # the numpy math extracts 10 two-minute songs in about 2 s, so these are eight minutes long
    root = make_dataset(tmp_path / "ds", GENRES, per_split=(3, 2), seconds=480.0)
    settings = tiny_settings(root, tmp_path / "ws")
    settings.extraction.workers = 1
    folder = tmp_path / "ws" / "features" / config_key(settings)
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.dataset is not None)
        await pilot.press("2", "s")
        pane = app.query_one("#extraction-pane")
        await until(pilot, lambda: pane.done + pane.failed >= 1)
        assert pane.running, text_of(app, "#extraction-status")
        await pilot.press("q")
        # q leaves only once the song in progress has stopped and its scratch files are gone
        await until(pilot, lambda: app._exit, timeout=60, settle=False)
        assert not scratch_files(folder)
    assert not scratch_files(folder)
    store = store_for(Workspace(tmp_path / "ws"), settings)
    assert len(store.entries()) < 10  # it stopped early
    for key in store.entries():  # every entry that exists is whole
        entry = store.load(key)
        assert entry.mfcc.shape[0] == entry.starts.shape[0] > 0


@sync
async def test_quit_waits_until_the_job_thread_has_stopped(tmp_path: Path) -> None:
    app = make_app(tiny_settings(None, tmp_path / "ws"), load_models=False)
    started, release = threading.Event(), threading.Event()
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one("#extraction-pane")
        tokens: list[threading.Event] = []

        def job(_report: object, cancel: threading.Event) -> str:
            tokens.append(cancel)
            started.set()
            cancel.wait(30)
            release.wait(30)  # a slow last step after the stop (a song's cleanup under load)
            return "stopped"

        assert pane.start_job(job, lambda _result: None, "Working…")
        await until(pilot, started.is_set, settle=False)
        await pilot.press("q")
        assert tokens[0].is_set()
        await pilot.pause(0.2)
        assert not app._exit  # still up while the job finishes
        release.set()
        await until(pilot, lambda: app._exit, timeout=10, settle=False)


@sync
async def test_closing_the_app_waits_for_job_threads(tmp_path: Path) -> None:
    """Also when the app ends without q (run_test, an error), a pane's job is told to stop and its
    thread is awaited: Textual alone would cancel the worker's task and leave the thread running."""
    app = make_app(tiny_settings(None, tmp_path / "ws"), load_models=False)
    started, cleaned_up = threading.Event(), threading.Event()
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one("#extraction-pane")
        tokens: list[threading.Event] = []

        def job(_report: object, cancel: threading.Event) -> str:
            tokens.append(cancel)
            started.set()
            cancel.wait(30)
            time.sleep(0.2)  # the cleanup after the stop
            cleaned_up.set()
            return "stopped"

        pane.start_job(job, lambda _result: None, "Working…")
        await until(pilot, started.is_set, settle=False)
    assert tokens[0].is_set() and cleaned_up.is_set()


def scratch_files(folder: Path) -> list[Path]:
    """Spill files (.<key>.<name>.tmp) and atomic-write temps left in a store folder."""
    return [*folder.glob(".*.tmp"), *folder.glob("*.tmp")]


# ---------------------------------------------------------------------------------------- training


@sync
async def test_training_pane_trains_two_epochs(dataset: Path, trained: Path) -> None:
    app = make_app(tiny_settings(dataset, trained))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.dataset is not None and app.models)
        await pilot.press("3")
        assert "All 6 songs have features" in text_of(app, "#training-status")
        assert app.query_one("#train-epochs", Input).value == "2"
        app.query_one("#train-name", Input).value = "aus-der-tui"
        await pilot.press("s")
        pane = app.query_one("#training-pane")
        await until(pilot, lambda: not pane.running and pane.result is not None, timeout=120)
        rows = table_rows(app, "#train-history")
        assert [r[0] for r in rows] == ["1/2", "2/2"]
        assert "Saved aus-der-tui" in text_of(app, "#training-status")
        assert "songs " in text_of(app, "#train-result") and "baseline" in text_of(app, "#train-result")
        confusion = table_rows(app, "#train-confusion")
        assert [r[0] for r in confusion] == ["rauschen", "sinus"]
        assert sum(int(x) for r in confusion for x in r[1:]) == pane.result.metrics.chunks
        chart = app.query_one("#train-chart")
        assert chart.epochs == [1, 2]
        await until(pilot, lambda: app.model_name == "aus-der-tui")
        assert app.query_one(InfoBar).model == "aus-der-tui"
        assert registry.load(Workspace(trained), "aus-der-tui").genres == ["rauschen", "sinus"]


@sync
async def test_training_pane_trains_an_ensemble_and_says_the_baseline_warning(
    dataset: Path, trained: Path
) -> None:
    app = make_app(tiny_settings(dataset, trained))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.dataset is not None and app.models)
        await pilot.press("3")
        app.query_one("#train-ensemble", Input).value = "2"
        app.query_one("#train-validation-group", Select).value = "folder"
        app.query_one("#train-name", Input).value = "paar"
        await pilot.press("s")
        pane = app.query_one("#training-pane")
        await until(pilot, lambda: not pane.running and pane.result is not None, timeout=120)
        assert [r[0] for r in table_rows(app, "#train-history")] == ["1: 1/2", "1: 2/2", "2: 1/2", "2: 2/2"]
        card = registry.read_card(Workspace(trained).models / "paar", "paar")
        assert card.ensemble is not None and card.settings.validation_group == "folder"
        result = text_of(app, "#train-result")
        assert "2 members" in result
        warning = card.baseline_warning()  # two tones apart: the baseline gets every song right too
        assert warning is not None and "not clearly above the baseline" in " ".join(result.split())


@sync
async def test_training_pane_shows_the_selected_models_card(dataset: Path, trained: Path) -> None:
    app = make_app(tiny_settings(dataset, trained))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.model_name is not None)
        await pilot.press("3")
        card = registry.read_card(Workspace(trained).models / app.model_name, app.model_name)
        assert f"Showing {app.model_name}" in text_of(app, "#training-status")
        assert len(table_rows(app, "#train-history")) == len(card.history)
        assert [r[0] for r in table_rows(app, "#train-confusion")] == card.genres
        assert "songs " in text_of(app, "#train-result")


@sync
async def test_bad_training_setting_is_reported_not_run(dataset: Path, trained: Path) -> None:
    app = make_app(tiny_settings(dataset, trained))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.dataset is not None)
        await pilot.press("3")
        app.query_one("#train-learning-rate", Input).value = "99"
        await pilot.press("s")
        assert "learning_rate must be between" in text_of(app, "#training-status")
        assert not app.query_one("#training-pane").running


@sync
async def test_keys_work_while_training_runs_and_stop_keeps_best(dataset: Path, trained: Path) -> None:
    settings = tiny_settings(dataset, trained, epochs=5000, patience=10000)
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.dataset is not None)
        app.query_one("#train-name", Input).value = "lang"
        await pilot.press("3", "s")
        pane = app.query_one("#training-pane")
        history = app.query_one("#train-history", DataTable)
        await until(pilot, lambda: history.row_count >= 2, timeout=120, settle=False)
        assert pane.running
        # Pilot.press waits for the app to go idle, which it never does while epochs stream in:
        # send each key as the terminal would and watch for its effect.
        tabs = app.query_one("#panes", TabbedContent)
        # / focuses the query input, so Escape leaves it before 2 can switch again
        steps: list[tuple[str, Callable[[], bool]]] = [
            ("1", lambda: tabs.active == "dataset"),
            ("4", lambda: tabs.active == "query"),
            ("slash", lambda: isinstance(app.focused, Input)),
            ("escape", lambda: not isinstance(app.focused, Input)),
            ("2", lambda: tabs.active == "extraction"),
            ("3", lambda: tabs.active == "training"),
        ]
        for key, effect in steps:
            app.simulate_key(key)
            await until(pilot, effect, timeout=10, settle=False, what=f"the effect of key {key!r}")
        rows_before = history.row_count
        assert pane.running and rows_before >= 2  # still going while the UI answered
        app.simulate_key("c")
        await until(pilot, lambda: not pane.running, timeout=60)
        assert "stopped by you" in text_of(app, "#training-status")
    card = registry.read_card(Workspace(trained).models / "lang", "lang")
    assert card.status == "stopped" and card.training.epochs_run >= 2


# ---------------------------------------------------------------------------------------- query


@sync
async def test_query_local_file_then_url(
    dataset: Path, trained: Path, http_root: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, www = http_root
    monkeypatch.chdir(trained.parent)
    make_audio(www / "tui tone.mp3", 4.0, freq=340.0)
    song = make_audio(trained.parent / "Ein Ton ü.wav", 5.0, freq=320.0)
    app = make_app(tiny_settings(dataset, trained))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.model_name is not None)
        await pilot.press("4", "slash")
        source = app.query_one("#query-source", Input)
        assert app.focused is source
        await pilot.press(*song.name, "enter")
        pane = app.query_one("#query-pane")
        await until(pilot, lambda: not pane.running and pane.recent, timeout=60)
        genres, result = pane.recent[0]
        assert genres == ["rauschen", "sinus"]
        assert app.query_one("#query-big", BigText).text == result.verdict.majority
        verdict = text_of(app, "#query-verdict-text")
        assert f"{result.verdict.votes} of 5 chunks, mean p" in verdict and "Ein Ton ü" in verdict
        assert len(app.query_one("#query-strip", VoteStrip).votes) == 5
        rows = table_rows(app, "#query-chunks")
        assert len(rows) == 5 and [r[1] for r in rows[:2]] == ["0:00", "0:01"]
        assert abs(sum(float(x) for x in rows[0][3:]) - 1.0) < 0.02
        # now a URL from a local server, typed after / and Escape-free focus moves
        await pilot.press("slash")
        assert app.focused is source
        source.value = ""
        await pilot.press(*f"{base}/tui%20tone.mp3", "enter")
        await until(pilot, lambda: not pane.running and len(pane.recent) == 2, timeout=60)
        assert app.query_one("#query-recent", OptionList).option_count == 2
        assert pane.recent[0][1].title == "tui tone"
        assert len(table_rows(app, "#query-chunks")) == 4


@sync
async def test_query_without_model_says_so(tmp_path: Path) -> None:
    app = make_app(tiny_settings(None, tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4", "slash", *"x.mp3", "enter")
        assert "No model yet" in text_of(app, "#query-status")


# ---------------------------------------------------------------------------------------- shell


@sync
async def test_escape_leaves_input_then_digits_switch_panes(tmp_path: Path) -> None:
    app = make_app(tiny_settings(None, tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4", "slash")
        assert isinstance(app.focused, Input)
        await pilot.press("1", "q")
        assert app.query_one("#query-source", Input).value == "1q"
        assert app.query_one("#panes", TabbedContent).active == "query"
        await pilot.press("escape", "1")
        assert app.query_one("#panes", TabbedContent).active == "dataset"
        # 4 and / back to back (tmux send-keys, a fast typist): the tab switch that 4 set off must
        # not take the focus from the box once it is done, nor put it back there after Escape
        app.action_show_pane("query")
        await app.query_one("#query-pane").run_action("focus_source")
        await pilot.pause()
        assert isinstance(app.focused, Input)
        app.action_leave_input()
        await pilot.pause()
        assert app.query_one("#panes", TabbedContent).active == "query"
        assert not isinstance(app.focused, Input)
        await pilot.click("#--content-tab-training")  # a tab chosen with the mouse gets the focus too
        await pilot.pause()
        assert app.query_one("#panes", TabbedContent).active == "training"
        assert app.focused is not None and app.query_one("#training-pane") in app.focused.ancestors
        await pilot.press("q")
        await until(pilot, lambda: app._exit, timeout=5)


@sync
async def test_every_pane_action_is_in_the_palette(dataset: Path, tmp_path: Path) -> None:
    app = make_app(tiny_settings(dataset, tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.dataset is not None)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for pane in ("Dataset", "Extraction", "Training", "Query"):
            assert f"Show {pane}" in titles
        assert {"Dataset: Rescan", "Extraction: Start", "Extraction: Cancel", "Training: Start"} <= titles
        assert {"Training: Stop", "Query: URL/path", "Query: Model"} <= titles
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"Extraction: Start")
        await pilot.pause(0.5)
        await pilot.press("enter")
        pane = app.query_one("#extraction-pane")
        await until(pilot, lambda: app.query_one("#panes", TabbedContent).active == "extraction")
        await until(pilot, lambda: not pane.running and "Done" in text_of(app, "#extraction-status"))


@sync
async def test_header_device_is_detected_off_the_ui_thread(tmp_path: Path) -> None:
    app = GenreApp(tiny_settings(None, tmp_path / "ws"), load_models=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.query_one(InfoBar).device != "", timeout=60)
        assert app.query_one(InfoBar).device.startswith(("CPU", "CUDA · "))
