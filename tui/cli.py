"""The `genre` command. Bare `genre` opens the TUI; subcommands run the pipeline step by step."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from genre_erkennung import __version__

from .commands import (
    chunk,
    dataset,
    demo,
    doctor,
    evaluate,
    extract,
    features,
    models,
    pretrained,
    query,
    store,
    train,
)
from .commands import tui as tui_command

app = typer.Typer(
    name="genre",
    help="Music genre recognition: dataset, chunks, features, training and queries.",
    invoke_without_command=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(dataset.app, name="dataset")
app.add_typer(models.app, name="models")
app.add_typer(store.app, name="store")
app.add_typer(pretrained.app, name="pretrained")
app.command()(chunk.chunk)
app.command()(extract.extract)
app.command()(features.features)
app.command()(train.train)
app.command()(query.query)
app.command()(evaluate.evaluate)
app.command()(demo.demo)
app.command(name="tui")(tui_command.tui)
app.command()(doctor.doctor)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"genre-erkennung {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
) -> None:
    """Music genre recognition. Bare `genre` opens the TUI."""
    if ctx.invoked_subcommand is None:
        if sys.stdin.isatty() and sys.stdout.isatty():
            tui_command.tui()
        else:  # no terminal to draw on: say what there is instead of hanging
            typer.echo(ctx.get_help())


def main() -> None:
    app()
