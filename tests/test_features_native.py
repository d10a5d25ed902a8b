"""The native backend against the real Vamp plugins' outputs (../shared/features/golden/).

Every golden WAV goes through the same ffmpeg decode and mono mixdown as `genre features`, at
the file's own rate, so the stereo file checks the mixdown too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genre_erkennung.core import audio
from genre_erkennung.core.config import FeatureSettings
from genre_erkennung.core.device import cuda_visible, feature_device, pick_device
from genre_erkennung.core.errors import ToolMissing
from genre_erkennung.core.features import (
    FEATURE_VERSION,
    FILE_KEYS,
    feature_params,
    file_features,
    frame_counts,
    get_backend,
    native,
    one_math_thread,
    xp,
)

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
GOLDEN_FILES = sorted(GOLDEN.glob("*.npz"))
PAIRS = (("mfcc", "mfcc"), ("sc_peaks", "sc_peaks"), ("sc_valleys", "sc_valleys"))


def assert_parity(ours: np.ndarray, gold: np.ndarray, what: str) -> None:
    """SPEC.md section 6: correlation >= 0.9999 per column, relative RMS error <= 1e-3."""
    assert ours.shape == gold.shape, what
    ours, gold = ours.astype(np.float64), gold.astype(np.float64)
    scale = np.sqrt(np.mean(gold**2))
    rms = np.sqrt(np.mean((ours - gold) ** 2))
    assert rms <= 1e-3 * scale if scale > 0 else rms == 0, f"{what}: relative RMS {rms / scale}"
    for j in range(gold.shape[1]):
        if np.ptp(gold[:, j]) == 0:  # constant in the reference: compare values instead
            assert np.abs(ours[:, j] - gold[:, j]).max() <= 1e-6 * max(scale, 1.0), (what, j)
        else:
            r = np.corrcoef(ours[:, j], gold[:, j])[0, 1]
            assert r >= 0.9999, f"{what} column {j}: correlation {r}"


def test_golden_files_present() -> None:
    assert len(GOLDEN_FILES) >= 9, f"golden outputs missing under {GOLDEN}"


@pytest.mark.parametrize("npz", GOLDEN_FILES, ids=lambda p: p.stem)
def test_parity_with_vamp_plugins(npz: Path) -> None:
    gold = np.load(npz)
    ours = file_features(npz.with_suffix(".wav"), None, FeatureSettings(device="cpu"))
    assert set(FILE_KEYS) <= set(ours)
    assert int(ours["sample_rate"]) == int(gold["sample_rate"])
    assert int(ours["n_samples"]) == int(gold["n_samples"])
    for key in ("mfcc_timestamps", "sc_timestamps"):
        assert ours[key].shape == gold[key].shape, key
        assert np.abs(ours[key] - gold[key]).max() <= 1e-6, key
    for ours_key, gold_key in PAIRS:
        assert ours[ours_key].dtype == np.float32
        assert_parity(ours[ours_key], gold[gold_key], f"{npz.stem} {ours_key}")
    if npz.stem.startswith("silence"):
        for key, _ in PAIRS:
            assert not ours[key].any(), "digital silence gives exact zeros"


def noise(n: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(np.float32)


def test_batch_equals_the_chunk_as_a_file(tmp_path: Path) -> None:
    """A chunk is treated exactly like a file of its own (as sonic-annotator ran on chunk files)."""
    chunk = noise(5 * 44100 + 321)
    path = tmp_path / "chunk.wav"
    audio.write_wav(path, chunk, 44100)
    whole = file_features(path, 44100, FeatureSettings(device="cpu"))
    got = get_backend(FeatureSettings(device="cpu")).batch(chunk[None], 44100)
    np.testing.assert_allclose(got.mfcc[0], whole["mfcc"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.peaks[0], whole["sc_peaks"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.valleys[0], whole["sc_valleys"], rtol=1e-5, atol=1e-7)


def test_chunks_of_a_batch_are_independent() -> None:
    chunks = np.stack([noise(3 * 22050, seed=s) for s in range(3)])
    chunks[1] *= 0.001
    backend = native.NativeBackend("cpu")
    together = backend.batch(chunks, 22050)
    t_mfcc, t_sc = frame_counts(chunks.shape[1])
    assert together.mfcc.shape == (3, t_mfcc, 20)
    assert together.peaks.shape == together.valleys.shape == (3, t_sc, 7)
    assert together.mfcc.dtype == together.peaks.dtype == np.float32
    for i in range(3):
        alone = backend.batch(chunks[i : i + 1], 22050)
        np.testing.assert_allclose(together.mfcc[i], alone.mfcc[0], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(together.peaks[i], alone.peaks[0], rtol=1e-6)
        np.testing.assert_allclose(together.valleys[i], alone.valleys[0], rtol=1e-6)


@pytest.mark.parametrize("n", [0, 1, 1024, 1025])
def test_short_chunks_follow_frame_counts(n: int) -> None:
    got = native.NativeBackend("cpu").batch(np.ones((2, n), np.float32), 44100)
    t_mfcc, t_sc = frame_counts(n)
    assert got.mfcc.shape == (2, t_mfcc, 20)
    assert got.peaks.shape == got.valleys.shape == (2, t_sc, 7)


def test_streamed_file_equals_one_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streaming in blocks with CONTEXT samples of history gives the frames of the whole."""
    path = tmp_path / "long.wav"
    audio.write_wav(path, noise(100_000, seed=7), 44100)
    settings = FeatureSettings(device="cpu")
    whole = file_features(path, None, settings)
    monkeypatch.setattr(native, "_STREAM_BLOCK", 8 * native.PAD_MULTIPLE)
    streamed = file_features(path, None, settings)
    for key in FILE_KEYS:
        np.testing.assert_allclose(streamed[key], whole[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_frame_counts_follow_sonic_annotator() -> None:
    assert frame_counts(1_323_000) == (1292, 2584)  # a 30 s chunk at 44.1 kHz
    assert frame_counts(54321) == (54, 108)
    assert frame_counts(1024) == (1, 2)
    assert frame_counts(1025) == (2, 4)


def test_contrast_bands_match_the_plugin() -> None:
    bands = native.contrast_bands()
    assert [end - first for first, end, _ in bands] == [8, 8, 16, 32, 64, 128, 256]
    assert [k for *_, k in bands] == [1, 1, 1, 1, 1, 3, 5]
    assert bands[0][0] == 0 and bands[-1][1] == 512


def test_mel_filterbank_layout() -> None:
    """Filters of area 1 in Hz; at 44.1 kHz they span 6 to 38 bins and stop near 6.36 kHz."""
    fb = native.mel_filterbank(44100)
    assert fb.shape[1] == 40
    widths = (fb > 0).sum(axis=0)
    assert widths.min() == 6 and widths.max() == 38
    assert (fb.shape[0] - 1) * 44100 / 2048 < 6364.3
    assert native.mel_filterbank(8000)[:, -1].sum() == 0  # above Nyquist: no bins, log 0


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize(("width", "k"), [(128, 3), (256, 5), (128, 5), (64, 2)])
def test_extreme_sums_equal_topk(width: int, k: int, library: str) -> None:
    gen = torch.Generator().manual_seed(width + k)
    x = torch.rand(300, width, generator=gen)
    x[:10] = 0  # silence: all equal
    x[10:40] = torch.randint(0, 3, (30, width), generator=gen).float()  # many ties
    ops = xp.ops_for("cpu", library)
    bins_first = ops.asarray(x.T.numpy())  # [width, frames], as _contrast_magnitudes lays it out
    largest, smallest = (torch.as_tensor(v) for v in native._extreme_sums(ops, bins_first, k))
    torch.testing.assert_close(largest, x.topk(k).values.sum(1))
    torch.testing.assert_close(smallest, x.topk(k, largest=False).values.sum(1))


def music_like(seconds: float, rate: int = 44100, seed: int = 0) -> np.ndarray:
    """Tones, a decaying chord and noise bursts: peaks far above valleys, as in music."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    x = sum(np.sin(2 * np.pi * f * t) * np.exp(-t % 1.5) for f in (110.0, 220.0 * 1.26, 330.0, 1760.0))
    x = x + rng.standard_normal(len(t)) * 0.05 * (np.sin(2 * np.pi * 0.7 * t) > 0.5)
    return (x / 4).astype(np.float32)


def test_numpy_math_equals_torch_math() -> None:
    """The one implementation gives the same numbers on numpy (the CPU's) and on torch (a
    GPU's, run here on the CPU): float rounding apart, so the store's config key is shared."""
    chunks = np.stack([music_like(6.0, seed=1), noise(6 * 44100, seed=2), music_like(6.0, seed=3) * 1e-3])
    chunks[2, : 44100 * 2] = 0  # silence, then a quiet signal
    a = native.NativeBackend("cpu").batch(chunks, 44100)
    b = native.NativeBackend("cpu", library="torch").batch(chunks, 44100)
    for name in ("mfcc", "peaks", "valleys"):
        ours, theirs = getattr(a, name), getattr(b, name)
        assert ours.dtype == theirs.dtype == np.float32
        scale = np.abs(theirs).max()
        assert np.abs(ours - theirs).max() <= 1e-5 * scale, f"{name}: {np.abs(ours - theirs).max() / scale}"
    np.testing.assert_allclose(a.peaks, b.peaks, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(a.valleys, b.valleys, rtol=1e-5, atol=1e-9)


def test_cpu_math_is_numpy_and_one_threaded() -> None:
    backend = get_backend(FeatureSettings(device="cpu"))
    assert backend.xp.name == "numpy" and backend.xp.device == "cpu"
    one_math_thread(backend)
    getters = [lib for lib in _loaded_openblas() if hasattr(lib, "scipy_openblas_get_num_threads64_")]
    for lib in getters:  # numpy's own wheels: OpenBLAS now runs on the calling thread alone
        assert lib.scipy_openblas_get_num_threads64_() == 1


def _loaded_openblas() -> list:
    import ctypes

    maps = Path("/proc/self/maps")
    lines = maps.read_text().splitlines() if maps.exists() else []
    return [ctypes.CDLL(p) for p in {ln.split(maxsplit=5)[-1] for ln in lines if "openblas" in ln.lower()}]


def test_device_choice() -> None:
    assert pick_device("cpu", "features.device").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto", "features.device").type == expected
    assert feature_device("cpu") == "cpu"
    assert feature_device("auto") == expected  # the cheap check never hides a GPU torch sees
    assert cuda_visible() or not torch.cuda.is_available()
    assert get_backend(FeatureSettings(device="cpu")).name == "native"
    if not torch.cuda.is_available():
        assert get_backend(FeatureSettings(device="auto")).xp.device == "cpu"
        with pytest.raises(ToolMissing, match=r"features.device = cuda, but no CUDA GPU is available"):
            pick_device("cuda", "features.device")
        with pytest.raises(ToolMissing, match=r"features.device = cuda"):
            get_backend(FeatureSettings(device="cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_matches_cpu() -> None:
    chunks = np.stack([noise(10 * 44100, seed=s) for s in range(3)] + [music_like(10.0)])
    cpu = native.NativeBackend("cpu").batch(chunks, 44100)
    gpu = native.NativeBackend("cuda").batch(chunks, 44100)
    assert get_backend(FeatureSettings(device="auto")).xp.device.startswith("cuda")
    for a, b in ((cpu.mfcc, gpu.mfcc), (cpu.peaks, gpu.peaks), (cpu.valleys, gpu.valleys)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)


def test_feature_params_name_what_changes_the_numbers() -> None:
    params = feature_params(FeatureSettings())
    assert params["backend"] == "native"
    assert params["feature_version"] == FEATURE_VERSION
    mfcc = params["transforms"]["vamp:qm-vamp-plugins:qm-mfcc:coefficients"]
    assert (mfcc["block"], mfcc["step"], mfcc["nceps"]) == (2048, 1024, 20)
    assert feature_params(FeatureSettings(backend="sonic-annotator")) != params
    assert feature_params(FeatureSettings(device="cuda")) == params  # the device does not count


def test_importing_features_leaves_torch_out() -> None:
    code = "import sys, genre_erkennung.core.features; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
