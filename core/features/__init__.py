"""Features per chunk: qm-mfcc coefficients and bbc-spectral-contrast peaks/valleys.

Two backends give the same arrays: `native` (see native.py: numpy on the CPU, torch on a GPU)
and `sonic-annotator` (the original tool, see sonic.py). Neither imports torch on the CPU: only
the native backend on CUDA and `musicnn` (a network) do, when they are built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from ..config import FeatureSettings
    from ..workspace import Workspace
    from .musicnn import MusicnnBackend

#: Bump when a backend's numbers change; part of the store's config key. Native 2: the MFCC's
#: FFT in float64 (numpy on the CPU, torch on a GPU), which moved tonal frames' upper
#: coefficients (native.py). sonic-annotator's numbers come from the plugins: still 1.
FEATURE_VERSION = 2
VERSIONS = {"native": FEATURE_VERSION, "sonic-annotator": 1}

#: (backend, version) pairs whose models are queried with today's features. Native 1 differs
#: from 2 only in float32 FFT noise at the floor of tonal frames' upper mel bands, where version
#: 1 itself never agreed between FFT libraries (MKL on the CPU, cuFFT on a GPU): a model trained
#: on it keeps working, and only new stores use the new key.
COMPATIBLE = {("native", 1)}

MFCC_TRANSFORM = "vamp:qm-vamp-plugins:qm-mfcc:coefficients"
PEAKS_TRANSFORM = "vamp:bbc-vamp-plugins:bbc-spectral-contrast:peaks"
VALLEYS_TRANSFORM = "vamp:bbc-vamp-plugins:bbc-spectral-contrast:valleys"
TRANSFORMS = (MFCC_TRANSFORM, PEAKS_TRANSFORM, VALLEYS_TRANSFORM)

#: Keys of `file_features`' result (those of the golden npz files, plus n_samples).
FILE_KEYS = (
    "mfcc",
    "mfcc_timestamps",
    "sc_peaks",
    "sc_valleys",
    "sc_timestamps",
    "sample_rate",
    "n_samples",
)


@dataclass
class FeatureBatch:
    """Features of B equal-length chunks."""

    mfcc: np.ndarray  # float32 [B, T_mfcc, 20]
    peaks: np.ndarray  # float32 [B, T_sc, 7]
    valleys: np.ndarray  # float32 [B, T_sc, 7]


class Backend(Protocol):
    name: str

    def batch(self, chunks: np.ndarray, sample_rate: int) -> FeatureBatch:
        """Features of float32 chunks [B, n], each treated as a separate file."""
        ...

    def whole_file(self, path: str | Path, sample_rate: int | None) -> dict[str, np.ndarray]:
        """Features of a whole file (not chunked), keyed as FILE_KEYS."""
        ...


def frame_counts(n_samples: int) -> tuple[int, int]:
    """(T_mfcc, T_sc) for n samples: sonic-annotator pads to a multiple of 1024 samples."""
    blocks = math.ceil(n_samples / 1024)
    return blocks, 2 * blocks


def feature_params(settings: FeatureSettings) -> dict:
    """Everything besides the audio settings that changes the numbers (for the config key)."""
    if settings.backend == "musicnn":
        from .musicnn import musicnn_params

        return musicnn_params(settings)
    hann = {"window": "hann", "framing": "sonic-annotator", "pad_multiple": 1024}
    contrast = {"block": 1024, "step": 512, "alpha": 0.02, "numBands": 7, **hann}
    return {
        "backend": settings.backend,
        "feature_version": VERSIONS[settings.backend],
        "transforms": {
            MFCC_TRANSFORM: {
                "block": 2048,
                "step": 1024,
                "nceps": 20,
                "wantc0": 1,
                "logpower": 1,
                **hann,
            },
            PEAKS_TRANSFORM: contrast,
            VALLEYS_TRANSFORM: contrast,
        },
    }


def get_backend(settings: FeatureSettings, workspace: Workspace | None = None) -> Backend | MusicnnBackend:
    """The backend that `settings.backend` names (musicnn reads its weights from `workspace`)."""
    if settings.backend == "musicnn":
        from .musicnn import MusicnnBackend

        return MusicnnBackend(settings, workspace)
    if settings.backend == "sonic-annotator":
        from .sonic import SonicBackend

        return SonicBackend(settings.sonic_annotator)
    from ..device import feature_device
    from .native import NativeBackend

    return NativeBackend(feature_device(settings.device))


def one_math_thread(backend: object) -> None:
    """One math thread per extraction worker where the backend computes on the CPU.

    Each worker's ffmpeg decodes on a core of its own while the math runs, so a second math
    thread only fights it (measured with 1 worker on 2 busy cores: 2 torch threads took 2.2x the
    CPU time and 1.6-1.8x the wall time of 1). numpy's math limits its BLAS, torch's (musicnn,
    or native math on torch) its intra-op threads; sonic-annotator runs its own process.
    """
    xp = getattr(backend, "xp", None)
    device = xp.device if xp is not None else getattr(getattr(backend, "device", None), "type", None)
    if device != "cpu":
        return
    if xp is not None and xp.name == "numpy":
        from .xp import one_blas_thread

        one_blas_thread()
        return
    import torch

    torch.set_num_threads(1)


def file_features(
    path: str | Path, sample_rate: int | None, settings: FeatureSettings
) -> dict[str, np.ndarray]:
    """Features of a whole file decoded to mono at `sample_rate` (None: the file's own rate).

    On the CPU the math runs on one thread while ffmpeg decodes on another core (see
    `one_math_thread`).
    """
    backend = get_backend(settings)
    one_math_thread(backend)
    return backend.whole_file(path, sample_rate)
