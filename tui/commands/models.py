"""`genre models list|show|rm`: the saved models, their cards and training curves."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from .. import common

if TYPE_CHECKING:
    from genre_erkennung.core.card import EpochStats, ModelCard
    from genre_erkennung.core.pretrained.headcard import HeadCard

app = typer.Typer(help="Saved models: list, show a card, remove.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Model name (see `genre models list`).")]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def metrics_tables(card: ModelCard) -> list[Table]:
    """Model vs baseline scores, per-genre precision/recall/F1, and the confusion matrix."""
    m, b = card.metrics, card.baseline
    summary = Table(title=f"test split: {m.songs} songs, {m.chunks} chunks", title_justify="left")
    summary.add_column("score")
    summary.add_column(card.architecture.kind, justify="right")
    summary.add_column("baseline", justify="right")
    for label, key in (
        ("song accuracy (majority vote)", "song_accuracy"),
        ("song accuracy (mean probability)", "song_accuracy_mean"),
        ("chunk accuracy", "chunk_accuracy"),
        ("balanced accuracy (chunks)", "balanced_accuracy"),
        ("balanced accuracy (songs)", "song_balanced_accuracy"),
    ):
        summary.add_row(label, _pct(getattr(m, key)), _pct(getattr(b, key)))
    per_genre = Table(title="per genre (chunks)", title_justify="left")
    for col in ("genre", "precision", "recall", "F1", "chunks"):
        per_genre.add_column(col, justify="left" if col == "genre" else "right")
    for genre, row in m.per_genre.items():
        per_genre.add_row(genre, _pct(row.precision), _pct(row.recall), _pct(row.f1), str(row.support))
    genres = m.confusion.genres
    confusion = Table(title="confusion (rows: true genre, columns: predicted; chunks)", title_justify="left")
    confusion.add_column("")
    for g in genres:
        confusion.add_column(g, justify="right")
    for i, (g, counts) in enumerate(zip(genres, m.confusion.counts, strict=True)):
        cells = (Text(str(c), style="bold green" if i == j else "") for j, c in enumerate(counts))
        confusion.add_row(g, *cells)
    tables = [summary, per_genre, confusion]
    return tables if card.ensemble is None else [members_table(card), *tables]


def members_table(card: ModelCard) -> Table:
    """An ensemble's members side by side with the ensemble: how much each seed alone varies."""
    assert card.ensemble is not None
    accuracies = card.ensemble.song_accuracies()
    spread = 100 * (max(accuracies) - min(accuracies))
    mean = 100 * sum(accuracies) / len(accuracies)
    table = Table(
        title=f"ensemble of {len(accuracies)} members (mean of their calibrated probabilities)",
        caption=f"members' song accuracy {mean:.1f}% on average, spread {spread:.1f} points; "
        f"the ensemble's {100 * card.metrics.song_accuracy:.1f}%",
        title_justify="left",
        caption_justify="left",
    )
    for col in ("member", "seed", "best / epochs", "temperature", "songs", "songs (mean p)", "chunks"):
        table.add_column(col, justify="left" if col == "member" else "right")
    for i, m in enumerate(card.ensemble.members):
        s = m.metrics
        table.add_row(
            str(i + 1),
            str(m.seed),
            f"{m.best_epoch} / {m.epochs_run}" + ("" if m.stopped != "cancelled" else " (stopped)"),
            f"{m.calibration.temperature:.2f}" if m.calibration else "–",
            _pct(s.song_accuracy),
            _pct(s.song_accuracy_mean),
            _pct(s.chunk_accuracy),
        )
    e = card.metrics
    table.add_row(
        Text("ensemble", style="bold"),
        "",
        "",
        "",
        _pct(e.song_accuracy),
        _pct(e.song_accuracy_mean),
        _pct(e.chunk_accuracy),
    )
    return table


def _network_and_input(card: ModelCard | HeadCard) -> tuple[str, str]:
    """The architecture's sizes and what the model reads (MFCC/contrast frames, or an embedding)."""
    from genre_erkennung.core.pretrained.headcard import HeadCard

    if isinstance(card, HeadCard):
        a = card.architecture
        hidden = f", hidden={a.hidden}, dropout={a.dropout:g}" if a.kind == "mlp" else ""
        return f"{a.kind}: inputs={a.inputs}{hidden}", f"{card.input.embedding}, musicnn {card.variant}"
    sizes = ", ".join(f"{k}={v}" for k, v in asdict(card.architecture.sizes).items())
    return f"{card.architecture.kind}: {sizes}", f"frames {card.frames[0]} MFCC / {card.frames[1]} contrast"


def _card_table(card: ModelCard | HeadCard) -> Table:
    t, s, ds = card.training, card.settings, card.dataset
    network, reads = _network_and_input(card)
    ensemble = card.ensemble
    runs = (
        f"best epoch {t.best_epoch} of {t.epochs_run}"
        if ensemble is None
        else f"ensemble of {len(ensemble.members)} members, {t.epochs_run} epochs in all"
    )
    rows = {
        "status": f"{card.status} ({common.stop_reason(t.stopped)}; {runs})",
        "created": card.created,
        "architecture": network,
        "genres": common.genre_list(card.genres),
        "features": f"{card.features.backend} (store {card.features.config_key}), {reads}",
        "training": f"batch {s.batch_size}, lr {s.learning_rate:g}, seed {s.seed}, "
        f"patience {s.patience}, validation {s.validation_share:.0%}, "
        f"balance {'on' if t.class_weights else 'off'}",
        "ran on": f"{t.device}"
        + (f" ({t.gpu})" if t.gpu else f", {t.threads} thread(s)")
        + f", {t.seconds:.0f} s",
        "dataset": f"{ds.root} (fingerprint {ds.fingerprint}), train {ds.train.songs} songs "
        f"/ {ds.train.chunks} chunks, test {ds.test.songs} / {ds.test.chunks}",
        "versions": ", ".join(f"{k} {v}" for k, v in card.versions.items()),
    }
    table = Table(show_header=False, box=None, title=f"model {card.name}", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, value)
    return table


def history_plot(history: list[EpochStats], width: int) -> str:
    """Loss and accuracy per epoch (training and validation) as terminal plots."""
    import plotext as plt

    runs: dict[int | None, list[EpochStats]] = {}
    for h in history:
        runs.setdefault(h.member, []).append(h)
    longest = max(runs.values(), key=len)
    epochs = [h.epoch for h in longest]
    plots = []
    for metric in ("loss", "accuracy"):
        plt.clear_figure()
        plt.theme("clear")
        plt.plotsize(width, 14)
        plt.title(metric)
        plt.xlabel("epoch")
        plt.xticks(epochs[:: max(1, len(epochs) // 10)])
        for member, run in runs.items():
            who = "" if member is None else f" {member + 1}"  # an ensemble's members, one by one
            plt.plot([h.epoch for h in run], [getattr(h, metric) for h in run], label=f"train{who}")
            val = [(h.epoch, v) for h in run if (v := getattr(h, f"val_{metric}")) is not None]
            if val:
                plt.plot([e for e, _ in val], [v for _, v in val], label=f"validation{who}")
        plots.append(plt.build())
    return "\n".join(plots)


@app.command("list")
@common.handle_errors
def list_(
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """List the saved models, oldest first."""
    from genre_erkennung.core import registry

    ctx = common.load(config, workspace)
    infos = registry.list_models(ctx.workspace)
    if not infos:
        common.err.print(f"no models in {ctx.workspace.models}: train one with `genre train`")
        return
    table = Table()
    for col in ("name", "model", "genres", "song accuracy", "baseline", "created", "status"):
        # names and dates are what a user copies: never cut them, let the genres wrap instead
        keep = col in ("name", "created")
        table.add_column(
            col,
            justify="right" if col in ("song accuracy", "baseline") else "left",
            no_wrap=keep,
            min_width=max(len(getattr(i, col)) for i in infos) if keep else None,
        )
    for i in infos:
        if i.error:
            table.add_row(i.name, "", "", "", "", i.created, Text(i.error, style="red"))
        else:
            table.add_row(
                i.name,
                i.kind,
                common.genre_list(i.genres),
                _pct(i.song_accuracy),
                _pct(i.baseline_song_accuracy),
                i.created,
                i.status,
            )
    common.out.print(table)


@app.command()
@common.handle_errors
def show(
    name: NameArg,
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Show a model's card, its test scores and its training curves."""
    from genre_erkennung.core import registry

    ctx = common.load(config, workspace)
    card, _ = registry.verified(ctx.workspace, name)
    common.out.print(_card_table(card))
    for table in metrics_tables(card):
        common.out.print(table)
    if warning := card.baseline_warning():
        common.out.print(Text(warning, style="bold yellow"))
    if card.history:
        width = min(max(common.out.width, 60), 140)
        common.out.print(Text.from_ansi(history_plot(card.history, width)))


@app.command()
@common.handle_errors
def rm(
    name: NameArg,
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Remove a saved model (its whole folder)."""
    from genre_erkennung.core import registry

    ctx = common.load(config, workspace)
    folder = registry.remove(ctx.workspace, name)
    common.err.print(f"removed model {name} ({folder})")
