"""Pane 1, Dataset: the songs as a tree, per-genre counts and time, problems, one song's details."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static, Tree

from genre_erkennung.core import dataset as ds_mod
from genre_erkennung.core import events as ev
from genre_erkennung.core.dataset import Dataset, Song
from genre_erkennung.core.workspace import DEMO_SECONDS, DEMO_SONGS_PER_GENRE, Workspace

from ..common import clock
from .base import JobPane, plural, relative, tone
from .features import FeatureState
from .messages import DatasetScanned

#: The demo the d key makes: `genre demo`'s default size (tests shrink it).
DEMO_SIZE = (DEMO_SONGS_PER_GENRE, DEMO_SECONDS)


def _length(song: Song) -> str:
    """A song's duration; '–' where ffmpeg could not tell it."""
    return clock(song.duration) if song.duration is not None else "–"


def demo_root(workspace: Workspace) -> Path:
    """Where the d key puts the demo dataset: where `genre demo` puts one of that size."""
    return workspace.demo_dataset(*DEMO_SIZE)


class DatasetPane(JobPane):
    TITLE = "Dataset"
    PANE_ID = "dataset"
    START_ACTIONS = frozenset({"rescan", "demo"})

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "rescan", "Rescan", tooltip="Scan the dataset folder again"),
        Binding("o", "open", "Open folder", tooltip="Type the path of a dataset root and scan it"),
        Binding("d", "demo", "Demo data", tooltip="Generate the demo dataset in the workspace and open it"),
    ]

    dataset: reactive[Dataset | None] = reactive(None)
    """The app's dataset (bound by the app): what the tree, table and problem list show."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._demo_total = self._demo_done = 0

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="dataset root (ROOT/train/<genre>/…, ROOT/test/<genre>/…), Enter scans",
            id="dataset-root",
            classes="-hidden",
        )
        hint = "No dataset yet: o opens a folder, d makes the demo dataset."
        yield Static(hint, id="dataset-status", classes="status")
        with Horizontal(id="dataset-body"):
            tree: Tree[Any] = Tree("dataset", id="dataset-tree")
            tree.show_root = False
            tree.border_title = "Songs"
            yield tree
            with Vertical(id="dataset-side"):
                table: DataTable[Any] = DataTable(id="dataset-summary", cursor_type="none")
                table.border_title = "Genres"
                yield table
                detail = Static("Move through the tree to see a song.", id="dataset-detail")
                detail.border_title = "Selected"
                yield detail
                problems = VerticalScroll(Static("", id="dataset-problems"), id="dataset-problems-box")
                problems.border_title = "Problems"
                yield problems

    def on_mount(self) -> None:
        app = self.genre_app
        if app.dataset_root is not None and app.scan_on_mount:
            self.scan(app.dataset_root)

    def default_focus(self) -> Widget | None:
        root_input = self.query_one("#dataset-root", Input)
        return self.query_one("#dataset-tree") if root_input.has_class("-hidden") else root_input

    # ----------------------------------------------------------------- actions

    def action_rescan(self) -> None:
        root = self.genre_app.dataset_root
        if root is None:
            self.action_open()
            return
        self.scan(root)

    def action_open(self) -> None:
        box = self.query_one("#dataset-root", Input)
        box.remove_class("-hidden")
        if not box.value and self.genre_app.dataset_root is not None:
            box.value = str(self.genre_app.dataset_root)
        self.call_after_refresh(box.focus)  # focusable once the stylesheet shows it

    def action_demo(self) -> None:
        from genre_erkennung.core import demo

        dest, size = demo_root(self.genre_app.workspace), DEMO_SIZE
        self._demo_total = self._demo_done = 0

        def work(report: ev.Reporter, cancel: Any) -> Path:
            return demo.generate(dest, *size, report=report, cancel=cancel).root

        self.start_job(work, self.scan, f"Generating the demo dataset in {self.genre_app.show_path(dest)}…")

    @on(Input.Submitted, "#dataset-root")
    def _root_entered(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        root = Path(text).expanduser().absolute()
        event.input.add_class("-hidden")
        self.query_one("#dataset-tree").focus()
        self.scan(root)

    def leave_input(self) -> bool:
        """Escape: close the path box (returns whether it was open)."""
        box = self.query_one("#dataset-root", Input)
        if box.has_class("-hidden"):
            return False
        box.add_class("-hidden")
        self.query_one("#dataset-tree").focus()
        return True

    # ----------------------------------------------------------------- work

    def scan(self, root: Path) -> None:
        """Scan `root` as every CLI command does (core's one scan), then tell the app."""
        app = self.genre_app

        def work(_report: ev.Reporter, _cancel: Any) -> Dataset:
            return ds_mod.scan_dataset(root, app.settings, app.workspace)

        def done(ds: Dataset) -> None:
            self.post_message(DatasetScanned(ds))

        self.start_job(work, done, f"Scanning {app.show_path(root)}…")

    def apply(self, event: ev.Event) -> None:
        if isinstance(event, ev.JobStarted):
            self._demo_total, self._demo_done = event.total, 0
        elif isinstance(event, ev.SongDone):
            self._demo_done += 1
            self.status(f"Generating the demo dataset: {self._demo_done} of {self._demo_total} songs…")

    # ----------------------------------------------------------------- display

    def watch_dataset(self, ds: Dataset | None) -> None:
        """Fill the tree, the table and the problem list."""
        if ds is None:
            return
        usable = ds.usable()
        seconds = sum(s.duration or 0.0 for s in usable)
        bad = len(ds.problems)
        songs, genres = plural(len(usable), "song"), plural(len(ds.genres), "genre")
        status = Text.assemble(
            f"{songs} in {genres}, {clock(seconds)} of audio",
            ("  ·  ", ""),
            (plural(bad, "problem"), tone(self, "text-warning") if bad else tone(self, "text-success")),
        )
        self.status(status)
        self._fill_tree(ds)
        self._fill_summary(ds)
        self._fill_problems(ds)
        self.query_one("#dataset-detail", Static).update("Move through the tree to see a song.")

    def _fill_tree(self, ds: Dataset) -> None:
        tree: Tree[Any] = self.query_one("#dataset-tree", Tree)
        tree.clear()
        error, muted = tone(self, "text-error"), "dim"
        by_split: dict[str, dict[str, list[Song]]] = defaultdict(lambda: defaultdict(list))
        for song in ds.songs:
            by_split[song.split][song.genre].append(song)
        for split in ds_mod.SPLITS:
            genres = by_split.get(split, {})
            songs = [s for g in genres.values() for s in g if s.ok]
            secs = sum(s.duration or 0.0 for s in songs)
            label = Text.assemble((split, "bold"), f"  {plural(len(songs), 'song')} · {clock(secs)}")
            split_node = tree.root.add(label, data=("split", split), expand=True)
            for genre in ds.genres:
                members = sorted(genres.get(genre, []), key=lambda s: s.path.name)
                if not members:
                    split_node.add_leaf(
                        Text(f"✗ {genre}: missing in {split}/", style=error), data=("missing", split, genre)
                    )
                    continue
                ok = [s for s in members if s.ok]
                secs = sum(s.duration or 0.0 for s in ok)
                label = Text.assemble(genre, (f"  {len(ok)} · {clock(secs)}", muted))
                if len(ok) < len(members):
                    label.append(f"  ✗ {len(members) - len(ok)} unreadable", style=error)
                genre_node = split_node.add(label, data=("genre", split, genre), expand=split == "train")
                for song in members:
                    if song.ok:
                        text = Text.assemble(song.path.name, (f"  {_length(song)}", muted))
                    else:
                        text = Text(f"✗ {song.path.name}  unreadable", style=error)
                    genre_node.add_leaf(text, data=("song", song))
        tree.cursor_line = 0

    def _fill_summary(self, ds: Dataset) -> None:
        table: DataTable[Any] = self.query_one("#dataset-summary", DataTable)
        table.clear(columns=True)
        table.add_column("genre", key="genre")
        for split in ds_mod.SPLITS:
            table.add_column(split, key=split)
        table.add_column("bad", key="failed")
        rows: dict[str, dict[str, ds_mod.GenreSummary]] = defaultdict(dict)
        for row in ds.summary():
            rows[row.genre][row.split] = row
        present = {(s.split, s.genre) for s in ds.songs}
        error = tone(self, "text-error")
        for genre in ds.genres:
            cells: list[Any] = [genre]
            failed = 0
            for split in ds_mod.SPLITS:
                r = rows[genre].get(split)
                if (split, genre) not in present or r is None:
                    cells.append(Text("missing", style=error))
                    continue
                failed += r.failed
                cells.append(f"{r.songs} · {clock(r.seconds)}")
            cells.append(Text(str(failed), style=error) if failed else "0")
            table.add_row(*cells, key=genre)

    def _fill_problems(self, ds: Dataset) -> None:
        box = self.query_one("#dataset-problems-box")
        box.border_title = f"Problems ({len(ds.problems)})"
        if not ds.problems:
            self.query_one("#dataset-problems", Static).update(Text("none", style=tone(self, "text-success")))
            return
        error, warning = tone(self, "text-error"), tone(self, "text-warning")
        lines = []
        for p in ds.problems:
            serious = p.kind in {"unreadable", "missing-split", "genre-one-split", "empty-genre"}
            where = relative(p.path, ds.root) if p.path else None
            text = f"{where}: {p.message}" if where else p.message
            lines.append(Text.assemble(("✗ " if serious else "! ", error if serious else warning), text))
        self.query_one("#dataset-problems", Static).update(Text("\n").join(lines))

    @on(Tree.NodeHighlighted, "#dataset-tree")
    def _highlighted(self, event: Tree.NodeHighlighted[Any]) -> None:
        data = event.node.data
        detail = self.query_one("#dataset-detail", Static)
        if not data or self.dataset is None:
            return
        ds = self.dataset
        if data[0] == "song":
            detail.update(self.describe_song(data[1]))
        elif data[0] == "genre":
            _, split, genre = data
            songs = [s for s in ds.songs if s.split == split and s.genre == genre]
            ok = [s for s in songs if s.ok]
            seconds = sum(s.duration or 0 for s in ok)
            detail.update(
                f"{genre} in {split}/: {plural(len(ok), 'song')}, {clock(seconds)}"
                + (f", {len(songs) - len(ok)} unreadable" if len(ok) < len(songs) else "")
            )
        elif data[0] == "missing":
            _, split, genre = data
            detail.update(
                Text(
                    f"{genre} has songs in the other split but no {split}/{genre}/ folder: "
                    "every genre needs both.",
                    style=tone(self, "text-error"),
                )
            )
        elif data[0] == "split":
            songs = ds.usable(data[1])
            detail.update(f"{data[1]}/: {plural(len(songs), 'song')} in {plural(len(ds.genres), 'genre')}")

    def describe_song(self, song: Song) -> Text:
        """Three lines: the path (inside the dataset root), format and duration, feature state."""
        app = self.genre_app
        where = relative(song.path, self.dataset.root if self.dataset else None) or app.show_path(song.path)
        out = Text(where, style="bold")
        if song.ok:
            rate = f"{song.sample_rate} Hz"
            out.append(f"\n{song.format} · {song.channels} ch · {rate} · {_length(song)}")
            out.append("\nfeatures ", style="dim")
            out.append(self._feature_text(song))
        else:
            out.append("\nunreadable: ", style=tone(self, "text-error"))
            out.append(song.error or "", style=tone(self, "text-error"))
        return out

    def _feature_text(self, song: Song) -> Text:
        features = self.genre_app.store_view
        state = features.state(song)
        if state is FeatureState.EXTRACTED:
            return Text(state.value, style=tone(self, "text-success"))
        if state is FeatureState.FAILED:
            return Text(f"{state.value}: {features.failure(song)}", style=tone(self, "text-error"))
        return Text(state.value, style="dim")
