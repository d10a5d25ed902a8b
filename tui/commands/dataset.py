"""`genre dataset show|split`: look at a dataset, or make one from SRC/<genre>/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from .. import common

if TYPE_CHECKING:  # the module (and numpy) loads when a command runs, not for --help
    from genre_erkennung.core import dataset as ds_mod

app = typer.Typer(
    help="Inspect a dataset, or split a folder of genres into train/test.", no_args_is_help=True
)


@app.command()
@common.handle_errors
def show(
    root: Annotated[Path | None, typer.Argument(help="Dataset root (default: --dataset or config).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    dataset: common.DatasetOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Songs and hours per genre and split, and every problem found."""
    from genre_erkennung.core import dataset as ds_mod

    ctx = common.load(config, workspace, root or dataset)
    ds = ds_mod.scan_dataset(ctx.dataset_root(), ctx.settings, ctx.workspace)
    if as_json:
        common.out.print_json(json.dumps(ds.to_json(), ensure_ascii=False))
        raise typer.Exit(1 if _serious(ds) else 0)
    table = Table(title=f"{ds.root}", title_justify="left")
    table.add_column("genre")
    for split in ds_mod.SPLITS:
        table.add_column(f"{split} songs", justify="right")
        table.add_column(f"{split} time", justify="right")
    rows = {(r.split, r.genre): r for r in ds.summary()}
    for genre in ds.genres:
        cells: list[str] = [genre]
        for split in ds_mod.SPLITS:
            r = rows[split, genre]
            cells += [str(r.songs) + (f" (+{r.failed} bad)" if r.failed else ""), common.clock(r.seconds)]
        table.add_row(*cells)
    common.out.print(table)
    common.out.print(f"fingerprint {ds.fingerprint}, {len(ds.usable())} usable songs")
    for p in ds.problems:
        where = f"{p.path}: " if p.path else ""
        style = "yellow" if p.kind == "not-audio" else "red"
        common.out.print(Text.assemble((f"{p.kind}: ", style), where + p.message))
    raise typer.Exit(1 if _serious(ds) else 0)


def _serious(ds: ds_mod.Dataset) -> bool:
    return any(p.kind != "not-audio" for p in ds.problems)


@app.command()
@common.handle_errors
def split(
    src: Annotated[Path, typer.Argument(help="Folder of genre folders: SRC/<genre>/<songs>.")],
    dest: Annotated[Path, typer.Argument(help="Dataset root to create: DEST/{train,test}/<genre>/.")],
    test_ratio: Annotated[float, typer.Option(help="Share of each genre's songs put in test/.")] = 0.3,
    seed: Annotated[int, typer.Option(help="Seed of the deterministic shuffle.")] = 0,
    link: Annotated[bool, typer.Option("--link", help="Hard-link instead of copying.")] = False,
    group_by: Annotated[
        str,
        typer.Option(
            "--group-by",
            help="Keep together: song (none), folder (SRC/<genre>/<folder>/), artist or album (tags).",
        ),
    ] = "song",
    verbose: common.VerboseOpt = False,
) -> None:
    """Split SRC/<genre>/ into DEST/train and DEST/test by song or group; SRC is never changed."""
    from genre_erkennung.core import dataset as ds_mod

    result = ds_mod.split(src, dest, test_ratio=test_ratio, seed=seed, link=link, group_by=group_by)
    table = Table(title=str(dest), title_justify="left")
    for col in ("genre", "train", "test"):
        table.add_column(col, justify="left" if col == "genre" else "right")
    for genre, (n_train, n_test) in result.per_genre.items():
        table.add_row(genre, str(n_train), str(n_test))
    common.out.print(table)
    verb = "linked" if link else "copied"
    common.err.print(f"{result.copied} files {verb}, {result.skipped} already in place")
    if result.groups:
        n_test = sum(1 for side in result.groups.values() if side == "test")
        common.err.print(
            f"{len(result.groups)} {group_by} groups, each on one side: "
            f"{len(result.groups) - n_test} in train, {n_test} in test"
        )
    if result.untagged:
        common.err.print(
            Text(f"{result.untagged} songs have no {group_by}: each is its own group", style="yellow")
        )
    for genre in result.one_sided:
        common.err.print(
            Text(
                f"genre {genre}: all its songs landed on one side (too few {group_by} groups)", style="yellow"
            )
        )
