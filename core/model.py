"""The networks: the original pipeline's merged two-branch model and its single branches.

Every model takes (mfcc [B, T_mfcc, coeffs], contrast [B, T_sc, bands]) and returns logits
[B, genres]; the single-branch models ignore the input they do not use, so training, evaluation
and query never need to know which one they hold. Softmax is applied by the loss and by
`predict.predict_chunks`, not inside the network.

A song's last chunk is zero-padded to full length. An optional third input, `valid` [B, 2]
(valid MFCC and contrast frames per chunk, see `tensors.valid_frames`), makes each LSTM answer
with its output at the last step whose receptive field lies wholly in the chunk's real audio,
instead of after the padding: the LSTM runs forwards, so that output never sees a padded frame.
Full-length chunks (or `valid=None`) give exactly the last state, as before.
"""

from __future__ import annotations

import torch
from torch import nn

from .card import KINDS, Architecture, ModelCard
from .config import ModelSettings
from .errors import ModelError


def _steps(layers: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    """Valid input frames [B] -> the output steps of `layers` computed from valid frames only.

    Each convolution and pooling shortens a sequence as PyTorch documents (no padding is used);
    at least one step is kept, so a chunk shorter than the receptive field still gets an answer.
    """
    for m in layers.modules():
        if isinstance(m, nn.Conv1d | nn.MaxPool1d):
            k, s, p, d = (
                int(x if isinstance(x, int) else x[0])
                for x in (m.kernel_size, m.stride, m.padding, m.dilation)
            )
            frames = torch.div(frames + 2 * p - d * (k - 1) - 1, s, rounding_mode="floor") + 1
    return frames.clamp(min=1)


def _last(seq: torch.Tensor, steps: torch.Tensor | None) -> torch.Tensor:
    """LSTM outputs [B, T, H] -> the output at each chunk's last valid step [B, H]."""
    if steps is None:
        return seq[:, -1]
    at = steps.clamp(max=seq.shape[1]).to(seq.device) - 1
    return seq[torch.arange(seq.shape[0], device=seq.device), at]


class MfccBranch(nn.Module):
    """Conv(k4) ReLU Pool(4) Drop; Conv(k4) ReLU Pool(4) Drop; LSTM last valid state; Drop; Linear."""

    def __init__(self, coeffs: int, genres: int, s: ModelSettings) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(coeffs, s.mfcc_conv, kernel_size=4),
            nn.ReLU(),
            nn.MaxPool1d(4),
            nn.Dropout(s.mfcc_dropout),
            nn.Conv1d(s.mfcc_conv, s.mfcc_bottleneck, kernel_size=4),
            nn.ReLU(),
            nn.MaxPool1d(4),
            nn.Dropout(s.mfcc_dropout),
        )
        self.lstm = nn.LSTM(s.mfcc_bottleneck, s.mfcc_lstm, batch_first=True)
        self.drop = nn.Dropout(s.mfcc_dropout)
        self.out = nn.Linear(s.mfcc_lstm, genres)

    def forward(self, x: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        seq, _ = self.lstm(self.convs(x.transpose(1, 2)).transpose(1, 2))
        steps = None if frames is None else _steps(self.convs, frames)
        return self.out(self.drop(_last(seq, steps)))


class ContrastBranch(nn.Module):
    """Conv(k3, stride 4) ReLU Drop; LSTM last valid state; Drop. Returns `contrast_lstm` features."""

    def __init__(self, bands: int, s: ModelSettings) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(bands, s.contrast_conv, kernel_size=3, stride=4),
            nn.ReLU(),
            nn.Dropout(s.contrast_dropout),
        )
        self.lstm = nn.LSTM(s.contrast_conv, s.contrast_lstm, batch_first=True)
        self.drop = nn.Dropout(s.contrast_dropout)

    def forward(self, x: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        seq, _ = self.lstm(self.conv(x.transpose(1, 2)).transpose(1, 2))
        steps = None if frames is None else _steps(self.conv, frames)
        return self.drop(_last(seq, steps))


class Merged(nn.Module):
    """Both branches; the head mixes the MFCC branch's genre scores with contrast features."""

    def __init__(self, a: Architecture) -> None:
        super().__init__()
        self.mfcc = MfccBranch(a.coeffs, a.genres, a.sizes)
        self.contrast = ContrastBranch(a.bands, a.sizes)
        self.head = nn.Sequential(
            nn.Linear(a.genres + a.sizes.contrast_lstm, a.sizes.head),
            nn.Linear(a.sizes.head, a.genres),
        )

    def forward(
        self, mfcc: torch.Tensor, contrast: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        m, c = (None, None) if valid is None else (valid[:, 0], valid[:, 1])
        return self.head(torch.cat([self.mfcc(mfcc, m), self.contrast(contrast, c)], dim=1))


class MfccOnly(nn.Module):
    def __init__(self, a: Architecture) -> None:
        super().__init__()
        self.mfcc = MfccBranch(a.coeffs, a.genres, a.sizes)

    def forward(
        self, mfcc: torch.Tensor, contrast: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.mfcc(mfcc, None if valid is None else valid[:, 0])


class ContrastOnly(nn.Module):
    def __init__(self, a: Architecture) -> None:
        super().__init__()
        self.contrast = ContrastBranch(a.bands, a.sizes)
        self.out = nn.Linear(a.sizes.contrast_lstm, a.genres)

    def forward(
        self, mfcc: torch.Tensor, contrast: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.out(self.contrast(contrast, None if valid is None else valid[:, 1]))


_CLASSES = {"merged": Merged, "mfcc": MfccOnly, "contrast": ContrastOnly}

#: The shortest inputs the layers accept: two conv(4)+pool(4) stages; one conv(3).
MIN_FRAMES = (31, 3)


def build(a: Architecture) -> nn.Module:
    if a.kind not in _CLASSES:
        raise ModelError(f"unknown model {a.kind!r} (known: {', '.join(KINDS)})")
    if a.genres < 2:
        raise ModelError(f"a model needs at least 2 genres, got {a.genres}")
    return _CLASSES[a.kind](a)


class EnsembleNet(nn.Module):
    """Networks of one architecture answering together: the output is the log of the mean of
    their calibrated probabilities, so a softmax of it (as every caller applies) is that mean."""

    def __init__(self, members: list[nn.Module], temperatures: list[float]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.temperatures = list(temperatures)  # the card keeps them, not the weights file

    def forward(
        self, mfcc: torch.Tensor, contrast: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        probs = [
            torch.softmax(m(mfcc, contrast, valid).float() / t, dim=1)
            for m, t in zip(self.members, self.temperatures, strict=True)
        ]
        return torch.stack(probs).mean(0).clamp_min(1e-30).log()


def from_card(card: ModelCard) -> nn.Module:
    """The network a card describes (an ensemble's members inside one module), untrained."""
    if card.ensemble is None:
        return build(card.architecture)
    temperatures = card.ensemble.temperatures
    return EnsembleNet([build(card.architecture) for _ in temperatures], temperatures)


def check_frames(frames: tuple[int, int]) -> None:
    """Refuse chunks too short for the convolutions, with the reason."""
    if frames[0] < MIN_FRAMES[0] or frames[1] < MIN_FRAMES[1]:
        raise ModelError(
            f"chunks give {frames[0]} MFCC and {frames[1]} contrast frames; the model needs at "
            f"least {MIN_FRAMES[0]} and {MIN_FRAMES[1]}: use a longer audio.chunk_seconds"
        )
