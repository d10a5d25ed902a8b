"""musicnn (Pons & Serra, 2019) in PyTorch, inference only: the graph of `models.build_musicnn`.

Layer by layer as ../shared/pretrained/musicnn-golden/README.md describes it: a batch norm on the
input; a front-end of timbral (7x38, 7x67) and temporal (128, 64, 32 x 1) filters, each
conv -> ReLU -> batch norm -> max over frequency; a mid-end of three dense-residual 7-tap
convolutions; a back-end of max and mean pooling over time, batch norm, dense 200 (ReLU, batch
norm: the embedding) and dense 50 (the tag logits). Weights come from `weights_from_checkpoint`,
which maps TensorFlow's variable names and layouts onto this module's state dict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

N_MELS = 96
EPS = 1e-3  # tf.layers.batch_normalization's default epsilon
TIMBRAL = (("conv2d", 38, "batch_normalization_1"), ("conv2d_1", 67, "batch_normalization_2"))
TEMPORAL = (
    ("conv2d_2", 128, "batch_normalization_3"),
    ("conv2d_3", 64, "batch_normalization_4"),
    ("conv2d_4", 32, "batch_normalization_5"),
)
MIDEND = (
    ("conv2d_5", "batch_normalization_6"),
    ("conv2d_6", "batch_normalization_7"),
    ("conv2d_7", "batch_normalization_8"),
)
FRONTEND_FILTERS = (204, 204, 51, 51, 51)
EMBEDDING = 200
TAGS = 50


def _bn(n: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(n, eps=EPS)


def _relu_bn_max(x: torch.Tensor, bn: nn.Module) -> torch.Tensor:
    """max over the last axis of bn(relu(x)) [B, C, T, F] -> [B, C, T], in two reads of x.

    Inference batch norm is a per-channel affine a*z + b, and relu and max commute, so the
    maximum is a*relu(max x) + b where a >= 0 and a*relu(min x) + b where a < 0: the same
    numbers as the layer-by-layer graph without writing the big [B, C, T, F] tensor three times.
    """
    assert isinstance(bn, nn.BatchNorm2d) and bn.running_var is not None and bn.running_mean is not None
    a = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    b = bn.bias - bn.running_mean * a
    extreme = torch.where((a >= 0)[:, None], x.amax(dim=3), x.amin(dim=3))
    return torch.relu(extreme) * a[:, None] + b[:, None]


@dataclass
class Outputs:
    """What one forward pass gives per patch (the names of the original's feature dict)."""

    penultimate: torch.Tensor  # [B, 200]: the embedding
    logits: torch.Tensor  # [B, 50]
    timbral: torch.Tensor | None = None  # [B, 187, 408]
    temporal: torch.Tensor | None = None  # [B, 187, 153]
    cnn1: torch.Tensor | None = None  # [B, 187, 64]
    cnn2: torch.Tensor | None = None
    cnn3: torch.Tensor | None = None
    mean_pool: torch.Tensor | None = None  # [B, 753]
    max_pool: torch.Tensor | None = None  # [B, 753]

    @property
    def taggram(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)


class Musicnn(nn.Module):
    """Input: log-mel patches [B, 187, 96]; see `forward`."""

    def __init__(self) -> None:
        super().__init__()
        self.input_bn = nn.BatchNorm2d(1, eps=EPS)
        self.timbral = nn.ModuleList(nn.Conv2d(1, 204, (7, int(w))) for _, w, _ in TIMBRAL)
        self.timbral_bn = nn.ModuleList(nn.BatchNorm2d(204, eps=EPS) for _ in TIMBRAL)
        self.temporal = nn.ModuleList(nn.Conv2d(1, 51, (k, 1)) for _, k, _ in TEMPORAL)
        self.temporal_bn = nn.ModuleList(nn.BatchNorm2d(51, eps=EPS) for _ in TEMPORAL)
        self.midend = nn.ModuleList(nn.Conv1d(c, 64, 7) for c in (sum(FRONTEND_FILTERS), 64, 64))
        self.midend_bn = nn.ModuleList(_bn(64) for _ in MIDEND)
        pooled = sum(FRONTEND_FILTERS) + 3 * 64
        self.pool_bn = _bn(2 * pooled)
        self.dense = nn.Linear(2 * pooled, EMBEDDING)
        self.dense_bn = _bn(EMBEDDING)
        self.tags = nn.Linear(EMBEDDING, TAGS)
        self.eval()

    def forward(self, patches: torch.Tensor, features: bool = False) -> Outputs:
        """patches [B, 187, 96] float32; `features` also returns the intermediate layers."""
        x = self.input_bn(patches.unsqueeze(1))  # [B, 1, T, 96]
        front = []
        padded = F.pad(x, (0, 0, 3, 3))  # zeros in the normalised domain, time only
        for conv, bn in zip(self.timbral, self.timbral_bn, strict=True):
            front.append(_relu_bn_max(conv(padded), bn))  # [B, 204, T]
        for conv, bn, (_, k, _) in zip(self.temporal, self.temporal_bn, TEMPORAL, strict=True):
            same = F.pad(x, (0, 0, (k - 1) // 2, k // 2))  # TF SAME: the extra row at the bottom
            front.append(_relu_bn_max(conv(same), bn))  # [B, 51, T]
        frontend = torch.cat(front, dim=1)  # [B, 561, T]
        mids = []
        h = frontend
        for i, (conv, bn) in enumerate(zip(self.midend, self.midend_bn, strict=True)):
            out = bn(F.relu(conv(F.pad(h, (3, 3)))))
            h = out if i == 0 else out + h
            mids.append(h)
        stacked = torch.cat([frontend, *mids], dim=1)  # [B, 753, T]
        max_pool = stacked.amax(dim=2)
        mean_pool = stacked.mean(dim=2)
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)  # interleaved, as TF's flatten
        penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))
        logits = self.tags(penultimate)
        if not features:
            return Outputs(penultimate, logits)
        t = lambda y: y.transpose(1, 2)  # noqa: E731  [B, C, T] -> [B, T, C], the original's layout
        return Outputs(
            penultimate,
            logits,
            timbral=t(torch.cat(front[:2], dim=1)),
            temporal=t(torch.cat(front[2:], dim=1)),
            cnn1=t(mids[0]),
            cnn2=t(mids[1]),
            cnn3=t(mids[2]),
            mean_pool=mean_pool,
            max_pool=max_pool,
        )


def _bn_state(prefix: str, tf: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    return {
        f"{prefix}.weight": tf[f"{name}/gamma"],
        f"{prefix}.bias": tf[f"{name}/beta"],
        f"{prefix}.running_mean": tf[f"{name}/moving_mean"],
        f"{prefix}.running_var": tf[f"{name}/moving_variance"],
    }


def checkpoint_names() -> list[str]:
    """The 64 TensorFlow variables inference needs (no Adam slots)."""
    convs = [c for c, _, _ in TIMBRAL + TEMPORAL] + [c for c, _ in MIDEND]
    bns = ["batch_normalization"] + [b for _, _, b in TIMBRAL + TEMPORAL] + [b for _, b in MIDEND]
    bns += ["batch_normalization_9", "batch_normalization_10"]
    names = [f"{c}/{p}" for c in [*convs, "dense", "dense_1"] for p in ("kernel", "bias")]
    names += [f"{b}/{p}" for b in bns for p in ("gamma", "beta", "moving_mean", "moving_variance")]
    return names


def weights_from_checkpoint(tf: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TensorFlow variables -> this module's state dict (float32, contiguous)."""
    sd: dict[str, np.ndarray] = {}
    sd.update(_bn_state("input_bn", tf, "batch_normalization"))
    for group, convs in (("timbral", TIMBRAL), ("temporal", TEMPORAL)):
        for i, (conv, _, bn) in enumerate(convs):
            sd[f"{group}.{i}.weight"] = tf[f"{conv}/kernel"].transpose(3, 2, 0, 1)  # [kh,kw,in,out]
            sd[f"{group}.{i}.bias"] = tf[f"{conv}/bias"]
            sd.update(_bn_state(f"{group}_bn.{i}", tf, bn))
    for i, (conv, bn) in enumerate(MIDEND):
        sd[f"midend.{i}.weight"] = tf[f"{conv}/kernel"][:, :, 0, :].transpose(2, 1, 0)  # [o, i, t]
        sd[f"midend.{i}.bias"] = tf[f"{conv}/bias"]
        sd.update(_bn_state(f"midend_bn.{i}", tf, bn))
    sd.update(_bn_state("pool_bn", tf, "batch_normalization_9"))
    sd["dense.weight"] = tf["dense/kernel"].T
    sd["dense.bias"] = tf["dense/bias"]
    sd.update(_bn_state("dense_bn", tf, "batch_normalization_10"))
    sd["tags.weight"] = tf["dense_1/kernel"].T
    sd["tags.bias"] = tf["dense_1/bias"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def load_network(state: dict[str, torch.Tensor], device: torch.device) -> Musicnn:
    """A Musicnn in eval mode with `state` loaded (every key must match)."""
    net = Musicnn()
    full = net.state_dict()
    missing = set(full) - set(state) - {k for k in full if k.endswith("num_batches_tracked")}
    unknown = set(state) - set(full)
    if missing or unknown:
        raise ValueError(f"musicnn weights do not fit the network: {sorted(missing | unknown)[:3]}")
    net.load_state_dict({**full, **state})
    return net.to(device).eval()
