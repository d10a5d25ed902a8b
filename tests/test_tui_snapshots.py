"""SVG snapshots of the four panes at 80x24 and 120x40 (pytest-textual-snapshot).

The content is fixed: a described dataset (no files are read), engine events and results fed to
the panes as the engine would send them, a fixed device label and fixed paths. So a snapshot
changes only when the layout or the wording does. Update with `pytest --snapshot-update`, then
look at the SVGs (tests/__snapshots__/) before committing them.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from genre_erkennung.core import events as ev
from genre_erkennung.core.config import Settings
from genre_erkennung.core.dataset import Dataset, Problem, Song
from genre_erkennung.core.workspace import Workspace
from genre_erkennung.tui.app import GenreApp

SIZES = [(80, 24), (120, 40)]
ROOT = Path("/music/genres")
GENRES = ["ambient", "electronic", "jazz", "rock"]


def described_dataset() -> Dataset:
    songs: list[Song] = []
    titles = {
        "ambient": ["Nebel über dem See", "slow tide", "Glaciär"],
        "electronic": ["Nachtfahrt über die Brücke", "Pulse Grid", "neon_drift"],
        "jazz": ["Señor Walker", "Blue Sunday", "Brushes"],
        "rock": ["Lärm & Lüge", "Garage Riff", "Amp on 11"],
    }
    for g, genre in enumerate(GENRES):
        for i, title in enumerate(titles[genre]):
            split = "test" if i == 2 else "train"
            if genre == "jazz" and split == "test":
                continue  # jazz is missing in test/
            songs.append(
                Song(
                    ROOT / split / genre / f"{title}.mp3",
                    split,
                    genre,
                    key=f"{g}{i}" * 8,
                    duration=40.0 + 3 * i + g,
                    format="mp3",
                    channels=2,
                    sample_rate=44100,
                )
            )
    broken = ROOT / "train" / "rock" / "broken.flac"
    songs.append(Song(broken, "train", "rock", error="invalid data found when processing input"))
    problems = [
        Problem("genre-one-split", "genre 'jazz' is in train/ only, not in test/"),
        Problem("unreadable", "invalid data found when processing input", str(broken)),
        Problem("not-audio", "not audio, skipped", str(ROOT / "train" / "rock" / "cover.jpg")),
    ]
    return Dataset(ROOT, songs, problems)


def snapshot_app(theme: str | None = None) -> GenreApp:
    settings = Settings()
    settings.training.epochs = 5
    workspace = Workspace(Path("/home/ada/.local/share/genre-erkennung"))
    app = GenreApp(settings, workspace=workspace, device="CPU", scan_on_mount=False, load_models=False)
    if theme:
        app.theme = theme
    return app


async def with_dataset(pilot) -> GenreApp:
    app: GenreApp = pilot.app
    app.dataset = described_dataset()
    await pilot.pause()
    return app


def song(genre: str, title: str) -> str:
    return str(ROOT / "train" / genre / f"{title}.mp3")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dataset_pane(snap_compare, size: tuple[int, int]) -> None:
    async def run_before(pilot) -> None:
        await with_dataset(pilot)
        await pilot.press("down", "down")  # train > ambient > first song

    assert snap_compare(snapshot_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_extraction_pane(snap_compare, size: tuple[int, int]) -> None:
    async def run_before(pilot) -> None:
        app = await with_dataset(pilot)
        await pilot.press("2")
        pane = app.query_one("#extraction-pane")
        pane.cancel = object()  # shown as running: Cancel enabled, Start greyed out
        pane.refresh_bindings()
        for e in (
            ev.JobStarted("extract", 10, 452.0),
            ev.SongDone(song("ambient", "Nebel über dem See"), 2, 40.0, cached=True),
            ev.SongDone(song("ambient", "slow tide"), 2, 43.0, cached=True),
            ev.SongStarted(song("electronic", "Nachtfahrt über die Brücke"), 0),
            ev.SongStarted(song("electronic", "Pulse Grid"), 1),
            ev.SongDone(song("electronic", "Nachtfahrt über die Brücke"), 2, 41.0, worker=0),
            ev.SongStarted(song("jazz", "Señor Walker"), 0),
            ev.SongFailed(
                str(ROOT / "train" / "rock" / "broken.flac"), "invalid data found when processing input"
            ),
            ev.ExtractProgress(4, 1, 10, 41.0, 1.0, 41.0, 7.5),
        ):
            pane.apply(e)
        await pilot.pause()

    assert snap_compare(snapshot_app(), terminal_size=size, run_before=run_before)


def test_extraction_pane_ray_engine(snap_compare) -> None:
    """The engine row with ray chosen (by keys) and an address typed: the address box enabled."""

    async def run_before(pilot) -> None:
        await with_dataset(pilot)
        await pilot.press("2", "e", "enter", "down", "enter", "tab", *"10.0.0.1:6390", "escape")

    assert snap_compare(snapshot_app(), terminal_size=SIZES[0], run_before=run_before)


def fake_train_result() -> SimpleNamespace:
    confusion = pd.DataFrame(
        [[7, 1, 0, 0], [0, 8, 0, 0], [1, 0, 5, 2], [0, 0, 1, 7]], index=GENRES, columns=GENRES
    )
    metrics = SimpleNamespace(
        song_accuracy=0.875, chunk_accuracy=0.8125, songs=8, chunks=32, confusion=confusion
    )
    baseline = SimpleNamespace(song_accuracy=0.5)
    ensemble = SimpleNamespace(song_accuracies=lambda: [0.75, 0.875, 0.875])  # a 3-member ensemble
    card = SimpleNamespace(
        metrics=metrics, baseline=baseline, ensemble=ensemble, baseline_warning=lambda: None
    )
    return SimpleNamespace(
        name="merged-demo", metrics=metrics, baseline=baseline, card=card, stopped="epochs"
    )


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_training_pane(snap_compare, size: tuple[int, int]) -> None:
    async def run_before(pilot) -> None:
        app = await with_dataset(pilot)
        await pilot.press("3")
        pane = app.query_one("#training-pane")
        pane.apply(ev.JobStarted("train", 5))
        history = [(1.38, 0.31, 1.30, 0.40), (1.12, 0.52, 1.05, 0.55), (0.86, 0.66, 0.91, 0.62)]
        history += [(0.64, 0.78, 0.80, 0.70), (0.51, 0.84, 0.83, 0.70)]
        for i, (loss, acc, vloss, vacc) in enumerate(history, 1):
            pane.apply(ev.EpochEnd(i, 5, loss, acc, vloss, vacc, 1.5, 210.0, best=i < 5))
        pane.show_result(fake_train_result())
        app.query_one("#train-chart").replot()  # it redraws on a timer while epochs stream in
        await pilot.pause()

    assert snap_compare(snapshot_app(), terminal_size=size, run_before=run_before)


def fake_query_songs() -> list:
    from genre_erkennung.core.predict import ChunkResult, SongResult, Verdict

    votes = ["rock", "rock", "jazz", "rock", "rock", "rock", "electronic", "rock"]
    chunks = []
    for i, genre in enumerate(votes):
        probs = {g: 0.05 for g in GENRES}
        probs[genre] = 0.85
        chunks.append(ChunkResult(i, 30.0 * i, 30.0 * (i + 1), genre, probs))
    ranking = [("rock", 0.71), ("jazz", 0.14), ("electronic", 0.1), ("ambient", 0.05)]
    first = SongResult(
        "https://example.org/garage",
        "Garage Riff (live)",
        "/dl/x.mp3",
        240.0,
        chunks,
        Verdict("rock", 0.75, 6, 8, ranking),
    )
    calm = [
        ChunkResult(i, 30.0 * i, 30.0 * (i + 1), "ambient", {**{g: 0.1 for g in GENRES}, "ambient": 0.7})
        for i in range(3)
    ]
    second = SongResult(
        "/music/new/Morgenröte.ogg",
        "Morgenröte",
        "/music/new/Morgenröte.ogg",
        85.0,
        calm,
        Verdict("ambient", 1.0, 3, 3, [("ambient", 0.7), ("electronic", 0.1), ("jazz", 0.1), ("rock", 0.1)]),
    )
    return [first, second]


@pytest.mark.parametrize(
    ("size", "theme"),
    [(SIZES[0], None), (SIZES[1], None), (SIZES[0], "textual-light")],
    ids=["80x24", "120x40", "80x24-light"],
)
def test_query_pane(snap_compare, size: tuple[int, int], theme: str | None) -> None:
    async def run_before(pilot) -> None:
        from genre_erkennung.core.registry import ModelInfo

        app = await with_dataset(pilot)
        app.models = (ModelInfo("merged-demo", Path("/m")),)
        app.model_name = "merged-demo"
        await pilot.press("4")
        pane = app.query_one("#query-pane")
        first, second = fake_query_songs()
        pane.show_results(GENRES, [second])
        pane.show_results(GENRES, [first])
        app.query_one("#query-recent").focus()
        await pilot.pause()

    assert snap_compare(snapshot_app(theme), terminal_size=size, run_before=run_before)
