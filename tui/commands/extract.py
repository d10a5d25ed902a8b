"""`genre extract`: compute the features of every dataset song into the workspace's store."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from genre_erkennung.core import events

from .. import common
from ..progress import ProgressReporter

Backend = Annotated[str | None, typer.Option("--backend", help="Feature backend: native or sonic-annotator.")]
Engine = Annotated[
    str | None, typer.Option("--engine", help="local (processes here) or ray (tasks on a Ray cluster).")
]
Address = Annotated[
    str | None, typer.Option("--address", help="Ray cluster to join, host:port (default: start one here).")
]


@common.handle_errors
def extract(
    dataset: common.DatasetOpt = None,
    workers: Annotated[int | None, typer.Option(help="Decode workers (default: all cores).")] = None,
    backend: Backend = None,
    engine: Engine = None,
    address: Address = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Try songs that failed before again.")
    ] = False,
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Decode, chunk and compute features for every song; resumes where it stopped."""
    ctx = common.load(
        config,
        workspace,
        dataset,
        extraction__workers=workers,
        features__backend=backend,
        cluster__engine=engine,
        cluster__address=address,
    )
    from genre_erkennung.core import dataset as ds_mod
    from genre_erkennung.core.extract import extract as run_extract

    ds = ds_mod.scan_dataset(ctx.dataset_root(), ctx.settings, ctx.workspace)
    cancel = events.new_cancel()
    with ProgressReporter("extracting") as reporter:
        result = run_extract(
            ds.songs, ctx.settings, ctx.workspace, reporter, cancel, retry_failed=retry_failed
        )
    rate = result.audio_seconds / result.elapsed if result.elapsed else 0.0
    if result.done == 0 and not result.failed:
        common.err.print(f"nothing to extract: all {result.cached} songs are already in the store")
    else:
        common.err.print(
            f"{result.done} extracted, {result.cached} already in the store, "
            f"{len(result.failed)} failed; {result.audio_seconds / 60:.1f} min of audio "
            f"in {result.elapsed:.1f} s ({rate:.0f}x realtime)"
        )
    common.err.print(f"store: {result.store}")
    if result.failed:
        common.err.print(Text("failed songs:", style="bold red"))
        for path, reason in result.failed:
            common.err.print(Text.assemble(("  " + path, "red"), f": {reason}"))
        raise typer.Exit(1)
