"""`genre store list|prune`: what the workspace's feature stores and downloads hold, and cleanup."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .. import common

app = typer.Typer(help="Feature stores and downloads: sizes, users, cleanup.", no_args_is_help=True)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@app.command("list")
@common.handle_errors
def list_(
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Each feature store (size, songs, the models trained on it) and the downloads."""
    from genre_erkennung.core import housekeeping

    ctx = common.load(config, workspace)
    table = Table(title=str(ctx.workspace.root), title_justify="left")
    for col in ("store", "backend", "size", "songs", "failed", "damaged", "used by"):
        table.add_column(col, justify="right" if col in ("size", "songs", "failed", "damaged") else "left")
    for s in housekeeping.stores(ctx.workspace, ctx.settings):
        users = ", ".join(s.models) + (" (current settings)" if s.current else "")
        backend = str(s.config.get("backend", "?"))
        table.add_row(
            s.key, backend, _mb(s.bytes), str(s.songs), str(s.failed), str(s.damaged), users or "nothing"
        )
    d = housekeeping.downloads(ctx.workspace)
    table.add_row(
        "downloads", "", _mb(d.bytes), str(len(d.files)), "", "", "queries (fetched again if removed)"
    )
    common.out.print(table)


@app.command()
@common.handle_errors
def prune(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go; remove nothing.")] = False,
    downloads: Annotated[
        bool, typer.Option("--downloads", help="Remove the downloaded songs too (URLs are fetched again).")
    ] = False,
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Remove feature stores no saved model uses (and not the current settings' store)."""
    from genre_erkennung.core import housekeeping

    ctx = common.load(config, workspace)
    result = housekeeping.prune(ctx.workspace, ctx.settings, dry_run=dry_run, with_downloads=downloads)
    verb = "would remove" if dry_run else "removed"
    for path, size in result.removed:
        common.out.print(f"{verb} {path} ({_mb(size)})")
    common.err.print(f"{verb} {len(result.removed)} item(s), {_mb(result.bytes)}")
