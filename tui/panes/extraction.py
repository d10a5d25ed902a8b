"""Pane 2, Extraction: start / cancel, overall progress with ETA and realtime factor, what each
worker is doing, and the failures with their reasons. Songs already in the store count as done."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import DataTable, ProgressBar, Static

from genre_erkennung.core import events as ev
from genre_erkennung.core.dataset import Dataset
from genre_erkennung.core.errors import GenreError

from .base import EngineEvent, JobDone, Pane, clock, plural, relative, tone


class ExtractionPane(Pane):
    TITLE = "Extraction"
    PANE_ID = "extraction"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "start", "Start", tooltip="Extract the features of every song not yet in the store"),
        Binding("c", "cancel", "Cancel", tooltip="Stop after the songs being worked on"),
        Binding("f", "retry", "Retry failed", tooltip="Extract again, including songs that failed before"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cancel: threading.Event | None = None
        self.total = 0
        self.done = 0
        self.cached = 0
        self.failed = 0
        self._working: dict[int, str] = {}  # worker slot -> path it works on

    def compose(self):
        yield Static("Scan a dataset first (Dataset tab).", id="extract-status")
        with Horizontal(id="extract-progress-row"):
            yield ProgressBar(total=None, show_eta=False, id="extract-progress")
            yield Static("", id="extract-rate")
        workers: DataTable[Any] = DataTable(id="extract-workers", cursor_type="none")
        workers.border_title = "Workers"
        yield workers
        failures: DataTable[Any] = DataTable(id="extract-failures", cursor_type="row")
        failures.border_title = "Failures"
        yield failures

    def on_mount(self) -> None:
        workers = self.query_one("#extract-workers", DataTable)
        workers.add_column("#", key="slot")
        workers.add_column("song", key="song")
        failures = self.query_one("#extract-failures", DataTable)
        failures.add_column("song", key="song")
        failures.add_column("reason", key="reason")

    def default_focus(self) -> Widget | None:
        return self.query_one("#extract-failures")

    @property
    def running(self) -> bool:
        return self.cancel is not None

    # ----------------------------------------------------------------- actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("start", "retry"):
            return None if self.running else True  # None: shown greyed out
        if action == "cancel":
            return True if self.running else None
        return True

    def action_start(self, retry_failed: bool = False) -> None:
        if self.running:
            self.notify("Extraction is already running.", severity="warning")
            return
        ds = self.genre_app.dataset
        if ds is None:
            self.notify("Scan a dataset first (tab 1, r or o).", severity="warning")
            return
        self.cancel = self.new_job()
        self._reset()
        self._status("Starting…")
        self.refresh_bindings()
        self._extract(ds, retry_failed, self.cancel)

    def action_retry(self) -> None:
        self.action_start(retry_failed=True)

    def action_cancel(self) -> None:
        if self.cancel is None:
            return
        self.cancel.set()
        self._status("Cancelling: finishing the songs in progress…")

    @work(thread=True, exclusive=True, group="extract", exit_on_error=False)
    def _extract(self, ds: Dataset, retry_failed: bool, cancel: threading.Event) -> None:
        app = self.genre_app
        try:
            from genre_erkennung.core.extract import extract

            result = extract(
                ds.songs,
                app.settings,
                app.workspace,
                self.reporter("extract"),
                cancel,
                retry_failed=retry_failed,
            )
            self.post_message(JobDone("extract", result))
        except GenreError as exc:
            self.post_message(JobDone("extract", error=str(exc)))
        except ImportError as exc:  # the feature backend is not importable
            self.post_message(JobDone("extract", error=f"feature backend unavailable ({exc})"))

    # ----------------------------------------------------------------- events

    def _reset(self) -> None:
        self.total = self.done = self.cached = self.failed = 0
        self._working.clear()
        self.query_one("#extract-workers", DataTable).clear()
        self.query_one("#extract-failures", DataTable).clear()
        self.query_one("#extract-progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#extract-rate", Static).update("")

    def on_engine_event(self, message: EngineEvent) -> None:
        message.stop()
        self.apply(message.event)

    def apply(self, event: ev.Event) -> None:
        """Show one engine event (also used by tests to drive the pane deterministically)."""
        bar = self.query_one("#extract-progress", ProgressBar)
        match event:
            case ev.JobStarted(total=total, seconds=seconds):
                self.total = total
                bar.update(total=max(total, 1), progress=0)
                self._status(f"Extracting {plural(total, 'song')} ({clock(seconds)} of audio)…")
            case ev.SongStarted(path=path, worker=slot):
                self._working[slot] = path
                self._worker(slot, self._song_name(path))
            case ev.SongDone(path=path, cached=cached, worker=slot):
                if cached:
                    self.cached += 1
                else:
                    self.done += 1
                self._idle(slot, path)
                bar.advance(1)
                self._counts()
            case ev.SongFailed(path=path, error=error, worker=slot):
                self.failed += 1
                bar.advance(1)
                self._idle(slot, path)
                table = self.query_one("#extract-failures", DataTable)
                table.add_row(self._song_name(path), Text(error, style=tone(self, "text-error")))
                self._counts()
            case ev.ExtractProgress(realtime_factor=rtf, eta=eta, audio_seconds=secs):
                eta_text = f" · ETA {clock(eta)}" if eta is not None else ""
                self.query_one("#extract-rate", Static).update(
                    f"{rtf:.0f}× realtime{eta_text} · {clock(secs)} decoded"
                )
            case ev.Message(text=text, level=level):
                self.notify(text, severity="warning" if level == "warning" else "information")
            case _:
                pass

    def _counts(self) -> None:
        parts = [f"{self.done + self.cached} of {self.total} done"]
        if self.cached:
            parts.append(f"{self.cached} already in the store")
        if self.failed:
            parts.append(f"{self.failed} failed")
        self._status(" · ".join(parts))

    def on_job_done(self, message: JobDone) -> None:
        message.stop()
        self.cancel = None
        self.refresh_bindings()
        if message.error:
            self._status(Text(f"error: {message.error}", style=tone(self, "text-error")))
            self.notify(message.error, title="extraction", severity="error")
            return
        self.finished(message.result)

    def finished(self, result: Any) -> None:
        """Summarise an ExtractResult."""
        table = self.query_one("#extract-workers", DataTable)
        table.clear()
        failed = len(result.failed)
        words = "Cancelled" if result.cancelled else "Done"
        text = Text(
            f"{words}: {result.done} extracted, {result.cached} already stored, {failed} failed "
            f"({clock(result.audio_seconds)} of audio in {result.elapsed:.1f} s)",
            style=tone(self, "text-warning") if result.cancelled or failed else tone(self, "text-success"),
        )
        self._status(text)
        self.genre_app.features_changed()

    def on_worker_state_changed(self, event: Any) -> None:
        worker = event.worker
        if worker.group == "extract" and worker.error is not None:
            self.cancel = None
            self.refresh_bindings()
            self._status(Text(f"error: {worker.error}", style=tone(self, "text-error")))

    # ----------------------------------------------------------------- display

    def _status(self, text: str | Text) -> None:
        self.query_one("#extract-status", Static).update(text)

    def _song_name(self, path: str) -> str:
        root = self.genre_app.dataset.root if self.genre_app.dataset else None
        rel = relative(path, root)
        if rel is None:
            return self.genre_app.show_path(Path(path))
        parts = Path(rel).parts
        return str(Path(*parts[1:])) if len(parts) > 2 else rel  # drop train/ or test/

    def _idle(self, slot: int, path: str) -> None:
        """A worker finished `path` (events for songs no worker took carry slot 0: ignore them)."""
        if self._working.get(slot) == path:
            del self._working[slot]
            self._worker(slot, Text("idle", style="dim"))

    def _worker(self, slot: int, what: str | Text) -> None:
        table = self.query_one("#extract-workers", DataTable)
        key = str(slot)
        if key in table.rows:
            table.update_cell(key, "song", what, update_width=True)
        else:
            table.add_row(str(slot), what, key=key)

    def dataset_changed(self, ds: Dataset | None) -> None:
        """Show how much of the dataset is already in the store, before any run."""
        if self.running:
            return
        if ds is None:
            self._status("Scan a dataset first (Dataset tab).")
            return
        usable = ds.usable()
        done = sum(1 for s in usable if self.genre_app.feature_state(s).plain == "extracted")
        bar = self.query_one("#extract-progress", ProgressBar)
        bar.update(total=max(len(usable), 1), progress=done)
        self._status(
            f"{done} of {plural(len(usable), 'song')} already extracted"
            + ("" if done == len(usable) else " · s starts")
        )
