"""Whole-file features on disk: the golden files' npz layout, or sonic-annotator's CSVs.

Both let a user hold our numbers against the Vamp plugins': the npz has the keys of
../shared/features/golden/*.npz, the CSVs are named and laid out like sonic-annotator's
(`<song>_vamp_qm-vamp-plugins_qm-mfcc_coefficients.csv`: a 9-decimal timestamp, then the values
with 6 significant digits).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO

import numpy as np

from ..atomic import atomic_write
from . import MFCC_TRANSFORM, PEAKS_TRANSFORM, VALLEYS_TRANSFORM
from .sonic import csv_name

_EXPONENT = re.compile(r"e([-+])0+(\d)")
#: transform id -> (values key, timestamps key) in a `file_features` result
CSV_SOURCES = {
    MFCC_TRANSFORM: ("mfcc", "mfcc_timestamps"),
    PEAKS_TRANSFORM: ("sc_peaks", "sc_timestamps"),
    VALLEYS_TRANSFORM: ("sc_valleys", "sc_timestamps"),
}


def save_npz(path: Path, features: dict[str, np.ndarray]) -> None:
    """All arrays in one .npz, atomically (a crash leaves the old file or none)."""
    atomic_write(Path(path), lambda f: np.savez(f, allow_pickle=False, **features))


def realtime(seconds: float) -> str:
    """A time as Vamp's RealTime prints it: seconds, '.', 9 digits of nanoseconds."""
    ns = round(seconds * 1e9)
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def csv_lines(times: np.ndarray, values: np.ndarray) -> list[str]:
    """One line per frame: timestamp, then the values in %g (6 significant digits).

    The exponent has no leading zero, as Qt prints it in sonic-annotator's CSVs (`6.72635e-5`,
    where C's %g gives `6.72635e-05`), so that the files compare byte for byte.
    """
    fmt = "%s," + ",".join(["%g"] * values.shape[1]) + "\n"
    lines = (fmt % (realtime(t), *row) for t, row in zip(times.tolist(), values.tolist(), strict=True))
    return [_EXPONENT.sub(r"e\1\2", line) for line in lines]


def save_csv(folder: Path, stem: str, features: dict[str, np.ndarray]) -> list[Path]:
    """One CSV per transform in `folder`, named as sonic-annotator names them; returns them."""
    written = []
    for transform, (values, times) in CSV_SOURCES.items():
        path = Path(folder) / csv_name(stem, transform)
        lines = csv_lines(features[times], features[values])

        def write(f: IO[bytes], lines: list[str] = lines) -> None:
            f.write("".join(lines).encode("utf-8"))

        atomic_write(path, write)
        written.append(path)
    return written
