"""Pretrained networks, read without their original framework: musicnn (Pons & Serra, ISC licence).

`install` takes the pinned PyPI wheel `musicnn==0.1.0` (downloaded with pip, or given as a file),
reads its TensorFlow checkpoints with our own reader (`tfcheckpoint`, CRCs checked) and writes
the weights into the workspace as safetensors with a JSON card. `embed` runs the network
(`network`, torch) on our ffmpeg decode resampled to 16 kHz (`mel`). Nothing from the download
is executed or unpickled.
"""

from __future__ import annotations

from ..errors import GenreError


class PretrainedMissing(GenreError):
    """A pretrained model that is not installed (or whose files are damaged)."""
