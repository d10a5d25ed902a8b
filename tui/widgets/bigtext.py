"""Large type for the verdict: a two-row half-block font (A-Z, 0-9, a few signs).

Letters outside the font are folded to their ASCII base (ü -> U); anything else is drawn at
normal size on the lower row, so any genre name shows.
"""

from __future__ import annotations

import unicodedata

from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.widget import Widget

FONT: dict[str, tuple[str, str]] = {
    "A": ("█▀█", "█▀█"),
    "B": ("█▀▄", "█▄█"),
    "C": ("█▀▀", "█▄▄"),
    "D": ("█▀▄", "█▄▀"),
    "E": ("█▀▀", "██▄"),
    "F": ("█▀▀", "█▀ "),
    "G": ("█▀▀", "█▄█"),
    "H": ("█ █", "█▀█"),
    "I": ("█", "█"),
    "J": ("  █", "█▄█"),
    "K": ("█▄▀", "█ █"),
    "L": ("█  ", "█▄▄"),
    "M": ("█▀▄▀█", "█ ▀ █"),
    "N": ("█▄ █", "█ ▀█"),
    "O": ("█▀█", "█▄█"),
    "P": ("█▀█", "█▀▀"),
    "Q": ("█▀█", "▀▀█"),
    "R": ("█▀█", "█▀▄"),
    "S": ("█▀▀", "▄▄█"),
    "T": ("▀█▀", " █ "),
    "U": ("█ █", "█▄█"),
    "V": ("█ █", "▀▄▀"),
    "W": ("█ █ █", "▀▄▀▄▀"),
    "X": ("▀▄▀", "█ █"),
    "Y": ("█▄█", " █ "),
    "Z": ("▀▀█", "█▄▄"),
    "0": ("█▀█", "█▄█"),
    "1": ("▀█", " █"),
    "2": ("▀▀█", "█▄▄"),
    "3": ("▀▀█", "▄▄█"),
    "4": ("█ █", "▀▀█"),
    "5": ("█▀▀", "▄▄█"),
    "6": ("█▀▀", "█▄█"),
    "7": ("▀▀█", "  █"),
    "8": ("█▀█", "█▄█"),
    "9": ("█▀█", "▄▄█"),
    "-": ("▄▄", "  "),
    "_": ("  ", "▄▄"),
    "&": ("▄▀▄", "▀▄█"),
    "'": ("▀", " "),
    ".": (" ", "▄"),
    " ": ("  ", "  "),
}


def render_big(text: str) -> tuple[str, str]:
    """The two rows of `text` in the font (one column between letters)."""
    top: list[str] = []
    bottom: list[str] = []
    for ch in text.upper():
        glyph = FONT.get(ch)
        if glyph is None:
            base = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode().upper()
            glyph = FONT.get(base[:1]) if base else None
        if glyph is None:
            glyph = (" " * len(ch), ch)
        top.append(glyph[0])
        bottom.append(glyph[1])
    return " ".join(top), " ".join(bottom)


class BigText(Widget):
    """`text` in large type; falls back to bold normal text when it does not fit the width."""

    text: reactive[str] = reactive("", layout=True)

    def render(self) -> Text:
        if not self.text:
            return Text("")
        top, bottom = render_big(self.text)
        if self.size.width and len(top) > self.size.width:
            return Text(self.text, style="bold")
        return Text(f"{top}\n{bottom}")

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return len(render_big(self.text)[0]) if self.text else 0

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return 2
