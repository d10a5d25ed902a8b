"""`genre query`: classify files, folders or URLs and show how every chunk voted."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from genre_erkennung.core import events as ev

from .. import common

if TYPE_CHECKING:
    from genre_erkennung.core.predict import SongResult
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


class _Downloads:
    """Shows yt-dlp progress on stderr."""

    def __init__(self, quiet: bool) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            console=common.err,
            disable=quiet,
            transient=True,
        )
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, event: ev.Event) -> None:
        match event:
            case ev.DownloadProgress(url=url, downloaded=done, total=total):
                if url not in self.tasks:
                    self.progress.start()
                    self.tasks[url] = self.progress.add_task(f"downloading {url}", total=total)
                self.progress.update(self.tasks[url], completed=done, total=total)
            case ev.Downloaded(url=url, path=path, title=title, cached=cached):
                how = "already downloaded" if cached else "downloaded"
                self.progress.console.print(Text(f"{how}: {title} -> {path}", style="dim"))
            case ev.JobFinished() if self.tasks:
                self.progress.stop()
            case _:
                pass


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


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
            f"{_clock(c.start)}–{_clock(c.end)}",
            Text(c.genre, style=colour[c.genre]),
            f"{ranked[0][1]:.2f}",
            second,
        )
    common.out.print(table)
    ranking = ", ".join(f"{g} {p:.2f}" for g, p in v.ranking)
    common.out.print(Text(f"mean probability: {ranking}", style="dim"))
    common.out.print()


def _append_csv(path: Path, results: list[SongResult], genres: list[str]) -> None:
    import pandas as pd

    rows = [
        {
            "source": r.source,
            "title": r.title,
            "chunk": c.index,
            "start": c.start,
            "end": c.end,
            "genre": c.genre,
            **{f"p_{g}": c.probabilities[g] for g in genres},
        }
        for r in results
        for c in r.chunks
    ]
    if rows:
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(path, mode="a", header=not path.exists(), index=False)


@common.handle_errors
def query(
    sources: Annotated[list[str], typer.Argument(help="Song files, folders, or http(s) URLs.")],
    model: Annotated[str | None, typer.Option("--model", help="Model name (default: newest).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
    csv: Annotated[Path | None, typer.Option("--csv", help="Append one row per chunk to FILE.")] = None,
    max_items: Annotated[int | None, typer.Option(help="Playlist entries fetched at most.")] = None,
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Classify songs; exit code 0 only if every source was classified."""
    ctx = common.load(config, workspace, query__max_items=max_items)
    if csv is not None:
        _check_writable(csv)
    from genre_erkennung.core.predict import query as run_query

    loaded = load_model(ctx, model)
    reporter = _Downloads(quiet=False)
    result = run_query(
        sources, loaded, ctx.settings, ctx.workspace, ctx.settings.query.max_items, reporter, ev.new_cancel()
    )
    if as_json:
        common.out.print(json.dumps(result.to_json(), ensure_ascii=False, indent=2), markup=False)
    elif result.results:
        common.err.print(Text(f"model {loaded.name}: {', '.join(loaded.genres)}", style="dim"))
        for song in result.results:
            print_song(song, loaded.genres)
    if csv is not None:
        _append_csv(csv, result.results, loaded.genres)
    if result.errors:
        for _source, error in result.errors:
            common.err.print(Text.assemble(("error: ", "bold red"), error))
        raise typer.Exit(1)


def _check_writable(path: Path) -> None:
    """Fail before classifying, not after, when the CSV cannot be written."""
    from genre_erkennung.core.errors import GenreError

    if path.is_dir():
        raise GenreError(f"--csv {path}: is a folder; give a file name, e.g. {path / 'votes.csv'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise GenreError(f"--csv {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise GenreError(f"--csv {path}: not writable here")


def load_model(ctx: common.Context, name: str | None) -> LoadedModel:
    """--model, else query.model from the config, else the newest model."""
    from genre_erkennung.core import registry
    from genre_erkennung.core.errors import ModelError

    name = name or ctx.settings.query.model
    if not name:
        newest = registry.newest(ctx.workspace)
        if newest is None:
            raise ModelError(
                f"no trained model in {ctx.workspace.models}: run `genre train --dataset ROOT` "
                "(or `genre demo`) first"
            )
        name = newest.name
    return registry.load(ctx.workspace, name, _device(ctx))


def _device(ctx: common.Context) -> str:
    import torch

    return "cuda" if ctx.settings.features.device != "cpu" and torch.cuda.is_available() else "cpu"
