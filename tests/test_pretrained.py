"""`genre pretrained` and the TF checkpoint reader, on the real musicnn-0.1.0 wheel from PyPI."""

from __future__ import annotations

import importlib.util
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pretrained_helpers as helpers
import pytest
from conftest import genre_in_process
from safetensors.numpy import load_file

from genre_erkennung.core.pretrained import PretrainedMissing, install
from genre_erkennung.core.pretrained.crc32c import crc32c
from genre_erkennung.core.pretrained.embed import Embedder
from genre_erkennung.core.pretrained.network import Musicnn, checkpoint_names
from genre_erkennung.core.pretrained.tfcheckpoint import CheckpointError, read_index, read_tensors, shard_name
from genre_erkennung.core.workspace import Workspace

CHECKPOINTS = ("MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg")


@pytest.fixture
def musicnn_wheel() -> Path:
    return helpers.musicnn_wheel()


def _reference():
    """The golden folder's numpy reader (tools/ckpt_v2_reader.py), which was checked against TF."""
    path = helpers.GOLDEN / "tools" / "ckpt_v2_reader.py"
    if not path.is_file():
        helpers.unavailable(f"{path} missing (set GENRE_MUSICNN_GOLDEN)")
    spec = importlib.util.spec_from_file_location("ckpt_v2_reader", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _listed_variables() -> dict[str, dict[str, tuple[tuple[int, ...], str]]]:
    """ckpt_variables.txt: checkpoint -> name -> (shape, dtype)."""
    path = helpers.GOLDEN / "ckpt_variables.txt"
    if not path.is_file():
        helpers.unavailable(f"{path} missing (set GENRE_MUSICNN_GOLDEN)")
    out: dict[str, dict] = {}
    current = None
    for line in path.read_text().splitlines():
        if m := re.match(r"== (\S+) (\d+)", line):
            current = out.setdefault(m.group(1), {})
        elif (m := re.match(r"  (\S+) \[([\d, ]*)\] (\w+)", line)) and current is not None:
            shape = tuple(int(d) for d in m.group(2).split(",") if d.strip())
            current[m.group(1)] = (shape, m.group(3))
    return out


def _checkpoint(wheel: Path, name: str) -> tuple[bytes, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(f"musicnn/{name}/.index"), zf.read(f"musicnn/{name}/{shard_name(0, 1)}")


def test_crc32c_matches_the_reference_implementation() -> None:
    ref = _reference()
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value
    rng = np.random.default_rng(0)
    for n in (0, 1, 255, 4096 * 64 - 1, 4096 * 64 + 17, 300_001):  # byte loop, lanes + tail
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc32c(data) == ref.crc32c(data), n


def test_reader_lists_every_variable_of_every_checkpoint(musicnn_wheel: Path) -> None:
    listed = _listed_variables()
    assert set(listed) == set(CHECKPOINTS)
    for name in CHECKPOINTS:
        index, data = _checkpoint(musicnn_wheel, name)
        tensors = read_index(index).tensors
        got = {k: (t.shape, t.dtype.name) for k, t in tensors.items()}
        assert got == listed[name], name
        read_tensors(index, lambda i, n, d=data: d)  # every CRC checked, none raises


def test_reader_is_bit_identical_to_the_reference(musicnn_wheel: Path, tmp_path: Path) -> None:
    ref = _reference()
    index, data = _checkpoint(musicnn_wheel, "MSD_musicnn")
    prefix = tmp_path / "MSD_musicnn"
    Path(f"{prefix}.index").write_bytes(index)
    Path(f"{prefix}{shard_name(0, 1)}").write_bytes(data)
    theirs = ref.load_checkpoint(str(prefix), check_crc=False)
    ours = read_tensors(index, lambda i, n: data)
    assert set(ours) == set(theirs) and len(ours) == 150
    for k, v in theirs.items():
        assert ours[k].dtype == v.dtype and ours[k].shape == v.shape and np.array_equal(ours[k], v), k
    assert len(checkpoint_names()) == 64 and set(checkpoint_names()) <= set(ours)


def test_reader_refuses_damaged_bytes(musicnn_wheel: Path) -> None:
    index, data = _checkpoint(musicnn_wheel, "MSD_musicnn")
    info = read_index(index).tensors["dense/kernel"]
    bad = bytearray(data)
    bad[info.offset + 1000] ^= 0x01
    with pytest.raises(CheckpointError, match="dense/kernel: tensor CRC mismatch"):
        read_tensors(index, lambda i, n: bytes(bad), ["dense/kernel"])
    bad_index = bytearray(index)
    bad_index[100] ^= 0x40
    with pytest.raises(CheckpointError, match="CRC mismatch"):
        read_index(bytes(bad_index))
    with pytest.raises(CheckpointError, match="not a TensorFlow checkpoint"):
        read_index(b"\0" * 100)


def test_install_list_rm_from_the_cli(musicnn_wheel: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    r = genre_in_process("pretrained", "install", "musicnn", "--wheel", musicnn_wheel, "--workspace", ws)
    assert r.returncode == 0, r.stderr
    folder = ws / "pretrained" / "musicnn"
    assert r.stdout.strip() == str(folder)
    assert "ISC licence" in r.stderr
    card = json.loads((folder / "card.json").read_text())
    assert card["source"]["sha256"] == install.MUSICNN.sha256 and card["licence"] == "ISC"
    assert set(card["models"]) == {"msd", "mtt"}
    for variant, entry in card["models"].items():
        state = load_file(folder / entry["file"])  # safetensors: no pickle, no code
        assert set(state) == set(Musicnn().state_dict()) - {
            k for k in Musicnn().state_dict() if k.endswith("num_batches_tracked")
        }
        assert entry["parameters"] == 787_159, variant  # the README's count of trainable weights
        assert len(entry["tags"]) == 50
    assert card["models"]["msd"]["tags"][:3] == ["rock", "pop", "alternative"]
    listed = genre_in_process("pretrained", "list", "--workspace", ws)
    assert listed.returncode == 0 and "musicnn" in listed.stdout and "msd, mtt" in listed.stdout
    gone = genre_in_process("pretrained", "rm", "musicnn", "--workspace", ws)
    assert gone.returncode == 0 and not folder.exists()
    empty = genre_in_process("pretrained", "list", "--workspace", ws)
    assert empty.returncode == 0 and "genre pretrained install musicnn" in empty.stderr
    again = genre_in_process("pretrained", "rm", "musicnn", "--workspace", ws)
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "not installed" in again.stderr


def test_install_refuses_a_wheel_that_is_not_the_pinned_one(tmp_path: Path) -> None:
    fake = tmp_path / "musicnn-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("musicnn/configuration.py", "MSD_LABELS = []\n")
    r = genre_in_process("pretrained", "install", "musicnn", "--wheel", fake, "--workspace", tmp_path / "ws")
    assert r.returncode == 1 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert "not the musicnn 0.1.0 wheel" in r.stderr
    assert not (tmp_path / "ws" / "pretrained").exists()
    unknown = genre_in_process("pretrained", "install", "vggish", "--workspace", tmp_path / "ws")
    assert unknown.returncode == 1 and "known are musicnn" in unknown.stderr


def test_missing_or_damaged_weights_say_how_to_fix(musicnn_wheel: Path, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(PretrainedMissing, match=r"not installed .*genre pretrained install musicnn"):
        Embedder(ws, "msd")
    install.install(ws, "musicnn", musicnn_wheel)
    weights = install.folder(ws) / "mtt.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-10] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(PretrainedMissing, match=r"damaged .*genre pretrained install musicnn"):
        Embedder(ws, "mtt")
    Embedder(ws, "msd")  # the other variant is intact
    rows = install.installed(ws)
    assert [(r.name, r.variants, r.error) for r in rows] == [("musicnn", ("msd", "mtt"), None)]
