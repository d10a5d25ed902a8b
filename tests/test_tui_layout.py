"""The TUI at 80x24 (the size an SSH session opens with) and its plumbing, with fixed content: what
the panes show must be whole and unambiguous, and a job pane must end every job the same way.

Content is fed to the panes as the engine sends it (events, results), so these tests need no audio.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.widget import Widget
from textual.widgets import DataTable, Input

from genre_erkennung.core import events as ev
from genre_erkennung.core.config import Settings
from genre_erkennung.core.errors import GenreError
from genre_erkennung.core.predict import ChunkResult, SongResult, Verdict
from genre_erkennung.core.workspace import Workspace
from genre_erkennung.tui.app import GenreApp
from genre_erkennung.tui.panes.base import EngineEvent, JobPane
from genre_erkennung.tui.widgets.votestrip import abbreviations

SMALL = (80, 24)
#: Five genres, one with a comma in its folder name and sharing its first letters with another.
GENRES = ["ambient", "electronic", "jazz", "jazz, smooth", "rock"]


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


async def until(pilot: Any, condition: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        await pilot.pause(0.02)
    await pilot.pause()


def small_app(tmp_path: Path) -> GenreApp:
    return GenreApp(
        Settings(), workspace=Workspace(tmp_path / "ws"), device="CPU", scan_on_mount=False, load_models=False
    )


def shown(widget: Widget) -> str:
    """What of the widget is on the screen now, border included, one string per row: only the part
    its containers do not clip (a two-line status in a one-line row shows one line)."""
    where = widget.screen.find_widget(widget)
    visible = where.region.intersection(where.clip)
    crop = visible.translate(-where.region.offset)
    return "\n".join(strip.text for strip in widget.render_lines(crop))


def whole(text: str, widget: Widget) -> bool:
    """Whether all of `text` is on screen in the widget (wherever its lines wrap)."""
    return "".join(text.split()) in "".join(shown(widget).split())


def song(title: str, votes: list[str]) -> SongResult:
    chunks = []
    for i, genre in enumerate(votes):
        probs = {g: 0.04 for g in GENRES}
        probs[genre] = 0.84
        chunks.append(ChunkResult(i, 30.0 * i, 30.0 * (i + 1), genre, probs))
    ranking = [(g, 0.84 if g == votes[0] else 0.04) for g in GENRES]
    return SongResult(title, title, title, 30.0 * len(votes), chunks, Verdict(votes[0], 1.0, 8, 8, ranking))


LONG_ERROR = (
    "3 of 10 songs have no features yet: run `genre extract --dataset /music/genres --workspace "
    "/home/ada/.local/share/genre-erkennung`, then train again"
)


# ---------------------------------------------------------------------------------------- 80x24


@sync
async def test_slash_focuses_the_query_box_on_the_first_visit(tmp_path: Path) -> None:
    """The footer says `/ URL/path`: pressed on arrival it must focus the box, not be typed into it."""
    app = small_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("4", "slash", *"http://x")
        box = app.query_one("#query-source", Input)
        assert app.focused is box
        assert box.value == "http://x"


@sync
async def test_chunk_table_shows_five_genres_whole(tmp_path: Path) -> None:
    app = small_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("4")
        app.query_one("#query-pane").show_results(GENRES, [song("Garage Riff", ["rock"] * 8)])
        await pilot.pause()
        table = app.query_one("#query-chunks", DataTable)
        assert table.max_scroll_x == 0, "a probability column is cut off at 80 columns"
        headers = [str(c.label) for c in table.columns.values()][3:]
        assert len(set(headers)) == len(GENRES)  # 'jazz' and 'jazz, smooth' get different headers
        header, first = shown(table).splitlines()[1:3]  # under the border
        assert header.split()[-2] == "rock" and first.split()[-2] == "0.84"  # the last genre, on screen


@sync
async def test_genre_with_a_comma_stays_one_name_in_the_legend(tmp_path: Path) -> None:
    app = small_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("4")
        app.query_one("#query-pane").show_results(GENRES, [song("Garage Riff", ["jazz, smooth"] * 3)])
        await pilot.pause()
        legend = shown(app.query_one("#query-strip")).splitlines()[2]
        assert '■ "jazz, smooth"' in legend and "■ jazz " in legend


def test_abbreviations_never_repeat() -> None:
    assert abbreviations(["electronic", "jazz", "jazz, smooth"], 4) == ["elec", "jaz1", "jaz2"]
    assert abbreviations(["ambient", "rock"], 3) == ["amb", "roc"]
    assert abbreviations(["ab1", "ab", "ab"], 3) == ["1", "2", "3"]  # numbering would clash: plain numbers


@sync
async def test_chart_legend_shows_at_80x24(tmp_path: Path) -> None:
    app = small_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("3")
        pane = app.query_one("#training-pane")
        for i in range(1, 6):
            pane.apply(ev.EpochEnd(i, 5, 1.0 / i, 0.2 * i, 1.1 / i, 0.15 * i, 1.5, 210.0, best=True))
        app.query_one("#train-chart").replot()
        await pilot.pause()
        chart = shown(app.query_one("#train-chart"))
        assert all(f"━ {label}" in chart for label in ("loss", "val loss", "acc", "val acc")), chart


@sync
async def test_training_status_is_shown_whole(tmp_path: Path) -> None:
    app = small_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("3")
        app.query_one("#training-pane").apply(ev.Message(LONG_ERROR, level="warning"))
        await pilot.pause()
        assert whole(LONG_ERROR, app.query_one("#training-status"))


@sync
async def test_query_error_is_shown_whole(tmp_path: Path) -> None:
    app = small_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("4")
        error = "https://example.org/watch?v=abc: yt-dlp could not fetch it (HTTP Error 404: Not Found)"
        app.query_one("#query-pane").show_results(GENRES, [], [("https://example.org/watch?v=abc", error)])
        await pilot.pause()
        assert whole(f"0 songs classified; 1 failed: {error}", app.query_one("#query-status"))


# ---------------------------------------------------------------------------------------- job panes


@sync
async def test_a_job_ends_in_done_or_in_the_one_error_path(tmp_path: Path) -> None:
    app = small_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("2")
        pane = app.query_one("#extraction-pane")
        results: list[object] = []
        release = threading.Event()

        def work(report: ev.Reporter, cancel: threading.Event) -> str:
            release.wait(10)
            return "fine"

        assert pane.start_job(work, results.append, "Working…")
        assert pane.running and app.query_one("#extraction-pane").check_action("start", ()) is None
        assert not pane.start_job(work, results.append, "again")  # one job at a time
        release.set()
        await until(pilot, lambda: not pane.running)
        assert results == ["fine"]
        assert pane.check_action("start", ()) is True and pane.check_action("cancel", ()) is None

        def fails(report: ev.Reporter, cancel: threading.Event) -> str:
            raise GenreError(LONG_ERROR)

        pane.start_job(fails, results.append, "Working…")
        await until(pilot, lambda: not pane.running)
        assert results == ["fine"]
        assert whole(f"error: {LONG_ERROR}", app.query_one("#extraction-status"))

        def breaks(report: ev.Reporter, cancel: threading.Event) -> str:
            raise ZeroDivisionError("division by zero")

        pane.start_job(breaks, results.append, "Working…")
        await until(pilot, lambda: not pane.running)
        assert "unexpected ZeroDivisionError: division by zero" in shown(app.query_one("#extraction-status"))


class _Probe(JobPane):
    """A job pane that records what reaches `apply`."""

    TITLE = PANE_ID = "probe"

    def __init__(self) -> None:
        super().__init__()
        self.applied: list[ev.Event] = []

    def apply(self, event: ev.Event) -> None:
        self.applied.append(event)


class _Host(App[None]):
    def compose(self) -> ComposeResult:
        yield _Probe()


@sync
async def test_progress_floods_are_merged_and_counted_events_are_not() -> None:
    app = _Host()
    async with app.run_test() as pilot:
        pane = app.query_one(_Probe)
        for i in range(500):  # queued faster than the pane handles them, like a fast download
            pane.post_message(EngineEvent(ev.DownloadProgress("https://a", i * 1000, 500_000)))
        pane.post_message(EngineEvent(ev.DownloadProgress("https://b", 1, None)))
        for i in range(50):
            pane.post_message(EngineEvent(ev.SongDone(f"song {i}", 1, 30.0)))
            pane.post_message(EngineEvent(ev.ExtractProgress(i, 0, 50, 30.0 * i, 1.0, 30.0, None)))
        await until(pilot, lambda: len(pane.applied) >= 102)
        downloads = [e for e in pane.applied if isinstance(e, ev.DownloadProgress)]
        assert (
            len(downloads) < 20 and downloads[-2].downloaded == 499_000 and downloads[-1].url == "https://b"
        )
        assert [e.path for e in pane.applied if isinstance(e, ev.SongDone)] == [
            f"song {i}" for i in range(50)
        ]
        assert sum(isinstance(e, ev.ExtractProgress) for e in pane.applied) == 50  # one after every song
