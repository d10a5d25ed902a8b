"""`genre query`: classify files, folders or URLs and show how every chunk voted.

With --json, stdout holds exactly one JSON document whatever happens: results, a fatal error
(`"model": null` when no model was loaded) or an interruption (`"complete": false`, with what was
classified before it). Progress and messages go to stderr.
"""

from __future__ import annotations

import csv as csvlib
import io
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from genre_erkennung.core import events as ev
from genre_erkennung.core.errors import ConfigError, GenreError

from .. import common
from .extract import Address, Engine

if TYPE_CHECKING:
    from genre_erkennung.core.card import ModelCard
    from genre_erkennung.core.predict import QueryResult, SongResult
    from genre_erkennung.core.registry import LoadedModel

#: One colour per genre (by label index), readable on dark and light terminals.
PALETTE = [
    "red",
    "green",
    "blue",
    "magenta",
    "cyan",
    "yellow",
    "bright_red",
    "bright_green",
    "bright_blue",
    "bright_magenta",
    "bright_cyan",
    "dark_orange",
]


#: Failures listed one per line on stderr; --json and --csv hold every one.
SHOWN_ERRORS = 20

#: The columns of --csv before the genres' probabilities.
CSV_COLUMNS = ("model", "source", "title", "chunk", "start", "end", "genre")


def _counts(p: ev.QueryProgress) -> str:
    return f"{p.looked} of {p.total} files looked at: {p.classified} classified, {p.failed} failed"


def _mb(done: int, total: int | None) -> str:
    return f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"


class _Progress:
    """Downloads and file counts on stderr as they happen: a live line on a terminal, else (a log,
    a pipe) a plain line at most every few seconds; warnings as they come."""

    EVERY = 2.0  # seconds between plain progress lines

    def __init__(self, verbose: bool = False) -> None:
        self.live = common.err.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TextColumn("{task.fields[info]}", markup=False),
            console=common.err,
            disable=not self.live,
            transient=True,
        )
        self.downloads: dict[str, TaskID] = {}
        self.files: TaskID | None = None
        self.counts: ev.QueryProgress | None = None
        self.last_line = 0.0

        if verbose:  # the yt-dlp messages core.fetch keeps out of sight
            fetch_log = logging.getLogger("genre_erkennung.core.fetch")
            fetch_log.setLevel(logging.DEBUG)
            fetch_log.addHandler(logging.StreamHandler(sys.stderr))

    def __enter__(self) -> _Progress:
        self.progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.stop()

    def _print(self, text: Text) -> None:
        self.progress.console.print(text)

    def __call__(self, event: ev.Event) -> None:
        match event:
            case ev.DownloadProgress(url=url, downloaded=done, total=total):
                if url not in self.downloads:
                    self.downloads[url] = self.progress.add_task(f"downloading {url}", info="")
                self.progress.update(self.downloads[url], completed=done, total=total, info=_mb(done, total))
            case ev.Downloaded(url=url, path=path, title=title, cached=cached):
                if url in self.downloads:
                    self.progress.remove_task(self.downloads.pop(url))
                how = "already downloaded" if cached else "downloaded"
                self._print(Text(f"{how}: {title} -> {path}", style="dim"))
            case ev.QueryProgress() as counts:
                self.counts = counts
                if self.live:
                    if self.files is None:
                        self.files = self.progress.add_task("query", info="")
                    self.progress.update(
                        self.files, completed=counts.looked, total=counts.total, info=_counts(counts)
                    )
                elif counts.total > 1 and time.monotonic() - self.last_line >= self.EVERY:
                    self.last_line = time.monotonic()
                    self._print(Text(f"query: {_counts(counts)}", style="dim"))
            case ev.Message(text=text, level=level):
                warning = level == "warning"
                self._print(
                    Text(("warning: " if warning else "") + text, style="yellow" if warning else "dim")
                )
            case _:
                pass


def print_song(song: SongResult, genres: list[str]) -> None:
    colour = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(genres)}
    v = song.verdict
    mean_p = dict(v.ranking)[v.majority]
    head = Text.assemble(
        (f"{song.title}", "bold"),
        "  ",
        (f"{v.majority}", f"bold {colour[v.majority]}"),
        f" — {v.votes} of {v.chunks} chunks, mean p {mean_p:.2f}",
    )
    common.out.print(head)
    if v.uncertain:
        common.out.print(
            Text(
                f"Uncertain: perhaps {v.majority} (confidence {v.confidence:.2f}, below query.min_confidence)"
            )
        )
    else:
        common.out.print(Text(f"The song is {round(v.share * 100)}% {v.majority}", style="bold"))
    strip = Text("votes ")
    for c in song.chunks:
        strip.append("██", style=colour[c.genre])
    common.out.print(strip)
    table = Table(show_edge=False, pad_edge=False)
    for col, justify in (("time", "left"), ("genre", "left"), ("p", "right"), ("runner-up", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for c in song.chunks:
        ranked = sorted(c.probabilities.items(), key=lambda gp: -gp[1])
        second = f"{ranked[1][0]} {ranked[1][1]:.2f}" if len(ranked) > 1 else ""
        table.add_row(
            f"{common.clock(c.start)}–{common.clock(c.end)}",
            Text(c.genre, style=colour[c.genre]),
            f"{ranked[0][1]:.2f}",
            second,
        )
    common.out.print(table)
    ranking = ", ".join(f"{g} {p:.2f}" for g, p in v.ranking)
    common.out.print(Text(f"mean probability: {ranking}", style="dim"))
    if song.tags:
        tags = ", ".join(f"{t} {s:.2f}" for t, s in song.tags[:5])
        common.out.print(Text(f"musicnn tags: {tags}", style="dim"))
    common.out.print()


def csv_columns(genres: list[str]) -> list[str]:
    return [*CSV_COLUMNS, *(f"p_{g}" for g in genres)]


def _check_header(path: Path, columns: list[str], model: str) -> None:
    """Appending under another header would put one genre's probabilities under another's name:
    refuse before any work. A missing or empty file gets the header on the first write."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csvlib.reader(f), [])
    except (OSError, UnicodeDecodeError, csvlib.Error) as exc:
        raise ConfigError(f"--csv {path}: cannot read its header ({exc}): write to a new file") from None
    if header == columns:
        return
    names = ", ".join(json.dumps(c, ensure_ascii=False) for c in columns[len(CSV_COLUMNS) :])
    if "model" not in header:
        why = "it has no model column (an older genre query wrote it)"
    else:
        theirs = ", ".join(json.dumps(c, ensure_ascii=False) for c in header if c.startswith("p_"))
        why = f"its genre columns are {theirs or 'none'}, model {model} writes {names}"
    raise ConfigError(f"--csv {path}: {why}; appending would mislabel probabilities: write to a new file")


def _append_csv(path: Path, columns: list[str], model: LoadedModel, results: list[SongResult]) -> None:
    """One row per chunk, in one write; names with commas or quotes are quoted (RFC 4180)."""
    buf = io.StringIO()
    writer = csvlib.writer(buf, lineterminator="\n")
    for r in results:
        for c in r.chunks:
            probs = (c.probabilities[g] for g in model.genres)
            writer.writerow([model.name, r.source, r.title, c.index, c.start, c.end, c.genre, *probs])
    if not buf.tell():
        return
    rows = buf.getvalue()
    if not path.is_file() or path.stat().st_size == 0:
        head = io.StringIO()
        csvlib.writer(head, lineterminator="\n").writerow(columns)
        rows = head.getvalue() + rows
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write(rows)


def _print_json(doc: dict[str, Any]) -> None:
    """Plain print, not rich: rich would turn ":smile:" in a song title into an emoji."""
    print(json.dumps(doc, ensure_ascii=False, indent=2), flush=True)


def _failure_doc(
    loaded: LoadedModel | None, exc: BaseException, config: Path | None, workspace: Path | None
) -> dict[str, Any]:
    """The document for a query that could not run: its error as the stderr line says it."""
    if isinstance(exc, KeyboardInterrupt):
        why = "interrupted before any song was classified"
    else:
        why = common.repeat_options(str(exc), config, workspace)
    return {
        "model": loaded.name if loaded is not None else None,
        "results": [],
        "errors": [{"source": None, "error": why}],
        "complete": False,
    }


@common.handle_errors
def query(
    sources: Annotated[list[str], typer.Argument(help="Song files, folders, or http(s) URLs.")],
    model: Annotated[str | None, typer.Option("--model", help="Model name (default: newest).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
    csv: Annotated[Path | None, typer.Option("--csv", help="Append one row per chunk to FILE.")] = None,
    max_items: Annotated[int | None, typer.Option(help="Playlist entries fetched at most.")] = None,
    model_features: Annotated[
        bool,
        typer.Option(
            "--model-features",
            help="Compute the model's own feature backend when it differs from features.backend.",
        ),
    ] = False,
    engine: Engine = None,
    address: Address = None,
    cookies: Annotated[
        Path | None, typer.Option("--cookies", help="Netscape cookie file for sites that ask to sign in.")
    ] = None,
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Classify songs; exit code 0 only if every source was classified (130: interrupted)."""
    loaded: LoadedModel | None = None
    try:
        ctx = common.load(
            config,
            workspace,
            query__max_items=max_items,
            query__cookies=cookies and str(cookies),
            cluster__engine=engine,
            cluster__address=address,
        )
        if csv is not None:
            _check_writable(csv)
        from genre_erkennung.core.predict import query as run_query

        name, origin = model_name(ctx, model, config)
        if csv is not None:  # before any work, even the early decode
            card = _card(ctx, name, origin)
            _check_header(csv, csv_columns(card.genres), card.name)
        cancel = ev.new_cancel()
        loaded = _load_decoding(ctx, name, origin, sources[0], cancel, model_features)
        columns = csv_columns(loaded.genres)
        args = (sources, loaded, ctx.settings, ctx.workspace, ctx.settings.query.max_items)
        with _Progress(verbose) as progress:
            if ctx.settings.cluster.engine == "ray":  # CSV rows are appended as songs arrive
                from genre_erkennung.core.cluster import query_on_ray

                song_model = loaded

                def arrived(song: SongResult) -> None:
                    if csv is not None:
                        _append_csv(csv, columns, song_model, [song])

                result = query_on_ray(*args, progress, cancel, model_features, arrived)
            else:
                result = run_query(*args, progress, cancel, model_features=model_features)
    except (GenreError, OSError, KeyboardInterrupt) as exc:  # handle_errors says which, in one line
        if as_json:
            _print_json(_failure_doc(loaded, exc, config, workspace))
        raise
    if as_json:
        _print_json(result.to_json())
    elif result.results:
        common.err.print(Text(f"model {loaded.name}: {common.genre_list(loaded.genres)}", style="dim"))
        for song in result.results:
            print_song(song, loaded.genres)
    if csv is not None and ctx.settings.cluster.engine != "ray":
        _append_csv(csv, columns, loaded, result.results)
    _finish(result, progress.counts, as_json)


def _finish(result: QueryResult, counts: ev.QueryProgress | None, as_json: bool) -> None:
    """Failures (the first SHOWN_ERRORS), a count for folders, and the exit code."""
    for _source, error in result.errors[:SHOWN_ERRORS]:
        common.err.print(Text.assemble(("error: ", "bold red"), error))
    if len(result.errors) > SHOWN_ERRORS:
        rest = len(result.errors) - SHOWN_ERRORS
        common.err.print(Text(f"… and {rest} more failures (--json lists them all)", style="red"))
    if not result.complete:
        where = 'in the JSON, marked "complete": false' if as_json else "shown above"
        done = _counts(counts) if counts is not None else "no file looked at yet"
        common.err.print(Text(f"interrupted: {done} (what was classified is {where})", style="yellow"))
        raise typer.Exit(130)
    if counts is not None and counts.total > 1:
        common.err.print(Text(f"query: {_counts(counts)}", style="dim"))
    if result.errors:
        raise typer.Exit(1)


def _check_writable(path: Path) -> None:
    """Fail before classifying, not after, when the CSV cannot be written."""
    if path.is_dir():
        raise GenreError(f"--csv {path}: is a folder; give a file name, e.g. {path / 'votes.csv'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise GenreError(f"--csv {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise GenreError(f"--csv {path}: not writable here")


def load_model(ctx: common.Context, name: str | None, config: Path | None = None) -> LoadedModel:
    """--model, else query.model from the config, else the newest model."""
    return _load(ctx, *model_name(ctx, name, config))


def model_name(ctx: common.Context, name: str | None, config: Path | None = None) -> tuple[str, str]:
    """(name, where it came from): --model, else query.model from the config file that sets it,
    else the newest model ('' then). No torch needed."""
    from genre_erkennung.core import registry
    from genre_erkennung.core.config import key_source
    from genre_erkennung.core.errors import ModelError

    if name:
        return name, "--model"
    if ctx.settings.query.model:
        where = key_source("query.model", config) or "the config"
        return ctx.settings.query.model, f"[query] model in {where}"
    newest = registry.newest(ctx.workspace)
    if newest is None:
        raise ModelError(
            f"no trained model in {ctx.workspace.models}: run `genre train --dataset ROOT` "
            "(or `genre demo`) first"
        )
    return newest.name, ""


def _named(exc: GenreError, origin: str) -> GenreError:
    """A model that does not load, saying where its name came from (--model, the config key)."""
    from genre_erkennung.core.errors import ModelError

    if not origin or not isinstance(exc, ModelError):
        return exc
    fix = "; fix that key or pass --model NAME" if origin != "--model" else ""
    return ModelError(f"{origin}: {exc}{fix}")


def _card(ctx: common.Context, name: str, origin: str) -> ModelCard:
    from genre_erkennung.core import registry

    try:
        return registry.read_card(registry.model_dir(ctx.workspace, name), name)
    except GenreError as exc:
        raise _named(exc, origin) from None


def _load(ctx: common.Context, name: str, origin: str) -> LoadedModel:
    from genre_erkennung.core import registry

    try:
        return registry.load(ctx.workspace, name, _device(ctx))
    except GenreError as exc:
        raise _named(exc, origin) from None


def _load_decoding(
    ctx: common.Context,
    name: str,
    origin: str,
    first: str,
    cancel: threading.Event,
    model_features: bool,
) -> LoadedModel:
    """Load the model while the first source, a local song, is decoded into the store (see
    core/prefetch.py): a cold query then pays for torch's import and the decode once, not
    one after the other."""
    from genre_erkennung.core import prefetch
    from genre_erkennung.core.predict import settings_for_card

    try:
        settings = settings_for_card(_card(ctx, name, origin), ctx.settings, model_features)
        early = prefetch.start(first, settings, ctx.workspace, cancel)
    except GenreError:
        early = None  # loading the model, or the query, says what is wrong
    try:
        return _load(ctx, name, origin)
    except BaseException:
        cancel.set()
        raise
    finally:
        if early is not None:
            early.join()


def _device(ctx: common.Context) -> str:
    import torch

    return "cuda" if ctx.settings.features.device != "cpu" and torch.cuda.is_available() else "cpu"
