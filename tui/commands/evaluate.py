"""`genre evaluate`: score a saved model on another dataset's test split (or all of it)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from genre_erkennung.core import events as ev

from .. import common
from ..progress import ProgressReporter
from .models import NameArg, _pct

SCORES = (
    ("song accuracy (majority vote)", "song_accuracy"),
    ("song accuracy (mean probability)", "song_accuracy_mean"),
    ("chunk accuracy", "chunk_accuracy"),
    ("balanced accuracy (chunks)", "balanced_accuracy"),
    ("balanced accuracy (songs)", "song_balanced_accuracy"),
)


@common.handle_errors
def evaluate(
    model: NameArg,
    dataset: common.DatasetOpt = None,
    all_songs: Annotated[
        bool, typer.Option("--all", help="Score every song (train/ and test/), not only test/.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Score MODEL on a dataset it was not trained on: how well it carries to other music."""
    ctx = common.load(config, workspace, dataset)
    from genre_erkennung.core.dataset import scan_dataset
    from genre_erkennung.core.evaluate import evaluate_model

    from .query import load_model

    loaded = load_model(ctx, model)
    ds = scan_dataset(ctx.dataset_root(), ctx.settings, ctx.workspace)
    splits = ("train", "test") if all_songs else ("test",)
    cancel = ev.new_cancel()
    with ProgressReporter("extracting", quiet=as_json) as reporter:
        result = evaluate_model(
            loaded,
            ds,
            ctx.settings,
            ctx.workspace.ensure(),
            splits=splits,
            report=reporter,
            cancel=cancel,
        )
    if as_json:
        common.out.print(json.dumps(result.to_json(), ensure_ascii=False, indent=2), markup=False)
        return
    m, own = result.metrics, result.card_metrics
    where = f"{result.dataset} ({' + '.join(splits)}: {m.songs} songs, {m.chunks} chunks)"
    table = Table(title=f"model {result.model} on {where}", title_justify="left")
    table.add_column("score")
    table.add_column("this dataset", justify="right")
    table.add_column("its own test split", justify="right")
    for label, key in SCORES:
        table.add_row(label, _pct(getattr(m, key)), _pct(own.get(key)))
    common.out.print(table)
    per_genre = Table(title="per genre (chunks)", title_justify="left")
    for col in ("genre", "recall", "precision", "chunks"):
        per_genre.add_column(col, justify="left" if col == "genre" else "right")
    for genre, row in m.per_genre.iterrows():
        if row["support"]:
            per_genre.add_row(
                str(genre), _pct(row["recall"]), _pct(row["precision"]), str(int(row["support"]))
            )
    common.out.print(per_genre)
    for path, why in result.skipped:
        common.err.print(Text.assemble(("skipped: ", "yellow"), f"{path}: {why}"))
