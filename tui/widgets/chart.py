"""The live loss / accuracy chart of a training run (textual-plotext).

The legend is the box's bottom line (its border subtitle), not plotext's: plotext draws its own
legend only when the plot is at least one row per series high, and then over the curves, so at
80x24 there was none."""

from __future__ import annotations

import math

from rich.color import Color
from rich.text import Text
from textual_plotext import PlotextPlot

#: (label, colour, y axis) of each curve; colours from the vote strip's palette (dark and light themes).
SERIES = (
    ("loss", "#4e79a7", "left"),
    ("val loss", "#76b7b2", "left"),
    ("acc", "#f28e2b", "right"),
    ("val acc", "#e15759", "right"),
)


class TrainingChart(PlotextPlot):
    """Loss (left axis) and accuracy (right axis) per epoch; validation curves when there are any."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.epochs: list[int] = []
        self.series: dict[str, list[float]] = {label: [] for label, _, _ in SERIES}
        self._pending = False

    def clear_history(self) -> None:
        self.epochs.clear()
        for values in self.series.values():
            values.clear()
        self.replot()

    def add_epoch(
        self, epoch: int, loss: float, accuracy: float, val_loss: float, val_accuracy: float
    ) -> None:
        self.epochs.append(epoch)
        for label, value in zip(self.series, (loss, val_loss, accuracy, val_accuracy), strict=True):
            self.series[label].append(value)
        if not self._pending:  # fast epochs: redraw at most five times a second
            self._pending = True
            self.set_timer(0.2, self.replot)

    def on_mount(self) -> None:
        self.replot()

    def replot(self) -> None:
        self._pending = False
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        legend = Text()
        if not self.epochs:
            plt.title("no epochs yet")
        for label, colour, side in SERIES:
            values = self.series[label]
            if not self.epochs or all(math.isnan(v) for v in values):
                continue
            plt.plot(self.epochs, values, yside=side, marker="braille", color=Color.parse(colour).triplet)
            legend.append(" ━ ", style=colour).append(label)
        if self.epochs:
            step = max(1, -(-len(self.epochs) // 6))
            plt.xticks([float(e) for e in self.epochs[::step]])
        self.border_subtitle = legend.append(" ") if legend else None
        self.refresh()
