"""A training run's state after every epoch, so a stopped run continues exactly where it was.

Weights, best weights, Adam's moments and the RNG states go into one safetensors file; counters,
settings and the split into a JSON file beside it that names the tensors' SHA-256. No pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors

from .atomic import atomic_write_bytes, atomic_write_json
from .card import FORMAT_VERSION, CardError, EpochStats, decode
from .errors import ModelError
from .registry import CHECKPOINT, damaged, sha256, tensor_bytes
from .run import Run, RunState, Trained


def save(folder: Path, run: Run, device: torch.device, static: dict[str, Any]) -> None:
    """Write the run's state; `static` is what does not change between epochs (settings, split)."""
    tensors = {f"model.{k}": v for k, v in run.model.state_dict().items()}
    tensors |= {f"best.{k}": v for k, v in run.best.items()}
    for i, slot in run.optimizer.state_dict()["state"].items():
        tensors |= {f"optim.{i}.{k}": v for k, v in slot.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.shuffle"] = run.shuffle.get_state()
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    meta = {
        **static,
        "param_groups": run.optimizer.state_dict()["param_groups"],
        "state": asdict(run.state),
    }
    data = tensor_bytes(tensors)
    digest = sha256(data)
    # The tensors go to a file named by their checksum, and only then does state.json name it:
    # a kill between the two writes leaves the previous, whole checkpoint (never a mismatch).
    where = folder / CHECKPOINT
    tensors_file = f"state-{digest[:16]}.safetensors"
    atomic_write_bytes(where / tensors_file, data)
    atomic_write_json(where / "state.json", {**meta, "tensors_sha256": digest, "tensors_file": tensors_file})
    for old in where.glob("state*.safetensors"):
        if old.name != tensors_file:
            old.unlink(missing_ok=True)


def load(folder: Path, name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The checked tensors and JSON of a stopped run."""
    where = folder / CHECKPOINT
    try:
        meta = json.loads((where / "state.json").read_text(encoding="utf-8"))
        named = meta.get("tensors_file") if isinstance(meta, dict) else None
        data = (where / Path(str(named or "state.safetensors")).name).read_bytes()
    except FileNotFoundError:
        raise ModelError(f"model {name!r} has no stopped run to resume") from None
    except (OSError, ValueError) as exc:
        raise damaged(name, f"its checkpoint is unreadable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("tensors_sha256") != sha256(data):
        raise damaged(name, "its checkpoint is damaged (checksum mismatch)")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ModelError(f"model {name!r}: its checkpoint is from a newer genre-erkennung")
    return load_safetensors(data), meta


def restore(run: Run, tensors: dict[str, torch.Tensor], meta: dict[str, Any], device: torch.device) -> None:
    """Put a loaded checkpoint back into a freshly built run."""

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}

    run.model.load_state_dict(part("model."))
    run.best = part("best.")
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in part("optim.").items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = value
    run.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    run.shuffle.set_state(tensors["rng.shuffle"])
    if device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    s = meta["state"]
    run.state = RunState(
        s["epoch"],
        s["best_epoch"],
        s["best_loss"],
        s["bad_epochs"],
        s["stopped"],
        [EpochStats(**h) for h in s["history"]],
    )


def save_member(folder: Path, index: int, weights: dict[str, torch.Tensor], trained: Trained) -> None:
    """Keep a finished ensemble member (best weights and its run) beside the checkpoint, so an
    interrupted ensemble resumes with the member it was training, not from the first."""
    data = tensor_bytes(weights)
    where = folder / CHECKPOINT
    atomic_write_bytes(where / f"member-{index}.safetensors", data)
    atomic_write_json(where / f"member-{index}.json", {**asdict(trained), "tensors_sha256": sha256(data)})


def has_member(folder: Path, index: int) -> bool:
    return (folder / CHECKPOINT / f"member-{index}.json").is_file()


def load_member(folder: Path, name: str, index: int) -> tuple[dict[str, torch.Tensor], Trained]:
    where = folder / CHECKPOINT
    try:
        meta = json.loads((where / f"member-{index}.json").read_text(encoding="utf-8"))
        data = (where / f"member-{index}.safetensors").read_bytes()
    except (OSError, ValueError) as exc:
        raise damaged(name, f"its finished member {index + 1} is unreadable ({exc})") from None
    if not isinstance(meta, dict) or meta.pop("tensors_sha256", None) != sha256(data):
        raise damaged(name, f"its finished member {index + 1} is damaged (checksum mismatch)")
    try:
        return load_safetensors(data), decode(Trained, meta, f"member {index + 1}")
    except CardError as exc:
        raise damaged(name, f"its finished member {index + 1} is malformed ({exc})") from None
