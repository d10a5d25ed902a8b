"""`genre pretrained install|list|rm`: pretrained networks (musicnn) in the workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from genre_erkennung.core import events as ev

from .. import common

app = typer.Typer(help="Pretrained networks (musicnn): install, list, remove.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="The pretrained model: musicnn.")]


def _say(event: ev.Event) -> None:
    if isinstance(event, ev.Message):
        common.err.print(Text(event.text, style="dim"))


@app.command()
@common.handle_errors
def install(
    name: NameArg,
    wheel: Annotated[
        Path | None,
        typer.Option("--wheel", help="Use this musicnn-0.1.0 wheel file instead of downloading it."),
    ] = None,
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Download the pinned wheel (or take --wheel FILE), convert its weights, store them."""
    from genre_erkennung.core.pretrained import install as inst

    inst.check_name(name)
    ctx = common.load(config, workspace)
    card = inst.install(ctx.workspace.ensure(), name, wheel, _say)
    variants = ", ".join(f"{v} ({m['trained_on']}, {len(m['tags'])} tags)" for v, m in card["models"].items())
    who = f"{card['licence']} licence, {card['authors']}"
    common.err.print(f"installed {card['name']} {card['version']} ({who}): {variants}")
    common.out.print(str(inst.folder(ctx.workspace, name)))


@app.command("list")
@common.handle_errors
def list_(
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """List the installed pretrained models."""
    from genre_erkennung.core.pretrained import install as inst

    ctx = common.load(config, workspace)
    rows = inst.installed(ctx.workspace)
    if not rows:
        hint = "run `genre pretrained install musicnn`"
        common.err.print(f"no pretrained models in {ctx.workspace.root}: {hint}")
        return
    table = Table()
    for col in ("name", "version", "variants", "size", "installed", "folder"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for r in rows:
        status = Text(r.error, style="red") if r.error else ", ".join(r.variants)
        table.add_row(r.name, r.version, status, f"{r.size / 1e6:.1f} MB", r.installed, str(r.folder))
    common.out.print(table)


@app.command()
@common.handle_errors
def rm(
    name: NameArg,
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Remove an installed pretrained model (its folder in the workspace)."""
    from genre_erkennung.core.pretrained import install as inst

    ctx = common.load(config, workspace)
    folder = inst.remove(ctx.workspace, name)
    common.err.print(f"removed {name} ({folder})")
