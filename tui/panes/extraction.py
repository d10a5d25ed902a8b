"""Pane 2, Extraction: the engine (local processes, or Ray tasks at an address), start / cancel,
overall progress with ETA and realtime factor, what each worker is doing, and the failures with
their reasons. Songs already in the store count as done.

The engine row sets the session's `cluster.engine` and `cluster.address` (the config's
`[cluster]` is what it starts with), so the pane drives the same `core.extract.extract` as
`genre extract --engine ray --address ADDR`, and the Query pane's folder queries follow it."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label, ProgressBar, Select, Static

from genre_erkennung.core import config as config_mod
from genre_erkennung.core import events as ev
from genre_erkennung.core.config import ClusterSettings
from genre_erkennung.core.dataset import Dataset

from ..common import clock
from .base import JobPane, plural, relative, tone
from .messages import FeaturesChanged

#: What the address box says when it is empty.
HERE = "empty: start a Ray instance on this machine"


def _engines() -> tuple[str, ...]:
    field = {f.name: f for f in dataclasses.fields(ClusterSettings)}["engine"]
    return tuple(field.metadata.get("choices") or ())


class ExtractionPane(JobPane):
    TITLE = "Extraction"
    PANE_ID = "extraction"
    START_ACTIONS = frozenset({"start", "retry"})
    STOPPING = "Cancelling: finishing the songs in progress…"

    DEFAULT_CSS = """
    #extract-engine-row { height: 1; padding: 0 1; }
    #extract-engine-row Label { color: $text-muted; padding: 0 1 0 0; }
    #extract-engine { width: 12; }
    #extract-engine-row #extract-address-label { padding: 0 1 0 2; }
    #extract-address { width: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "start", "Start", tooltip="Extract the features of every song not yet in the store"),
        Binding("c", "cancel", "Cancel", tooltip="Stop after the songs being worked on"),
        Binding("f", "retry", "Retry failed", tooltip="Extract again, including songs that failed before"),
        Binding("e", "focus_engine", "Engine", tooltip="Run here (local) or on a Ray cluster (ray)"),
    ]

    dataset: reactive[Dataset | None] = reactive(None)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.total = 0
        self.done = 0
        self.cached = 0
        self.failed = 0
        self._working: dict[int, str] = {}  # worker slot -> path it works on
        self._cluster = ClusterSettings()  # the running (or last) job's engine

    def compose(self) -> ComposeResult:
        cs = self.genre_app.settings.cluster
        with Horizontal(id="extract-engine-row"):
            yield Label("engine")
            yield Select(
                [(e, e) for e in _engines()],
                value=cs.engine,
                allow_blank=False,
                compact=True,
                id="extract-engine",
            )
            yield Label("Ray address", id="extract-address-label")
            yield Input(
                cs.address, placeholder=HERE, compact=True, id="extract-address", disabled=cs.engine != "ray"
            )
        yield Static("Scan a dataset first (Dataset tab).", id="extraction-status", classes="status")
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

    # ----------------------------------------------------------------- engine

    @on(Select.Changed, "#extract-engine")
    @on(Input.Changed, "#extract-address")
    def _engine_edited(self) -> None:
        """The row is the session's `[cluster]` choice: this pane's runs and the Query pane's
        folder queries use it (checked like a config value)."""
        engine = self.query_one("#extract-engine", Select).value
        address = self.query_one("#extract-address", Input)
        address.disabled = engine != "ray"
        settings = self.genre_app.settings
        config_mod.override(settings, "cluster.engine", engine)
        config_mod.override(settings, "cluster.address", address.value.strip())

    @on(Input.Submitted, "#extract-address")
    def _address_submitted(self) -> None:
        self.action_start()

    def action_focus_engine(self) -> None:
        self.query_one("#extract-engine", Select).focus()

    # ----------------------------------------------------------------- actions

    def action_start(self, retry_failed: bool = False) -> None:
        ds = self.dataset
        if ds is None:
            self.notify("Scan a dataset first (tab 1, r or o).", severity="warning")
            return
        settings = copy.deepcopy(self.genre_app.settings)  # later edits of the row do not reach it
        workspace = self.genre_app.workspace
        self._cluster = settings.cluster

        def work(report: ev.Reporter, cancel: Any) -> Any:
            from genre_erkennung.core.extract import extract

            return extract(ds.songs, settings, workspace, report, cancel, retry_failed=retry_failed)

        if self.start_job(work, self.finished, "Starting…"):
            self._reset()

    def action_retry(self) -> None:
        self.action_start(retry_failed=True)

    # ----------------------------------------------------------------- events

    def _reset(self) -> None:
        self.total = self.done = self.cached = self.failed = 0
        self._working.clear()
        workers = self.query_one("#extract-workers", DataTable)
        workers.clear()
        workers.border_title = "Ray tasks" if self._cluster.engine == "ray" else "Workers"
        self.query_one("#extract-failures", DataTable).clear()
        self.query_one("#extract-progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#extract-rate", Static).update("")

    def apply(self, event: ev.Event) -> None:
        bar = self.query_one("#extract-progress", ProgressBar)
        match event:
            case ev.JobStarted(total=total, seconds=seconds):
                self.total = total
                bar.update(total=max(total, 1), progress=0)
                self.status(f"Extracting {plural(total, 'song')} ({clock(seconds)} of audio){self._where()}…")
            case ev.SongStarted(path=path, worker=slot):
                self._working[slot] = path
                self._show_worker(slot, self._song_name(path))
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

    def _where(self) -> str:
        """Where the job runs, for the status line while Ray starts or is joined."""
        cs = self._cluster
        if cs.engine != "ray":
            return ""
        return f" on Ray at {cs.address}" if cs.address else " on a Ray instance started here"

    def _counts(self) -> None:
        parts = [f"{self.done + self.cached} of {self.total} done"]
        if self.cached:
            parts.append(f"{self.cached} already in the store")
        if self.failed:
            parts.append(f"{self.failed} failed")
        self.status(" · ".join(parts))

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
        self.status(text)
        self.post_message(FeaturesChanged())

    # ----------------------------------------------------------------- display

    def _song_name(self, path: str) -> str:
        root = self.dataset.root if self.dataset else None
        rel = relative(path, root)
        if rel is None:
            return self.genre_app.show_path(Path(path))
        parts = Path(rel).parts
        return str(Path(*parts[1:])) if len(parts) > 2 else rel  # drop train/ or test/

    def _idle(self, slot: int, path: str) -> None:
        """A worker finished `path` (events for songs no worker took carry slot 0: ignore them)."""
        if self._working.get(slot) == path:
            del self._working[slot]
            self._show_worker(slot, Text("idle", style="dim"))

    def _show_worker(self, slot: int, what: str | Text) -> None:
        table = self.query_one("#extract-workers", DataTable)
        key = str(slot)
        if key in table.rows:
            table.update_cell(key, "song", what, update_width=True)
        else:
            table.add_row(str(slot), what, key=key)

    def watch_dataset(self, ds: Dataset | None) -> None:
        """Between runs: how much of the dataset is already in the store."""
        if self.running:
            return
        if ds is None:
            self.status("Scan a dataset first (Dataset tab).")
            return
        usable = ds.usable()
        done = self.genre_app.store_view.extracted(usable)
        bar = self.query_one("#extract-progress", ProgressBar)
        bar.update(total=max(len(usable), 1), progress=done)
        self.status(
            f"{done} of {plural(len(usable), 'song')} already extracted"
            + ("" if done == len(usable) else " · s starts")
        )
