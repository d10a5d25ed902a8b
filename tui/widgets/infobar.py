"""The two-line header: app name, compute device, selected model; workspace and dataset root."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


def _fit(text: str, width: int) -> str:
    """Keep the end of a long value (paths end in what matters)."""
    if width <= 1 or len(text) <= width:
        return text
    return "…" + text[-(width - 1) :]


class InfoBar(Widget):
    """Shows where the app works and with what; the app sets the reactive fields."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "infobar--title",
        "infobar--label",
        "infobar--value",
        "infobar--missing",
    }

    workspace: reactive[str] = reactive("")
    dataset: reactive[str] = reactive("")
    device: reactive[str] = reactive("")
    model: reactive[str] = reactive("")

    def render(self) -> Text:
        width = max(self.size.width, 20)
        label = self.get_component_rich_style("infobar--label")
        value = self.get_component_rich_style("infobar--value")
        missing = self.get_component_rich_style("infobar--missing")
        title = self.get_component_rich_style("infobar--title")

        def field(name: str, text: str, room: int, none: str) -> Text:
            room = max(room - len(name) - 1, 4)
            if text:
                return Text.assemble((name + " ", label), (_fit(text, room), value))
            return Text.assemble((name + " ", label), (none, missing))

        head = Text(" genre-erkennung ", style=title)
        rest = width - len(head) - 2
        device = field("device", self.device, max(rest // 2, 14), "…")
        model = field("model", self.model, rest - len(device) - 2, "none yet")
        line1 = Text.assemble(head, "  ", device, "  ", model)
        half = (width - 3) // 2
        ws = field("workspace", self.workspace, half, "–")
        ds = field("dataset", self.dataset, width - 3 - len(ws), "none (press o on the Dataset tab)")
        line2 = Text.assemble(" ", ws, "  ", ds)
        for line in (line1, line2):
            line.truncate(width, overflow="ellipsis")
        return Text("\n").join([line1, line2])
