"""The networks: the layers DESIGN.md names, any number of genres, sizes from the config."""

from __future__ import annotations

import pytest
import torch

from genre_erkennung.core.config import ModelSettings
from genre_erkennung.core.errors import ModelError
from genre_erkennung.core.features import frame_counts
from genre_erkennung.core.model import (
    KINDS,
    MIN_FRAMES,
    Architecture,
    build,
    check_frames,
)
from genre_erkennung.core.tensors import valid_frames


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
    sizes = ModelSettings(
        mfcc_conv=8, mfcc_bottleneck=4, mfcc_lstm=16, contrast_conv=6, contrast_lstm=5, head=12
    )
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


def _old_forward(model: torch.nn.Module, mfcc: torch.Tensor, contrast: torch.Tensor) -> torch.Tensor:
    """The merged model as it was before padding was masked: each LSTM's state after all frames."""
    _, (m, _) = model.mfcc.lstm(model.mfcc.convs(mfcc.transpose(1, 2)).transpose(1, 2))
    _, (c, _) = model.contrast.lstm(model.contrast.conv(contrast.transpose(1, 2)).transpose(1, 2))
    return model.head(torch.cat([model.mfcc.out(m[-1]), c[-1]], dim=1))


def test_whole_chunks_give_exactly_what_the_last_state_gave() -> None:
    torch.manual_seed(0)
    model = build(Architecture("merged", 4)).eval()
    mfcc, contrast = torch.randn(3, 1292, 20), torch.randn(3, 2584, 7)
    whole = valid_frames(torch.full((3,), 30 * 44100), (1292, 2584))
    assert whole.tolist() == [[1292, 2584]] * 3
    with torch.no_grad():
        before = _old_forward(model, mfcc, contrast)
        assert torch.equal(model(mfcc, contrast, whole), before)
        assert torch.equal(model(mfcc, contrast), before)


def test_valid_frames_follow_the_feature_framing() -> None:
    lengths = [1, 1023, 1024, 1025, 10 * 44100, 19.4 * 44100, 30 * 44100]
    valid = valid_frames(torch.tensor([int(n) for n in lengths]), (1292, 2584))
    assert valid.tolist() == [list(frame_counts(int(n))) for n in lengths]
    assert valid_frames(torch.tensor([0, 10**9]), (40, 80)).tolist() == [[1, 1], [40, 80]]


@pytest.mark.parametrize("kind", KINDS)
def test_a_padded_chunk_is_judged_by_its_valid_frames_alone(kind: str) -> None:
    torch.manual_seed(0)
    model = build(Architecture(kind, 3)).eval()
    length = 150 * 1024 - 300  # 150 MFCC and 300 contrast frames of music
    valid = valid_frames(torch.tensor([length]), (400, 800))
    assert valid.tolist() == [[150, 300]]
    mfcc, contrast = torch.randn(1, 400, 20), torch.randn(1, 800, 7)
    mfcc[:, 150:], contrast[:, 300:] = -3.0, -2.0  # standardised features of digital silence
    with torch.no_grad():
        out = model(mfcc, contrast, valid)
        # Other numbers in the padding: the same answer.
        noisy_m, noisy_c = mfcc.clone(), contrast.clone()
        noisy_m[:, 150:], noisy_c[:, 300:] = torch.randn(1, 250, 20), torch.randn(1, 500, 7)
        torch.testing.assert_close(model(noisy_m, noisy_c, valid), out, rtol=0, atol=1e-6)
        # The same music padded to another chunk length: the same answer.
        longer_m = torch.cat([mfcc, mfcc[:, -100:]], dim=1)
        longer_c = torch.cat([contrast, contrast[:, -200:]], dim=1)
        torch.testing.assert_close(model(longer_m, longer_c, valid), out, rtol=0, atol=1e-6)
        torch.testing.assert_close(model(mfcc[:, :200], contrast[:, :400], valid), out, rtol=0, atol=1e-6)
        # Batched with whole chunks: still the same answer for the padded one.
        batch_m, batch_c = (
            torch.cat([torch.randn(2, 400, 20), mfcc]),
            torch.cat([torch.randn(2, 800, 7), contrast]),
        )
        batch_valid = torch.cat([valid_frames(torch.full((2,), 10**9), (400, 800)), valid])
        torch.testing.assert_close(model(batch_m, batch_c, batch_valid)[2:], out, rtol=0, atol=1e-5)
        # The music itself still counts, and read after the padding (the old way) it would not.
        changed_m, changed_c = mfcc.clone(), contrast.clone()
        changed_m[:, 100:150] += 2.0
        changed_c[:, 200:300] += 2.0
        assert not torch.allclose(model(changed_m, changed_c, valid), out)
        assert not torch.allclose(model(noisy_m, noisy_c), model(mfcc, contrast))


def test_chunks_shorter_than_the_receptive_field_still_get_one_step() -> None:
    model = build(Architecture("merged", 2)).eval()
    valid = valid_frames(torch.tensor([1, 5 * 1024]), (64, 128))
    with torch.no_grad():
        out = model(torch.randn(2, 64, 20), torch.randn(2, 128, 7), valid)
    assert out.shape == (2, 2) and torch.isfinite(out).all()
