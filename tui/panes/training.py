"""Pane 3, Training: settings prefilled from the config and editable (the source-shift recipe's
too: ensemble members, validation groups, what early stopping watches, augmentation), start /
stop, a live table of epochs and a live loss/accuracy chart, then the song accuracy, the
baseline warning and the confusion matrix. The new model becomes the selected one (header,
Query pane)."""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, ClassVar, Literal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label, Select, Static

from genre_erkennung.core import config as config_mod
from genre_erkennung.core import events as ev
from genre_erkennung.core import registry
from genre_erkennung.core.card import ModelCard
from genre_erkennung.core.config import Settings, TrainingSettings
from genre_erkennung.core.dataset import Dataset
from genre_erkennung.core.errors import GenreError, ModelError

from ..common import stop_reason
from ..widgets.chart import TrainingChart
from ..widgets.votestrip import abbreviations
from .base import JobPane, tone
from .messages import ModelSaved


def _meta(name: str) -> Any:
    """A training setting's metadata: its choices and its doc line (the form's tooltips)."""
    return {f.name: f for f in dataclasses.fields(TrainingSettings)}[name].metadata


def _choices(name: str) -> tuple[str, ...]:
    return tuple(_meta(name).get("choices") or ())


#: The form's text fields: setting, label, how the value is read, Input type.
_NUMBERS: tuple[tuple[str, str, type, Literal["integer", "number"]], ...] = (
    ("epochs", "epochs", int, "integer"),
    ("batch_size", "batch", int, "integer"),
    ("learning_rate", "rate", float, "number"),
    ("ensemble", "members", int, "integer"),
    ("augment_gain_db", "gain dB", float, "number"),
    ("time_mask", "mask", float, "number"),
)
#: The form's choices: setting, label.
_CHOICES = (
    ("device", "device"),
    ("validation_group", "v.group"),
    ("early_stop", "stop on"),
)


def _input_id(key: str) -> str:
    return f"train-{key.replace('_', '-')}"


def _pct(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f}%"


def _num(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


class TrainingPane(JobPane):
    TITLE = "Training"
    PANE_ID = "training"
    STOPPING = "Stopping after this batch; the best epoch so far is kept…"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "start", "Start", tooltip="Train a model with these settings on the extracted features"),
        Binding("c", "cancel", "Stop", tooltip="Stop after this batch; the best epoch so far is saved"),
    ]

    dataset: reactive[Dataset | None] = reactive(None)
    features_version: reactive[int] = reactive(0)
    model_name: reactive[str | None] = reactive(None)
    """The selected model: its card is shown between runs."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.result: Any = None
        self._card_note = ""
        self._features_note = "Extract the features, then s starts training."

    def compose(self) -> ComposeResult:
        ts = self.genre_app.settings.training
        with Horizontal(id="train-body"):
            with Vertical(id="train-left"):
                with VerticalScroll(id="train-form") as form:
                    form.border_title = "Settings"
                    with Horizontal(classes="field"):
                        yield Label("model", classes="field-label")
                        yield Select(
                            [(c, c) for c in _choices("model")],
                            value=ts.model,
                            allow_blank=False,
                            compact=True,
                            id="train-model",
                        )
                    for key, label, _, kind in _NUMBERS:
                        value = getattr(ts, key)
                        with Horizontal(classes="field"):
                            yield Label(label, classes="field-label")
                            yield Input(
                                f"{value:g}" if isinstance(value, float) else str(value),
                                compact=True,
                                id=_input_id(key),
                                type=kind,
                                tooltip=_meta(key).get("doc") or None,
                            )
                    for key, label in _CHOICES:
                        with Horizontal(classes="field"):
                            yield Label(label, classes="field-label")
                            yield Select(
                                [(c, c) for c in _choices(key)],
                                value=getattr(ts, key),
                                allow_blank=False,
                                compact=True,
                                id=_input_id(key),
                                tooltip=_meta(key).get("doc") or None,
                            )
                    with Horizontal(classes="field"):
                        yield Label("name", classes="field-label")
                        yield Input("", placeholder="automatic", compact=True, id="train-name")
                with Vertical(id="train-outcome") as outcome:
                    outcome.border_title = "Result"
                    yield Static("No result yet.", id="train-result")
                    yield DataTable(id="train-confusion", cursor_type="none", show_cursor=False)
            with Vertical(id="train-right"):
                yield Static(self._features_note, id="training-status", classes="status")
                epochs: DataTable[Any] = DataTable(id="train-history", cursor_type="row")
                epochs.border_title = "Epochs"
                yield epochs
                chart = TrainingChart(id="train-chart")
                chart.border_title = "Loss (left) · accuracy (right) by epoch"
                yield chart

    def on_mount(self) -> None:
        table = self.query_one("#train-history", DataTable)
        for label, key in (
            ("epoch", "epoch"),
            ("loss", "loss"),
            ("acc", "acc"),
            ("v.loss", "vloss"),
            ("v.acc", "vacc"),
            ("s", "secs"),
            ("", "best"),
        ):
            table.add_column(label, key=key)

    def default_focus(self) -> Widget | None:
        return self.query_one("#train-history")

    # ----------------------------------------------------------------- settings

    def form_settings(self) -> Settings:
        """The app's settings with the form's values (validated like config values)."""
        s = copy.deepcopy(self.genre_app.settings)
        config_mod.override(s, "training.model", self.query_one("#train-model", Select).value)
        for key, _ in _CHOICES:
            config_mod.override(s, f"training.{key}", self.query_one(f"#{_input_id(key)}", Select).value)
        for key, _, cast, _ in _NUMBERS:
            raw = self.query_one(f"#{_input_id(key)}", Input).value.strip()
            try:
                value = cast(raw)
            except ValueError:
                raise GenreError(f"{key.replace('_', ' ')}: {raw!r} is not a number") from None
            config_mod.override(s, f"training.{key}", value)
        return s

    @on(Input.Submitted, "#train-form Input")
    def _submitted(self) -> None:
        self.action_start()

    # ----------------------------------------------------------------- actions

    def action_start(self) -> None:
        ds = self.dataset
        if ds is None:
            self.notify("Scan a dataset first (tab 1).", severity="warning")
            return
        try:
            settings = self.form_settings()
        except GenreError as exc:
            self.status(Text(str(exc), style=tone(self, "text-error")))
            return
        name = self.query_one("#train-name", Input).value.strip() or None
        workspace = self.genre_app.workspace

        def work(report: ev.Reporter, cancel: Any) -> Any:
            from genre_erkennung.core.train import train

            return train(ds, settings, workspace, name=name, report=report, cancel=cancel)

        if self.start_job(work, self._trained, "Loading features…"):
            self._reset()
            self.query_one("#train-history").focus()

    # ----------------------------------------------------------------- events

    def _reset(self) -> None:
        self.result = None
        self.query_one("#train-history", DataTable).clear()
        self.query_one("#train-chart", TrainingChart).clear_history()
        self.query_one("#train-result", Static).update("Training…")
        self.query_one("#train-confusion", DataTable).clear(columns=True)

    def apply(self, event: ev.Event) -> None:
        match event:
            case ev.JobStarted(total=total):
                self.status(f"Training for up to {total} epochs…")
            case ev.EpochEnd() as e:
                self._epoch_row(e)
                member = f"Member {e.member + 1} of {e.members}, e" if e.members > 1 else "E"
                self.status(
                    f"{member}poch {e.epoch} of {e.epochs}: loss {_num(e.loss)}, "
                    f"val acc {_pct(e.val_accuracy)}, {e.chunks_per_s:.0f} chunks/s"
                )
            case ev.Message(text=text, level=level):
                style = tone(self, "text-warning") if level == "warning" else ""
                self.status(Text(text, style=style))
            case _:
                pass

    def _epoch_row(self, e: ev.EpochEnd) -> None:
        table = self.query_one("#train-history", DataTable)
        best = Text("★", style=tone(self, "text-success")) if e.best else ""
        chart = self.query_one("#train-chart", TrainingChart)
        if e.members > 1 and e.epoch == 1:
            chart.clear_history()  # the chart follows the member being trained
        key = table.add_row(
            f"{e.member + 1}: {e.epoch}/{e.epochs}" if e.members > 1 else f"{e.epoch}/{e.epochs}",
            _num(e.loss),
            _pct(e.accuracy),
            _num(e.val_loss),
            _pct(e.val_accuracy),
            f"{e.seconds:.1f}",
            best,
        )
        table.move_cursor(row=table.get_row_index(key))
        chart.add_epoch(e.epoch, e.loss, e.accuracy, e.val_loss, e.val_accuracy)

    def _trained(self, result: Any) -> None:
        self.show_result(result)
        self.post_message(ModelSaved(result.name))

    def job_failed(self, error: str) -> None:
        super().job_failed(error)
        self.query_one("#train-result", Static).update("No result.")

    def show_result(self, result: Any) -> None:
        """A TrainResult (name, metrics, baseline, stopped): accuracy lines and the confusion matrix."""
        self.result = result
        m = result.metrics
        self._show_scores(result.card)
        self.status(
            Text(
                f"Saved {result.name} ({stop_reason(result.stopped)}); it is now the selected model.",
                style=tone(self, "text-success"),
            )
        )
        confusion = m.confusion
        self._fill_confusion([str(g) for g in confusion.index], confusion.to_numpy().tolist())

    def watch_model_name(self, name: str | None) -> None:
        """Show the selected model's card, unless a run is on screen."""
        if name is None or self.running or (self.result is not None and self.result.name == name):
            return
        try:
            card = registry.read_card(self.genre_app.workspace.models / name, name)
        except ModelError:
            return  # not a finished model (or damaged: the Query pane's list says why)
        self.show_card(card)

    def show_card(self, card: ModelCard) -> None:
        """A saved model's history, scores and confusion."""
        self.result = None
        self.query_one("#train-history", DataTable).clear()
        chart = self.query_one("#train-chart", TrainingChart)
        chart.clear_history()
        nan = float("nan")
        ensemble = card.ensemble
        members = len(ensemble.members) if ensemble else 1
        for h in card.history:
            val_loss = nan if h.val_loss is None else h.val_loss
            val_accuracy = nan if h.val_accuracy is None else h.val_accuracy
            self._epoch_row(
                ev.EpochEnd(
                    h.epoch,
                    card.settings.epochs,
                    h.loss,
                    h.accuracy,
                    val_loss,
                    val_accuracy,
                    h.seconds,
                    h.chunks_per_s,
                    h.best,
                    h.member or 0,
                    members,
                )
            )
        chart.replot()
        self._show_scores(card)
        m = card.metrics
        self._fill_confusion(m.confusion.genres, m.confusion.counts)
        self._card_note = f"Showing {card.name} ({card.status}, {card.created[:10]})."
        self._idle_status()

    def _show_scores(self, card: ModelCard) -> None:
        """Song and chunk accuracy, the baseline, an ensemble's spread and the baseline warning."""
        m, good = card.metrics, tone(self, "text-success")
        parts: list[Any] = [
            ("songs ", "dim"),
            (_pct(m.song_accuracy), f"bold {good}"),
            (f" of {m.songs}", "dim"),
            ("  chunks ", "dim"),
            _pct(m.chunk_accuracy),
            ("\nbaseline (songs) ", "dim"),
            _pct(card.baseline.song_accuracy),
        ]
        if ensemble := card.ensemble:
            each = ensemble.song_accuracies()
            parts += [(f"\n{len(each)} members ", "dim"), f"{_pct(min(each))}-{_pct(max(each))}"]
        if card.baseline_warning():  # the short form: the pane is narrow
            gain = 100 * (m.song_accuracy - card.baseline.song_accuracy)
            parts += [
                "\n",
                (f"not clearly above the baseline ({gain:+.0f} points)", tone(self, "text-warning")),
            ]
        self.query_one("#train-result", Static).update(Text.assemble(*parts))

    def _fill_confusion(self, genres: list[str], counts: list[list[int]]) -> None:
        table = self.query_one("#train-confusion", DataTable)
        table.clear(columns=True)
        table.add_column("true", key="true")
        for g, short in zip(genres, abbreviations(genres, 3), strict=True):
            table.add_column(short, key=g)
        good, bad = tone(self, "text-success"), tone(self, "text-error")
        for i, g in enumerate(genres):
            cells: list[Any] = [g[:8]]
            for j in range(len(genres)):
                n = int(counts[i][j])
                style = f"bold {good}" if i == j and n else (bad if n else "dim")
                cells.append(Text(str(n), style=style, justify="right"))
            table.add_row(*cells, key=g)

    # ----------------------------------------------------------------- display

    def watch_dataset(self) -> None:
        self._features()

    def watch_features_version(self) -> None:
        self._features()

    def _features(self) -> None:
        ds = self.dataset
        if self.running or ds is None:
            return
        songs = ds.usable()
        extracted = self.genre_app.store_view.extracted(songs)
        if extracted < len(songs):
            self._features_note = f"{extracted} of {len(songs)} songs have features: extract first (tab 2)."
        else:
            self._features_note = f"All {len(songs)} songs have features: s trains a new model."
        self._idle_status()

    def _idle_status(self) -> None:
        """What the pane shows between runs: the model on screen, and whether training can start."""
        if not self.running and self.result is None:
            self.status(" ".join(n for n in (self._card_note, self._features_note) if n))
