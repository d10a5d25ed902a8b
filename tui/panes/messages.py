"""What panes tell the app ("messages up"). The app keeps the shared state (dataset, models,
the selected model, the feature store's generation) as reactives bound into the panes
("attributes down"), so no pane calls into another and the app never pushes into a pane."""

from __future__ import annotations

from textual.message import Message

from genre_erkennung.core.dataset import Dataset


class DatasetScanned(Message):
    """A scan finished: this is now the app's dataset."""

    def __init__(self, dataset: Dataset) -> None:
        super().__init__()
        self.dataset = dataset


class FeaturesChanged(Message):
    """An extraction run ended: what the store holds has changed."""


class ModelSaved(Message):
    """A training run saved `name`: list the models again and select it."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class ModelChosen(Message):
    """The user picked the model that answers queries."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
