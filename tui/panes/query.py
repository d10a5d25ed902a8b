"""Pane 4, Query: a URL or a path in, download progress, then per song a vote strip, the per-chunk
probabilities and the verdict in large type; recent results stay listed.

A folder goes to Ray when the session's engine is ray (the Extraction pane's engine row, or the
config's `[cluster]`), as `genre query FOLDER --engine ray` does; a file or a URL is one song and
always runs here, where Ray's start-up (seconds) would cost more than the song."""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label, OptionList, ProgressBar, Select, Static
from textual.widgets.option_list import Option

from genre_erkennung.core import events as ev

from ..common import clock
from ..widgets.bigtext import BigText
from ..widgets.votestrip import Vote, VoteStrip, abbreviations, chip
from .base import JobPane, plural, tone
from .messages import ModelChosen

if TYPE_CHECKING:
    from genre_erkennung.core.registry import LoadedModel, ModelInfo


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class QueryPane(JobPane):
    TITLE = "Query"
    PANE_ID = "query"
    START_ACTIONS = frozenset()
    STOPPING = "Cancelling…"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "slash", "focus_source", "URL/path", key_display="/", tooltip="Type a URL, a file or a folder"
        ),
        Binding("m", "focus_model", "Model", tooltip="Choose the model that answers"),
        Binding("c", "cancel", "Cancel", tooltip="Stop the running query"),
    ]

    models: reactive[tuple[ModelInfo, ...]] = reactive(())
    model_name: reactive[str | None] = reactive(None)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recent: list[tuple[list[str], Any]] = []  # (model genres, predict.SongResult), newest first
        self._live: list[Vote] = []
        self._live_source = ""
        self._live_genres: list[str] = []
        self._loaded: dict[str, LoadedModel] = {}  # loaded once per name, until the models change
        self._loaded_lock = threading.Lock()

    def compose(self) -> ComposeResult:
        with Horizontal(id="query-bar"):
            yield Input(placeholder="URL, file or folder; Enter runs", compact=True, id="query-source")
            yield Label("model", id="query-model-label")
            yield Select([], prompt="no models", compact=True, id="query-model")
        with Horizontal(id="query-progress-row"):
            yield Static(
                "/ types a URL, a file or a folder; Enter runs it, Escape leaves the box.",
                id="query-status",
                classes="status",
            )
            yield ProgressBar(total=None, show_eta=False, id="query-progress", classes="-hidden")
        with Horizontal(id="query-verdict"):
            yield BigText(id="query-big")
            yield Static("", id="query-verdict-text")
        yield VoteStrip(id="query-strip")
        with Horizontal(id="query-lower"):
            chunks: DataTable[Any] = DataTable(id="query-chunks", cursor_type="row")
            chunks.border_title = "Chunks"
            yield chunks
            recent = OptionList(id="query-recent")
            recent.border_title = "Recent"
            yield recent

    def default_focus(self) -> Widget | None:
        """Never the source box: `/` gets there (as the footer says), so a '/' is never typed into
        it by accident and keys 1-4 keep switching panes."""
        return self.query_one("#query-recent")

    # ----------------------------------------------------------------- models

    def watch_models(self, models: tuple[ModelInfo, ...]) -> None:
        with self._loaded_lock:
            self._loaded.clear()  # a name may now be another model (removed, trained again)
        select = self.query_one("#query-model", Select)
        usable = [m.name for m in models if m.error is None]
        with self.prevent(Select.Changed):
            select.set_options([(name, name) for name in reversed(usable)])
            if self.model_name in usable:
                select.value = self.model_name

    def watch_model_name(self, name: str | None) -> None:
        select = self.query_one("#query-model", Select)
        usable = {m.name for m in self.models if m.error is None}  # the names the list offers
        if name in usable and name != select.value:
            with self.prevent(Select.Changed):
                select.value = name

    @on(Select.Changed, "#query-model")
    def _model_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.post_message(ModelChosen(event.value))

    def _load(self, name: str) -> LoadedModel:
        """registry.load, once per name (call from the job thread: it imports torch)."""
        from genre_erkennung.core import registry

        with self._loaded_lock:
            if name not in self._loaded:
                self._loaded[name] = registry.load(self.genre_app.workspace, name)
            return self._loaded[name]

    # ----------------------------------------------------------------- actions

    def action_focus_source(self) -> None:
        self.query_one("#query-source", Input).focus()

    def action_focus_model(self) -> None:
        self.query_one("#query-model", Select).focus()

    @on(Input.Submitted, "#query-source")
    def _submitted(self, event: Input.Submitted) -> None:
        self.start(event.value.strip())

    def start(self, source: str) -> None:
        if not source:
            return
        name = self.model_name
        if not name:
            self.notify("No model yet: train one on the Training tab (3).", severity="warning")
            self.status(Text("No model yet: train one first (tab 3).", style=tone(self, "text-warning")))
            return
        app = self.genre_app
        settings = copy.deepcopy(app.settings)
        cs = settings.cluster
        on_ray = cs.engine == "ray" and Path(source).expanduser().is_dir()
        where = (
            (f" on Ray at {cs.address}" if cs.address else " on a Ray instance started here")
            if on_ray
            else ""
        )

        def work(report: ev.Reporter, cancel: Any) -> tuple[list[str], Any]:
            from genre_erkennung.core import predict

            loaded = self._load(name)
            report(ev.Message(f"Classifying {source} with {name}{where}…"))
            args = ([source], loaded, settings, app.workspace, settings.query.max_items, report, cancel)
            if on_ray:
                from genre_erkennung.core.cluster import query_on_ray

                return list(loaded.genres), query_on_ray(*args)
            return list(loaded.genres), predict.query(*args)

        if self.start_job(work, self._answered, f"Loading model {name}…"):
            self._live, self._live_source = [], ""
            bar = self.query_one("#query-progress", ProgressBar)
            bar.update(total=None, progress=0)
            bar.add_class("-hidden")

    # ----------------------------------------------------------------- events

    def apply(self, event: ev.Event) -> None:
        bar = self.query_one("#query-progress", ProgressBar)
        match event:
            case ev.DownloadProgress(downloaded=got, total=total):
                bar.remove_class("-hidden")
                if total:
                    bar.update(total=total, progress=got)
                    self.status(f"Downloading: {_mb(got)} of {_mb(total)}")
                else:
                    self.status(f"Downloading: {_mb(got)}")
            case ev.Downloaded(title=title, cached=cached):
                if bar.total is not None:
                    bar.update(progress=bar.total)
                self.status(f"{'In the download cache' if cached else 'Downloaded'}: {title}; classifying…")
            case ev.ChunkVote() as v:
                if v.source != self._live_source:
                    self._live_source, self._live = v.source, []
                    self._live_genres = list(v.probabilities)
                    self._clear_chunks()
                self._live.append(Vote(v.index, v.start, v.end, v.genre))
                self.query_one("#query-strip", VoteStrip).set_votes(self._live_genres, self._live)
                self._chunk_row(self._live_genres, v.index, v.start, v.end, v.genre, v.probabilities)
            case ev.SongFailed(error=error):
                self.status(Text(error, style=tone(self, "text-error")))
                self.notify(error, title="query", severity="error")
            case ev.Message(text=text):
                self.status(text)
            case _:
                pass

    def _answered(self, answer: tuple[list[str], Any]) -> None:
        genres, result = answer
        self.show_results(genres, result.results, result.errors)
        if result.results and isinstance(self.app.focused, Input):
            self.query_one("#query-recent").focus()  # arrows now walk through the songs

    # ----------------------------------------------------------------- display

    def show_results(
        self, genres: list[str], songs: list[Any], errors: list[tuple[str, str]] | None = None
    ) -> None:
        """Add predict.SongResults to the recent list and show the first one."""
        for song in reversed(songs):
            self.recent.insert(0, (genres, song))
        self._fill_recent()
        if songs:
            self.show_song(genres, songs[0])
            self.query_one("#query-recent", OptionList).highlighted = 0
        parts = [f"{plural(len(songs), 'song')} classified"]
        if errors:
            parts.append(f"{len(errors)} failed: {errors[0][1]}")
        style = tone(self, "text-error") if errors else ""
        self.status(Text("; ".join(parts), style=style))

    def show_song(self, genres: list[str], song: Any) -> None:
        v = song.verdict
        mean_p = dict(v.ranking).get(v.majority, 0.0)
        uncertain = getattr(v, "uncertain", False)  # below query.min_confidence
        self.query_one("#query-big", BigText).text = "uncertain" if uncertain else v.majority
        text = Text.assemble(
            ("— ", "dim"),
            (f"perhaps {v.majority}: " if uncertain else "", "bold"),
            (f"{v.votes} of {v.chunks} chunks", "bold"),
            f", mean p {mean_p:.2f}\n",
            (song.title, "bold"),
            (f"  {clock(song.duration)}", "dim"),
        )
        self.query_one("#query-verdict-text", Static).update(text)
        votes = [Vote(c.index, c.start, c.end, c.genre) for c in song.chunks]
        self.query_one("#query-strip", VoteStrip).set_votes(genres, votes)
        self._clear_chunks(genres)
        for c in song.chunks:
            self._chunk_row(genres, c.index, c.start, c.end, c.genre, c.probabilities)

    def _clear_chunks(self, genres: list[str] | None = None) -> None:
        table = self.query_one("#query-chunks", DataTable)
        table.clear(columns=True)
        table.add_column("#", key="index")
        table.add_column("from", key="time")
        names = genres or self._live_genres
        table.add_column("vote", key="vote", width=min(8, max((len(g) for g in names), default=4)))
        # four columns fit "0.85"; the header wears the genre's colour, as in the legend above
        for g, short in zip(names, abbreviations(names, 4), strict=True):
            table.add_column(Text(short, style=chip(names, g)), key=f"p:{g}", width=4)

    def _chunk_row(
        self, genres: list[str], index: int, start: float, end: float, genre: str, probs: dict[str, float]
    ) -> None:
        table = self.query_one("#query-chunks", DataTable)
        cells: list[Any] = [str(index + 1), clock(start)]
        cells.append(Text(genre[:8], style=chip(genres, genre)))
        for g in genres:
            p = probs.get(g, 0.0)
            cells.append(Text(f"{p:.2f}", style="bold" if g == genre else "dim", justify="right"))
        table.add_row(*cells)

    def _fill_recent(self) -> None:
        recent = self.query_one("#query-recent", OptionList)
        recent.clear_options()
        for i, (genres, song) in enumerate(self.recent):
            v = song.verdict
            label = Text.assemble(
                (f"{v.majority} {v.share:.0%}", chip(genres, v.majority)),
                f" {song.title}",
            )
            recent.add_option(Option(label, id=str(i)))

    @on(OptionList.OptionHighlighted, "#query-recent")
    def _recent_chosen(self, event: OptionList.OptionHighlighted) -> None:
        index = event.option_index
        if 0 <= index < len(self.recent):
            self.show_song(*self.recent[index])
