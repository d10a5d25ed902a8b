"""The live loss / accuracy chart of a training run (textual-plotext)."""

from __future__ import annotations

import math

from textual_plotext import PlotextPlot


class TrainingChart(PlotextPlot):
    """Loss (left axis) and accuracy (right axis) per epoch; validation curves when there are any."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.epochs: list[int] = []
        self.loss: list[float] = []
        self.val_loss: list[float] = []
        self.accuracy: list[float] = []
        self.val_accuracy: list[float] = []
        self._pending = False

    def clear_history(self) -> None:
        for series in (self.epochs, self.loss, self.val_loss, self.accuracy, self.val_accuracy):
            series.clear()
        self.replot()

    def add_epoch(
        self, epoch: int, loss: float, accuracy: float, val_loss: float, val_accuracy: float
    ) -> None:
        self.epochs.append(epoch)
        self.loss.append(loss)
        self.accuracy.append(accuracy)
        self.val_loss.append(val_loss)
        self.val_accuracy.append(val_accuracy)
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
        plt.xlabel("epoch")
        if not self.epochs:
            plt.title("no epochs yet")
            self.refresh()
            return
        x = self.epochs
        plt.plot(x, self.loss, label="loss", marker="braille")
        if not all(math.isnan(v) for v in self.val_loss):
            plt.plot(x, self.val_loss, label="val loss", marker="braille")
        plt.plot(x, self.accuracy, label="acc", yside="right", marker="braille")
        if not all(math.isnan(v) for v in self.val_accuracy):
            plt.plot(x, self.val_accuracy, label="val acc", yside="right", marker="braille")
        step = max(1, -(-len(x) // 6))
        plt.xticks([float(t) for t in x[::step]])
        self.refresh()
