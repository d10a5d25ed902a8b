"""Temperature scaling: one number that makes a model's probabilities mean what they say.

After training, the logits of the validation chunks are divided by a temperature T fitted to
minimise their negative log-likelihood (L-BFGS on log T, deterministic). T > 1 softens an
over-confident model, T < 1 sharpens a timid one; the argmax of every chunk is unchanged, so
chunk votes and majority verdicts stay as they were while confidences become comparable to a
threshold (`query.min_confidence`). Fitted on validation songs only, never on the test split.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .card import Calibration

#: The temperature is kept in this range: outside it the validation set is too small to say.
LIMITS = (0.05, 20.0)


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    return float(F.cross_entropy(logits.double() / temperature, labels))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> Calibration:
    """The temperature minimising the NLL of `logits` [N, genres] against `labels` [N]."""
    x, y = logits.detach().double().cpu(), labels.cpu()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp().clamp(*LIMITS))
    before, after = nll(x, y), nll(x, y, t)
    if after > before:  # L-BFGS found nothing better than leaving the model as it is
        t, after = 1.0, before
    return Calibration(round(t, 6), round(before, 6), round(after, 6), len(y))
