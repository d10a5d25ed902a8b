"""Commands that need no tensor math never import torch (nor the TUI, pandas or yt-dlp).

Each command runs in a fresh interpreter through the real `genre` entry point; what it imported
is read from `sys.modules` when it exits. Timing is for bench/, not here: importing torch is what
turns a 0.3 s command into a 2 s one, so that is what this checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_dataset

CARD = Path(__file__).parent / "data" / "model_card_v1.json"
#: Modules a light command must not load: each costs 0.2-1.5 s to import on this kind of box.
HEAVY = ("torch", "textual", "pandas", "yt_dlp", "safetensors")
#: Help, version and completion answer before any command runs: not even numpy.
BARE = (*HEAVY, "numpy")

#: Runs the CLI as the `genre` script does, then writes the top-level modules it loaded.
PROBE = """
import json, sys
out, args = sys.argv[1], json.loads(sys.argv[2])
sys.argv = ["genre", *args]
from genre_erkennung.tui.cli import main
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}, f)
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding one saved model (a format-1 card and weights it names: no torch)."""
    ws = tmp_path_factory.mktemp("startup-ws")
    for name in ("v1card", "spare"):
        folder = ws / "models" / name
        folder.mkdir(parents=True)
        weights = b"not read by these commands " + name.encode()
        card = json.loads(CARD.read_text())
        card["name"] = name
        card["weights"]["sha256"] = hashlib.sha256(weights).hexdigest()
        (folder / "weights.safetensors").write_bytes(weights)
        (folder / "model.json").write_text(json.dumps(card))
    return ws


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("startup-ds"), {"a": ("sine", 440.0)}, (1, 1), 11.0)


def imported(tmp: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, set[str], str]:
    """(exit code, top-level modules loaded, stdout) of `genre ARGS` in a new interpreter."""
    out = tmp / "modules.json"
    out.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if not out.exists():
        raise AssertionError(f"genre {' '.join(args)} died:\n{proc.stderr}")
    result = json.loads(out.read_text())
    return result["code"], set(result["modules"]), proc.stdout


def test_help_and_version_import_not_even_numpy(tmp_path: Path) -> None:
    for args in (["--help"], ["--version"], ["models", "--help"], ["query", "--help"], ["train", "--help"]):
        code, modules, _ = imported(tmp_path, *args)
        assert code == 0, f"genre {' '.join(args)} exited {code}"
        assert not set(BARE) & modules, f"genre {' '.join(args)} imported {sorted(set(BARE) & modules)}"


def light_commands(ws: Path, ds: Path, tmp: Path) -> list[list[str]]:
    w = ["--workspace", str(ws)]
    return [
        ["models", "list", *w],
        ["models", "show", "v1card", *w],
        ["models", "rm", "spare", *w],
        ["dataset", "show", str(ds), "--workspace", str(tmp / "ds-ws")],
        ["dataset", "show", "--dataset", str(ds), "--json", "--workspace", str(tmp / "ds-ws")],
        ["dataset", "split", str(ds / "train"), str(tmp / "split"), "--test-ratio", "0.5"],
        ["store", "list", *w],
        ["store", "prune", "--dry-run", *w],
    ]


def test_commands_without_tensor_math_import_no_torch(workspace: Path, dataset: Path, tmp_path: Path) -> None:
    for args in light_commands(workspace, dataset, tmp_path):
        code, modules, _ = imported(tmp_path, *args)
        assert code == 0, f"genre {' '.join(args)} exited {code}"
        loaded = sorted(set(HEAVY) & modules)
        assert not loaded, f"genre {' '.join(args)} imported {loaded}"
    assert not (workspace / "models" / "spare").exists()  # rm really ran


def test_shell_completion_imports_no_torch(tmp_path: Path) -> None:
    env = {"_GENRE_COMPLETE": "complete_bash", "COMP_WORDS": "genre mod", "COMP_CWORD": "1"}
    code, modules, stdout = imported(tmp_path, env=env)
    assert code == 0 and stdout.split() == ["models"]
    assert not set(BARE) & modules, sorted(set(BARE) & modules)


def test_cpu_feature_math_imports_no_torch(dataset: Path, tmp_path: Path, audio_file) -> None:
    """On the CPU the native math is numpy's: extraction (2 worker threads) and `genre features`
    write their features without torch."""
    config = tmp_path / "cpu.toml"
    config.write_text('[features]\ndevice = "cpu"\n')
    ws = tmp_path / "ws"
    args = ("extract", "--dataset", str(dataset), "--workers", "2", "--config", str(config))
    code, modules, _ = imported(tmp_path, *args, "--workspace", str(ws))
    assert code == 0 and "torch" not in modules, sorted(set(HEAVY) & modules)
    assert len(list((ws / "features").glob("*/*.npz"))) == 2  # both songs really extracted
    song = audio_file(tmp_path / "s.wav", 11.0)
    out = tmp_path / "f.npz"
    code, modules, _ = imported(tmp_path, "features", str(song), "--out", str(out), "--config", str(config))
    assert code == 0 and out.exists() and "torch" not in modules


def test_sonic_annotator_extraction_imports_no_torch(dataset: Path, tmp_path: Path, sonic_host: str) -> None:
    config = tmp_path / "sonic.toml"
    config.write_text(f'[features]\nbackend = "sonic-annotator"\nsonic_annotator = "{sonic_host}"\n')
    ws = tmp_path / "ws"
    args = ("extract", "--dataset", str(dataset), "--config", str(config), "--workspace", str(ws))
    code, modules, _ = imported(tmp_path, *args)
    assert code == 0 and "torch" not in modules, sorted(set(HEAVY) & modules)
    assert len(list((ws / "features").glob("*/*.npz"))) == 2


def test_the_probe_sees_torch_where_a_command_needs_it(tmp_path: Path, audio_file) -> None:
    """The check can fail: features.device = cuda asks torch for a GPU (an error without one)."""
    song = audio_file(tmp_path / "s.wav", 11.0)
    config = tmp_path / "cuda.toml"
    config.write_text('[features]\ndevice = "cuda"\n')
    out = tmp_path / "f.npz"
    code, modules, _ = imported(tmp_path, "features", str(song), "--out", str(out), "--config", str(config))
    assert "torch" in modules and code in (0, 1)
