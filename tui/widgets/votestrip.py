"""The vote strip of a queried song: one cell per chunk coloured by its genre, times under it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.widget import Widget

from ..common import clock, genre_list

#: Tableau 10: distinct hues that stand out on dark and on light backgrounds alike.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)


def genre_colour(genres: list[str], genre: str) -> str:
    """The colour of a genre: by its place in the model's label order, so it never changes."""
    try:
        return PALETTE[genres.index(genre) % len(PALETTE)]
    except ValueError:
        return "#888888"


def ink(background: str) -> str:
    """Black or white, whichever reads better on `background`."""
    r, g, b = Color.parse(background).get_truecolor()
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#ffffff"


def abbreviations(genres: list[str], width: int) -> list[str]:
    """Headers of at most `width` characters, no two alike: 'electronic' -> 'elec'; 'jazz' and
    'jazz, smooth' -> 'jaz1', 'jaz2' (the legend and the colours name them in full)."""
    short = [g[:width].rstrip(" ,") or g[:width] for g in genres]
    clashes = Counter(short)
    seen: Counter[str] = Counter()
    out: list[str] = []
    for name in short:
        if clashes[name] > 1:
            seen[name] += 1
            number = str(seen[name])
            name = name[: width - len(number)] + number
        out.append(name)
    return out if len(set(out)) == len(out) else [str(i) for i in range(1, len(out) + 1)]


def chip(genres: list[str], genre: str) -> Style:
    """The genre's colour as a background with readable ink: legible on dark and light themes."""
    colour = genre_colour(genres, genre)
    return Style(color=ink(colour), bgcolor=colour, bold=True)


@dataclass(frozen=True)
class Vote:
    index: int
    start: float
    end: float
    genre: str


class VoteStrip(Widget):
    """Three rows: the cells (genre initial on the genre's colour), time labels, and a legend."""

    votes: reactive[tuple[Vote, ...]] = reactive((), layout=True)
    genres: reactive[tuple[str, ...]] = reactive(())

    def set_votes(self, genres: list[str], votes: list[Vote]) -> None:
        self.genres = tuple(genres)
        self.votes = tuple(sorted(votes, key=lambda v: v.index))

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return 3

    def render(self) -> Text:
        if not self.votes:
            return Text("no chunks yet", style="dim")
        width = max(self.size.width, 10)
        genres = list(self.genres)
        n = len(self.votes)
        cell = max(1, min(8, width // n))
        shown = self.votes[: width // cell]
        strip = Text()
        for v in shown:
            colour = genre_colour(genres, v.genre)
            label = (v.genre[: cell - 1] if cell >= 3 else v.genre[:1]).ljust(cell)
            strip.append(label, Style(color=ink(colour), bgcolor=colour, bold=True))
        if len(shown) < n:
            strip.append("…", "dim")
        times = [" "] * (len(shown) * cell)
        free_from = 0
        for i, v in enumerate(shown):
            label = clock(v.start)
            at = i * cell
            if at >= free_from and at + len(label) <= len(times):
                times[at : at + len(label)] = list(label)
                free_from = at + len(label) + 1
        legend = Text()
        for g in genres:
            colour = genre_colour(genres, g)
            legend.append("■ ", Style(color=colour))
            legend.append(f"{genre_list([g])}  ")
        legend.truncate(width, overflow="ellipsis")
        return Text("\n").join([strip, Text("".join(times), style="dim"), legend])
