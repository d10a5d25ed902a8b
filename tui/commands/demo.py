"""`genre demo`: the whole pipeline in one command, on a generated dataset.

Generates songs in four synthetic styles (unless they are there already), extracts their features,
trains the merged model, evaluates it on the test split, classifies one held-out song and says how
to open the TUI on the result. Progress goes to stderr; the scores and the verdict to stdout.

A rerun reuses the songs and the feature store (features are keyed by the songs' bytes) and trains
a fresh model under the next free name `demo-<n>`: nothing is ever overwritten or removed.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from genre_erkennung.core import events as ev
from genre_erkennung.core.workspace import DEMO_SECONDS, DEMO_SONGS_PER_GENRE

from .. import common

if TYPE_CHECKING:
    from genre_erkennung.core.workspace import Workspace

_NAME = re.compile(r"demo-(\d+)")


def next_name(workspace: Workspace) -> str:
    """`demo-<n>`, one past the highest n in the workspace (a user's own models keep their names)."""
    taken = [
        int(m.group(1))
        for p in (workspace.models.iterdir() if workspace.models.is_dir() else ())
        if (m := _NAME.fullmatch(p.name))
    ]
    return f"demo-{max(taken, default=0) + 1}"


def _step(n: int, text: str) -> None:
    common.err.print(Text.assemble((f"[{n}/5] ", "bold cyan"), (text, "bold")))


def _pct(x: float) -> str:
    return f"{round(100 * x)}%"


@common.handle_errors
def demo(
    dest: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Folder for the demo songs (default: WORKSPACE/demo/dataset); made if missing."
        ),
    ] = None,
    songs_per_genre: Annotated[
        int, typer.Option("--songs-per-genre", help="Songs per genre; a quarter are held out for testing.")
    ] = DEMO_SONGS_PER_GENRE,
    seconds: Annotated[
        float, typer.Option("--seconds", help="Mean song length in seconds (each varies by ±20%).")
    ] = DEMO_SECONDS,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Most training epochs.")] = None,
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Run the whole pipeline on a generated four-genre demo: songs, features, training, a query."""
    ctx = common.load(config, workspace, training__model="merged", training__epochs=epochs)
    from genre_erkennung.core import dataset as ds_mod
    from genre_erkennung.core import demo as demo_mod
    from genre_erkennung.core.device import pick_device
    from genre_erkennung.core.errors import Cancelled, GenreError
    from genre_erkennung.core.extract import extract as run_extract
    from genre_erkennung.core.predict import query as run_query
    from genre_erkennung.core.train import train as run_train

    from ..progress import ProgressReporter
    from .models import metrics_tables
    from .query import load_model, print_song
    from .train import EpochTable, _ctrl_c_stops

    if ctx.settings.training.threads == 0:
        # Measuring 1 vs 2 threads costs more than it saves on the demo's few chunks (about 18 s
        # of a 2-core machine's 2 minutes), and this small network runs fastest on one.
        ctx.settings.training.threads = 1
    pick_device(ctx.settings.training.device)  # a missing GPU is reported before any work
    ws = ctx.workspace.ensure()
    root = (dest.expanduser() if dest is not None else ws.demo_dataset(songs_per_genre, seconds)).resolve()
    cancel = ev.new_cancel()

    _step(1, f"demo songs in {root}")
    with ProgressReporter("generating songs") as reporter:
        made = demo_mod.generate(
            root, songs_per_genre=songs_per_genre, seconds=seconds, report=reporter, cancel=cancel
        )
    total = len(made.train) + len(made.test)
    kept = total - made.created
    common.err.print(
        Text(
            f"{total} songs in {len(made.genres)} genres ({len(made.train)} train, {len(made.test)} test)"
            + (f"; {kept} were there already" if kept else ""),
            style="dim",
        )
    )

    _step(2, "features")
    ds = ds_mod.scan_dataset(root, ctx.settings, ctx.workspace)
    with ProgressReporter("extracting") as reporter:
        done = run_extract(ds.songs, ctx.settings, ws, reporter, cancel)
    if done.cancelled:
        raise Cancelled("extraction stopped; run `genre demo` again to continue")
    if done.failed:
        path, reason = done.failed[0]
        raise GenreError(f"{len(done.failed)} demo songs failed extraction, e.g. {path}: {reason}")
    common.err.print(
        Text(
            f"{done.done} extracted, {done.cached} already in the store {done.store}; {done.elapsed:.1f} s",
            style="dim",
        )
    )

    name = next_name(ws)
    _step(3, f"training the merged model {name}")
    with _ctrl_c_stops(cancel), EpochTable() as table:
        result = run_train(ds, ctx.settings, ws, name=name, report=table, cancel=cancel)
    t = result.card.training
    common.err.print(
        Text(
            f"saved model {result.name} to {result.path} (best epoch {t.best_epoch} of "
            f"{t.epochs_run}; {common.stop_reason(t.stopped)}; {t.seconds:.0f} s)",
            style="dim",
        )
    )
    if result.stopped == "cancelled":
        common.err.print(
            Text(
                f"stopped early; continue with `genre train --resume --name {result.name} "
                f"--dataset {shlex.quote(str(root))}`",
                style="yellow",
            )
        )
        raise typer.Exit(130)

    _step(4, "evaluation on the held-out test split")
    summary, _per_genre, confusion = metrics_tables(result.card)
    common.out.print(summary)
    common.out.print(confusion)
    m = result.card.metrics
    if m.song_accuracy < 0.75:
        common.err.print(
            Text(
                f"song accuracy {_pct(m.song_accuracy)} is low for four such distinct styles: "
                f"please report it with the output of `genre models show {result.name}`",
                style="yellow",
            )
        )

    # One test song, a different genre on each rerun: demo-1 electronic, demo-2 ambient, ...
    genre = made.genres[(int(result.name.rsplit("-", 1)[1]) - 1) % len(made.genres)]
    song = next(p for p in made.test if p.parent.name == genre)
    _step(5, f"classifying a held-out test song: {song.relative_to(root)}")
    loaded = load_model(ctx, result.name)
    answer = run_query([str(song)], loaded, ctx.settings, ws, 1, ev.ignore, cancel)
    if answer.errors:
        raise GenreError(answer.errors[0][1])
    if not answer.results:
        raise Cancelled("stopped before the song was classified")
    song_result = answer.results[0]
    print_song(song_result, loaded.genres)

    v = song_result.verdict
    right = round(m.song_accuracy * m.songs)
    common.out.print(
        f"Song accuracy on the demo test split: {_pct(m.song_accuracy)} "
        f"({right} of {m.songs} songs; chunks {_pct(m.chunk_accuracy)}; "
        f"chance {_pct(1 / len(loaded.genres))})"
    )
    common.out.print(
        Text.assemble(
            f"{song.stem} (a held-out {genre} song): ",
            (f"The song is {round(v.share * 100)}% {v.majority}", "bold"),
        )
    )
    hint = ["genre", "tui", "--workspace", str(ws.root), "--dataset", str(root)]
    if config is not None:
        hint[2:2] = ["--config", str(config)]
    common.err.print()
    common.err.print(
        Text(f"demo songs: {root} (a rerun reuses them and their features)\nmodel: {result.path}")
    )
    common.err.print(Text.assemble("open the TUI on it: ", (shlex.join(hint), "bold")))
