"""`genre train`: a live table of epochs on stderr, the test scores on stdout."""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from genre_erkennung.core import events as ev

from .. import common
from .models import metrics_tables


class EpochTable:
    """A reporter: epochs as rows of a live table on a terminal, one line per epoch otherwise
    (so logs see progress as it happens), and messages as lines."""

    COLUMNS = ("epoch", "loss", "accuracy", "val loss", "val accuracy", "seconds", "chunks/s")

    def __init__(self) -> None:
        self.rows: list[ev.EpochEnd] = []
        self.live = None
        if common.err.is_terminal:
            self.live = Live(
                self._table(), console=common.err, auto_refresh=False, vertical_overflow="visible"
            )

    def __enter__(self) -> EpochTable:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live is not None:
            self.live.stop()

    @staticmethod
    def _cells(e: ev.EpochEnd) -> list[str]:
        member = f"{e.member + 1}: " if e.members > 1 else ""  # an ensemble's member
        return [
            f"{member}{e.epoch}/{e.epochs}" + (" *" if e.best else "  "),
            f"{e.loss:.4f}",
            f"{100 * e.accuracy:.1f}%",
            "–" if math.isnan(e.val_loss) else f"{e.val_loss:.4f}",
            "–" if math.isnan(e.val_accuracy) else f"{100 * e.val_accuracy:.1f}%",
            f"{e.seconds:.1f}",
            f"{e.chunks_per_s:.0f}",
        ]

    def _table(self) -> Table:
        table = Table(
            title="training (* best validation loss so far: these weights are kept)", title_justify="left"
        )
        for col in self.COLUMNS:
            table.add_column(col, justify="right")
        for e in self.rows:
            table.add_row(*self._cells(e))
        return table

    def __call__(self, event: ev.Event) -> None:
        match event:
            case ev.EpochEnd() if self.live is not None:
                self.rows.append(event)
                self.live.update(self._table(), refresh=True)
            case ev.EpochEnd():
                common.err.print(
                    "  ".join(f"{c} {v}" for c, v in zip(self.COLUMNS, self._cells(event), strict=True))
                )
            case ev.Message(text=text, level=level):
                common.err.print(Text(text, style="yellow" if level == "warning" else "dim"))
            case _:
                pass


@contextlib.contextmanager
def _ctrl_c_stops(cancel: threading.Event) -> Iterator[None]:
    """The first Ctrl-C stops after the current batch (keeping the best epoch); a second aborts."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        common.err.print(Text("stopping after this batch (Ctrl-C again to abort)", style="yellow"))

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@common.handle_errors
def train(
    dataset: common.DatasetOpt = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="merged (default), mfcc or contrast; linear or mlp on musicnn."),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="Most epochs (with --resume: the new total).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Chunks per batch.")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Adam learning rate.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda.")] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Model name (default: <model>-<date>-<time>).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue a stopped run (--name, else the newest).")
    ] = False,
    extract: Annotated[
        bool, typer.Option("--extract", help="Extract features that are not in the store first.")
    ] = False,
    validation_group: Annotated[
        str | None,
        typer.Option(
            "--validation-group", help="Validation songs kept apart by: song, folder, artist or album."
        ),
    ] = None,
    no_balance: Annotated[
        bool, typer.Option("--no-balance", help="No class weights when genres are imbalanced.")
    ] = False,
    backend: Annotated[
        str | None,
        typer.Option("--backend", help="Features to train on: native, sonic-annotator or musicnn."),
    ] = None,
    ensemble: Annotated[
        int | None,
        typer.Option(
            "--ensemble", min=1, help="Train K members (other seeds and validation songs) saved as one model."
        ),
    ] = None,
    nproc: Annotated[
        int | None,
        typer.Option("--nproc", min=1, help="Train data-parallel in N processes here (torchrun, DDP)."),
    ] = None,
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Train a model on the dataset's features, evaluate it on the test split and save it."""
    if nproc is not None:
        _launch(nproc)
    ctx = common.load(
        config,
        workspace,
        dataset,
        training__model=model,
        training__epochs=epochs,
        training__batch_size=batch_size,
        training__learning_rate=lr,
        training__device=device,
        training__balance=False if no_balance else None,
        features__backend=backend,
        training__validation_group=validation_group,
        training__ensemble=ensemble,
    )
    from genre_erkennung.core import distributed
    from genre_erkennung.core.dataset import scan_dataset
    from genre_erkennung.core.device import pick_device
    from genre_erkennung.core.errors import Cancelled
    from genre_erkennung.core.train import train as run_train

    pick_device(ctx.settings.training.device)  # a missing GPU is reported before any work
    ds = scan_dataset(ctx.dataset_root(), ctx.settings, ctx.workspace)
    cancel = ev.new_cancel()
    if extract:
        from genre_erkennung.core.extract import extract as run_extract

        from ..progress import ProgressReporter

        with ProgressReporter("extracting") as reporter:
            done = run_extract(ds.songs, ctx.settings, ctx.workspace.ensure(), reporter, cancel)
        if done.cancelled:
            raise Cancelled("extraction stopped; run the command again to continue")
    if distributed.launched() and not ctx.settings.training.threads:
        ctx.settings.training.threads = distributed.cpu_threads()
    with (
        distributed.joined(ctx.settings.training.device) as world,
        _ctrl_c_stops(cancel),
        EpochTable() if world.main else contextlib.nullcontext(ev.ignore) as table,
    ):
        result = run_train(
            ds,
            ctx.settings,
            ctx.workspace,
            name=name,
            resume=resume,
            epochs=epochs if resume else None,
            report=table,
            cancel=cancel,
        )
    if not world.main:  # rank 0 reports for the whole run
        return
    for scores in metrics_tables(result.card):
        common.out.print(scores)
    if warning := result.card.baseline_warning():
        common.out.print(Text(warning, style="bold yellow"))
    t, trained = result.card.training, result.card.ensemble
    runs = f"best epoch {t.best_epoch} of {t.epochs_run}"
    if trained is not None:
        each = ", ".join(str(m.epochs_run) for m in trained.members)
        runs = f"{len(trained.members)} members, epochs {each}"
    common.err.print(
        f"saved model {result.name} to {result.path} "
        f"({runs}; {common.stop_reason(t.stopped)}; {t.seconds:.0f} s)"
    )
    if result.stopped == "cancelled":
        common.err.print(
            Text(f"stopped early; continue with `genre train --resume --name {result.name}`", style="yellow")
        )
        raise typer.Exit(130)


def _launch(nproc: int) -> None:
    """`--nproc N`: the same command under torchrun with N processes (without `--nproc`)."""
    from genre_erkennung.core.distributed import launch

    argv = sys.argv[sys.argv.index("train") + 1 :] if "train" in sys.argv else []
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    raise typer.Exit(launch(nproc, args))
