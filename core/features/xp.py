"""The few array operations the native feature math needs, over numpy or over torch.

native.py writes the math once against this interface. On the CPU it runs on numpy, so an
extraction never imports torch (about 2 s of CPU before the first song); on a GPU it runs on
torch. Each operation takes and returns the library's own arrays; `out=` arguments are filled in
place, so the math keeps its preallocated buffers on both.
"""

from __future__ import annotations

import contextlib
import ctypes
from pathlib import Path
from typing import Any, Protocol

import numpy as np

Array = Any  # np.ndarray or torch.Tensor: the math never mixes the two


class Ops(Protocol):
    """What native.py calls: `NumpyOps` or `TorchOps`."""

    name: str
    device: str
    float32: Any
    float64: Any
    # numpy's ufuncs and functions, torch's functions: called as minimum(a, b, out=c) etc.
    minimum: Any
    maximum: Any
    negative: Any
    add: Any
    amax: Any
    amin: Any
    where: Any
    stack: Any
    concat: Any

    def asarray(self, x: np.ndarray, dtype: Any = None) -> Array: ...
    def to_numpy(self, x: Array) -> np.ndarray: ...
    def empty(self, shape: tuple[int, ...], dtype: Any = None) -> Array: ...
    def zeros(self, shape: tuple[int, ...], dtype: Any = None) -> Array: ...
    def empty_like(self, x: Array) -> Array: ...
    def copy(self, x: Array) -> Array: ...
    def copy_(self, dst: Array, src: Array) -> None: ...
    def fill_(self, x: Array, value: float) -> None: ...
    def contiguous(self, x: Array) -> Array: ...
    def frames(self, x: Array, first: int, count: int, block: int, step: int) -> Array: ...
    def rfft(self, x: Array) -> Array: ...
    def magnitude(self, spectrum: Array, out: Array) -> None: ...
    def log10(self, x: Array) -> Array: ...
    def context(self) -> contextlib.AbstractContextManager: ...


class NumpyOps:
    """numpy on the CPU."""

    name = "numpy"
    device = "cpu"
    float32, float64 = np.float32, np.float64
    minimum, maximum, negative, add = np.minimum, np.maximum, np.negative, np.add  # ufuncs
    # plain functions would bind as methods: staticmethod keeps them functions
    amax, amin, where = staticmethod(np.amax), staticmethod(np.amin), staticmethod(np.where)
    stack, concat = staticmethod(np.stack), staticmethod(np.concatenate)

    def asarray(self, x: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
        return np.ascontiguousarray(x, dtype)

    def to_numpy(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float32)

    def empty(self, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
        return np.empty(shape, dtype)

    def zeros(self, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
        return np.zeros(shape, dtype)

    def empty_like(self, x: np.ndarray) -> np.ndarray:
        return np.empty_like(x)

    def copy(self, x: np.ndarray) -> np.ndarray:
        return np.array(x, copy=True)

    def copy_(self, dst: np.ndarray, src: np.ndarray) -> None:
        np.copyto(dst, src)

    def fill_(self, x: np.ndarray, value: float) -> None:
        x.fill(value)

    def contiguous(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x)

    def frames(self, x: np.ndarray, first: int, count: int, block: int, step: int) -> np.ndarray:
        """Frames first..first+count-1 of x [..., L], frame k = x[..., k*step : k*step+block] (a view)."""
        part = x[..., first * step : (first + count - 1) * step + block]
        shape = (*part.shape[:-1], count, block)
        strides = (*part.strides[:-1], step * part.strides[-1], part.strides[-1])
        return np.lib.stride_tricks.as_strided(part, shape, strides, writeable=False)

    def rfft(self, x: np.ndarray) -> np.ndarray:
        return np.fft.rfft(x)

    def magnitude(self, spectrum: np.ndarray, out: np.ndarray) -> None:
        """out = |spectrum[..., :bins]|, in out's dtype."""
        np.absolute(spectrum[..., : out.shape[-1]], out=out)

    def log10(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):  # log10(0) = -inf, masked by the caller's `where`
            return np.log10(x)

    def context(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


class TorchOps:
    """torch on one device (a GPU; the CPU for comparisons and benchmarks)."""

    name = "torch"

    def __init__(self, device: str) -> None:
        import torch

        self.torch = torch
        self.device = str(torch.device(device))
        self.float32, self.float64 = torch.float32, torch.float64
        self.minimum, self.maximum, self.negative, self.add = (
            torch.minimum,
            torch.maximum,
            torch.neg,
            torch.add,
        )
        self.amax, self.amin, self.where, self.stack, self.concat = (
            torch.amax,
            torch.amin,
            torch.where,
            torch.stack,
            torch.cat,
        )

    def asarray(self, x: np.ndarray, dtype: Any = None) -> Any:
        t = self.torch.from_numpy(np.ascontiguousarray(x))
        return t.to(self.device, dtype or self.float32)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.to("cpu", self.float32).numpy()

    def empty(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        return self.torch.empty(shape, dtype=dtype or self.float32, device=self.device)

    def zeros(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        return self.torch.zeros(shape, dtype=dtype or self.float32, device=self.device)

    def empty_like(self, x: Any) -> Any:
        return self.torch.empty_like(x)

    def copy(self, x: Any) -> Any:
        return x.clone()

    def copy_(self, dst: Any, src: Any) -> None:
        dst.copy_(src)

    def fill_(self, x: Any, value: float) -> None:
        x.fill_(value)

    def contiguous(self, x: Any) -> Any:
        return x.contiguous()

    def frames(self, x: Any, first: int, count: int, block: int, step: int) -> Any:
        return x[..., first * step : (first + count - 1) * step + block].unfold(-1, block, step)

    def rfft(self, x: Any) -> Any:
        return self.torch.fft.rfft(x)

    def magnitude(self, spectrum: Any, out: Any) -> None:
        """out = |spectrum[..., :bins]| via the squares (faster than torch.abs here)."""
        squares = self.torch.view_as_real(spectrum[..., : out.shape[-1]]).square()
        self.torch.add(squares[..., 0], squares[..., 1], out=out)
        out.sqrt_()

    def log10(self, x: Any) -> Any:
        return x.log10()

    def context(self) -> contextlib.AbstractContextManager:
        return self.torch.inference_mode()


def ops_for(device: str, library: str | None = None) -> Ops:
    """numpy on the CPU and torch elsewhere, unless `library` (numpy | torch) says otherwise."""
    library = library or ("numpy" if device == "cpu" else "torch")
    if library == "numpy":
        if device != "cpu":
            raise ValueError(f"numpy runs on the CPU only, not {device}")
        return NumpyOps()
    return TorchOps(device)


#: OpenBLAS's thread-count setters, by the names its builds export (numpy's wheels: scipy_openblas).
_BLAS_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


def one_blas_thread() -> None:
    """Keep numpy's matmuls (the MFCC's filterbank and DCT) on the calling thread.

    OpenBLAS otherwise wakes a thread per core for each of them; next to an extraction's ffmpeg
    decoders those threads only fight for cores (the MFCC took 4x its one-thread time on a busy
    2-core box). The twin of torch.set_num_threads(1). Finds OpenBLAS among the libraries
    loaded (Linux, /proc/self/maps); elsewhere, or with another BLAS, it changes nothing.
    """
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return
    libs = {line.split(maxsplit=5)[-1] for line in maps.splitlines() if "openblas" in line.lower()}
    for lib in sorted(libs):
        with contextlib.suppress(OSError):
            handle = ctypes.CDLL(lib)
            for name in _BLAS_SETTERS:
                setter = getattr(handle, name, None)
                if setter is not None:
                    setter(1)
                    break
