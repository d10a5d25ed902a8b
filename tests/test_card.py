"""The typed model card: the file format stays, the schema is checked, listing needs no torch."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from genre_erkennung.core.card import CardError, ModelCard

V1 = Path(__file__).parent / "data" / "model_card_v1.json"


def _kept(old: object, new: object) -> bool:
    """Everything in `old` is in `new` unchanged (newer fields may be added beside it)."""
    if isinstance(old, dict):
        return isinstance(new, dict) and all(k in new and _kept(v, new[k]) for k, v in old.items())
    return old == new


def test_a_card_written_by_format_1_code_loads_and_writes_back_what_it_read() -> None:
    data = json.loads(V1.read_text())
    card = ModelCard.from_json(data)
    assert card.architecture.kind == "merged" and card.architecture.sizes.mfcc_lstm == 300
    assert card.genres == ["blues", "metal"] and card.frames == (40, 80)
    assert card.history[0].epoch == 1 and card.training.fit.songs <= card.dataset.train.songs
    assert card.metrics.per_genre["blues"].support > 0
    assert _kept(data, card.to_json())
    assert ModelCard.from_json(card.to_json()).to_json() == card.to_json()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("architecture", "kind"), "transformer", "unknown architecture 'transformer'"),
        (("architecture", "sizes", "mfcc_lstm"), 0, "architecture size mfcc_lstm = 0"),
        (("genres",), ["blues", "blues"], "do not fit a 2-genre model"),
        (("normalisation", "mfcc_std"), [0.0] * 20, "normalisation mfcc_std holds values <= 0"),
        (("input", "frames"), [40], "input.frames should be a list of 2"),
        (("metrics", "songs"), "many", "metrics.songs should be int"),
        (("training",), None, "training should be an object"),
    ],
)
def test_a_malformed_card_names_what_is_wrong(path: tuple[str, ...], value: object, message: str) -> None:
    data = copy.deepcopy(json.loads(V1.read_text()))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(CardError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ModelCard.from_json(data)


def test_a_missing_key_is_named() -> None:
    data = json.loads(V1.read_text())
    del data["dataset"]["fingerprint"]
    with pytest.raises(CardError, match=r"lacks dataset\.fingerprint"):
        ModelCard.from_json(data)


def test_reading_cards_imports_no_torch() -> None:
    code = (
        "import sys, json; from genre_erkennung.core.card import ModelCard; "
        "from genre_erkennung.core import registry; "
        f"ModelCard.from_json(json.load(open({str(V1)!r}))); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
