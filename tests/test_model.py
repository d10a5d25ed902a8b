"""The networks: the layers DESIGN.md names, any number of genres, sizes from the config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genre_erkennung.core.errors import ModelError
from genre_erkennung.core.model import (
    KINDS,
    MIN_FRAMES,
    Architecture,
    Sizes,
    build,
    check_frames,
)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("genres", [2, 7])
def test_every_model_gives_logits_per_genre(kind: str, genres: int) -> None:
    model = build(Architecture(kind, genres)).eval()
    out = model(torch.randn(3, 1292, 20), torch.randn(3, 2584, 7))
    assert out.shape == (3, genres)
    assert torch.isfinite(out).all()


def test_merged_model_has_the_original_layers() -> None:
    shapes = {k: tuple(v.shape) for k, v in build(Architecture("merged", 10)).state_dict().items()}
    assert shapes["mfcc.convs.0.weight"] == (100, 20, 4)
    assert shapes["mfcc.convs.4.weight"] == (20, 100, 4)
    assert shapes["mfcc.lstm.weight_ih_l0"] == (4 * 300, 20)
    assert shapes["mfcc.out.weight"] == (10, 300)
    assert shapes["contrast.conv.0.weight"] == (100, 7, 3)
    assert shapes["contrast.lstm.weight_ih_l0"] == (4 * 100, 100)
    assert shapes["head.0.weight"] == (1000, 10 + 100)
    assert shapes["head.1.weight"] == (10, 1000)
    model = build(Architecture("merged", 10))
    assert model.contrast.conv[0].stride == (4,)
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [0.4, 0.4, 0.4, 0.2, 0.2]


def test_sizes_and_input_widths_come_from_the_architecture() -> None:
    sizes = Sizes(mfcc_conv=8, mfcc_bottleneck=4, mfcc_lstm=16, contrast_conv=6, contrast_lstm=5, head=12)
    model = build(Architecture("merged", 3, coeffs=13, bands=5, sizes=sizes))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["mfcc.convs.0.weight"] == (8, 13, 4)
    assert shapes["contrast.conv.0.weight"] == (6, 5, 3)
    assert shapes["head.0.weight"] == (12, 3 + 5)
    assert model(torch.randn(2, 40, 13), torch.randn(2, 9, 5)).shape == (2, 3)


def test_single_branch_models_ignore_the_other_input() -> None:
    mfcc, contrast = torch.randn(2, 64, 20), torch.randn(2, 64, 7)
    m = build(Architecture("mfcc", 3)).eval()
    assert torch.equal(m(mfcc, contrast), m(mfcc, torch.zeros_like(contrast)))
    c = build(Architecture("contrast", 3)).eval()
    assert torch.equal(c(mfcc, contrast), c(torch.zeros_like(mfcc), contrast))
    assert not any(k.startswith("contrast") for k in m.state_dict())
    assert not any(k.startswith("mfcc") for k in c.state_dict())


def test_shortest_chunks_pass_and_shorter_ones_are_refused() -> None:
    model = build(Architecture("merged", 2)).eval()
    assert model(torch.randn(1, MIN_FRAMES[0], 20), torch.randn(1, MIN_FRAMES[1], 7)).shape == (1, 2)
    check_frames(MIN_FRAMES)
    with pytest.raises(ModelError, match=r"audio\.chunk_seconds"):
        check_frames((MIN_FRAMES[0] - 1, 100))


def test_one_genre_or_unknown_kind_is_refused() -> None:
    with pytest.raises(ModelError, match="at least 2 genres"):
        build(Architecture("merged", 1))
    with pytest.raises(ModelError, match="unknown model"):
        build(Architecture("resnet", 3))


def test_architecture_round_trips_through_json() -> None:
    a = Architecture("contrast", 4, coeffs=20, bands=6, sizes=Sizes(head=50))
    assert Architecture.from_json(a.to_json()) == a
    np.testing.assert_equal(a.to_json()["sizes"]["head"], 50)
