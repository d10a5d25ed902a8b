"""musicnn embeddings of our decoded audio: per 3-s patch, and per chunk (mean and std of patches).

A chunk keeps the project's meaning (30 s of the song at `audio.sample_rate`); only its true
length (not the zero padding of a last chunk) is resampled to 16 kHz and cut into patches, so
votes, the store and queries work as for the other backends. Patches of a batch of chunks go
through the network together: in slices of `PATCH_BATCH` on the CPU, all at once on CUDA
(float32 throughout: cuDNN's TF32 is switched off for these convolutions).
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import audio
from ..errors import AudioError
from ..workspace import Workspace
from . import mel
from .install import load_state
from .network import EMBEDDING, TAGS, load_network

# CPU: one patch at a time. Its largest activation (204 x 187 x 59 floats, 9 MB) already spills
# the cache; measured CPU time per patch: 45 ms at 1, 81 ms at 4, 117 ms at 16.
PATCH_BATCH = 1
PATCH_SECONDS = mel.PATCH * mel.HOP / mel.SR
FILE_PIECE_SECONDS = 600.0


@dataclass
class ChunkEmbeddings:
    """Per chunk: the mean and std of its patch embeddings, and its mean tag scores."""

    mean: np.ndarray  # float32 [B, 200]
    std: np.ndarray  # float32 [B, 200]
    tags: np.ndarray  # float32 [B, 50] (sigmoid scores)
    patches: np.ndarray  # int64 [B]


class Embedder:
    """One musicnn variant ("msd" or "mtt") loaded from the workspace onto `device`."""

    def __init__(
        self,
        workspace: Workspace,
        variant: str = "msd",
        device: torch.device | None = None,
        resampler: str = "soxr-hq",
    ) -> None:
        state, entry = load_state(workspace, variant)
        self.variant = variant
        self.resampler = resampler
        self.tags: list[str] = list(entry["tags"])
        self.device = device or torch.device("cpu")
        self.net = load_network({k: torch.from_numpy(v) for k, v in state.items()}, self.device)

    def _precise(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.backends.cudnn.flags(enabled=True, allow_tf32=False)
        return contextlib.nullcontext()

    def patch_outputs(self, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings [P, 200], tag scores [P, 50]) of log-mel patches [P, 187, 96]."""
        step = PATCH_BATCH if self.device.type == "cpu" else max(1, len(patches))
        emb, tags = [np.zeros((0, EMBEDDING), np.float32)], [np.zeros((0, TAGS), np.float32)]
        with torch.inference_mode(), self._precise():
            for i in range(0, len(patches), step):
                x = torch.from_numpy(np.ascontiguousarray(patches[i : i + step])).to(self.device)
                out = self.net(x)
                emb.append(out.penultimate.float().cpu().numpy())
                tags.append(out.taggram.float().cpu().numpy())
        return np.concatenate(emb), np.concatenate(tags)

    def chunks(self, chunks: np.ndarray, lengths: np.ndarray, sample_rate: int) -> ChunkEmbeddings:
        """Embeddings of chunks [B, n] at `sample_rate`, each cut to its true length first."""
        per_chunk = [
            signal_patches(c[: int(n)], sample_rate, self.resampler)
            for c, n in zip(chunks, lengths, strict=True)
        ]
        counts = np.array([len(p) for p in per_chunk], dtype=np.int64)
        if (counts == 0).any():
            raise AudioError("a chunk holds no audio (nothing to embed)")
        emb, tags = self.patch_outputs(np.concatenate(per_chunk))
        bounds = np.concatenate([[0], np.cumsum(counts)])
        parts = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
        return ChunkEmbeddings(
            mean=np.stack([emb[s].mean(axis=0) for s in parts]).astype(np.float32),
            std=np.stack([emb[s].std(axis=0) for s in parts]).astype(np.float32),
            tags=np.stack([tags[s].mean(axis=0) for s in parts]).astype(np.float32),
            patches=counts,
        )

    def whole_file(self, path: str | Path) -> dict[str, np.ndarray]:
        """Per-patch embeddings and tag scores of a whole file, decoded at its own rate.

        Decoded in pieces of `FILE_PIECE_SECONDS` so memory stays flat for a long mix; a file no
        longer than one piece is processed exactly as the original would.
        """
        info = audio.probe(path)
        rate = info.sample_rate
        emb, tags, starts, n = [], [], [], 0
        for piece in audio.stream(path, rate, int(FILE_PIECE_SECONDS * rate), info):
            e, t = self.patch_outputs(signal_patches(piece, rate, self.resampler))
            emb.append(e)
            tags.append(t)
            starts.append(n / rate + np.arange(len(e)) * PATCH_SECONDS)
            n += len(piece)
        if n == 0:
            raise AudioError(f"{path}: no audio decoded")
        return {
            "embeddings": np.concatenate(emb),
            "taggram": np.concatenate(tags),
            "tags": np.array(self.tags),
            "patch_starts": np.concatenate(starts),
            "sample_rate": np.asarray(rate),
            "n_samples": np.asarray(n),
        }


def signal_patches(signal: np.ndarray, sample_rate: int, resampler: str = "soxr-hq") -> np.ndarray:
    """Log-mel patches [P, 187, 96] of float32 mono audio at `sample_rate`."""
    y16 = mel.resample(signal, sample_rate, resampler)
    return mel.patches(mel.log_mel(y16, mel.PAD_MODES[resampler]))
