"""What a training run trains on: a fresh run's split and statistics, or a stopped run's own.

A resumed run uses the settings, validation split, statistics and feature store of the run it
continues; only the device, threads and a new epoch total come from the caller. An ensemble's
members share the statistics; each has its own seed and so its own validation songs.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from . import checkpoint
from .card import Architecture, Norm, decode
from .config import Settings, TrainingSettings
from .dataset import Dataset, song_groups
from .errors import GenreError
from .registry import list_models, model_dir
from .run import Trained
from .store import FeatureStore, config_key, feature_config
from .tensors import TrainingData, load_dataset, validation_split
from .workspace import Workspace

#: A finished ensemble member: its best weights and its run.
Finished = tuple[dict[str, torch.Tensor], Trained]


@dataclass
class Plan:
    name: str
    folder: Path
    store: FeatureStore
    ts: TrainingSettings
    data: TrainingData
    fit_ids: list[int]
    val_ids: list[int]
    arch: Architecture
    features: dict[str, Any]  # the store's feature config, for the card
    checkpoint: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None
    member: int = 0  # the ensemble member this plan trains
    done: list[Finished] = dataclasses.field(default_factory=list)  # members before it

    @property
    def seed(self) -> int:
        return member_seed(self.ts.seed, self.member)


def member_seed(seed: int, member: int) -> int:
    """Member 0 keeps the run's seed, so a 1-member ensemble is the plain model; the others
    lie 1000 apart, so ensembles with neighbouring seeds share no member."""
    return (seed + 1000 * member) % 2**32


def member_split(
    dataset: Dataset, data: TrainingData, ts: TrainingSettings, member: int
) -> tuple[list[int], list[int]]:
    group_of = song_groups(dataset, ts.validation_group)
    groups = [group_of[k] for k in data.train.song_keys]
    return validation_split(data.train, ts.validation_share, member_seed(ts.seed, member), groups)


def next_member(p: Plan, dataset: Dataset, member: int) -> Plan:
    """The plan of the ensemble's next member: same data and statistics, its own split."""
    fit_ids, val_ids = member_split(dataset, p.data, p.ts, member)
    return dataclasses.replace(p, fit_ids=fit_ids, val_ids=val_ids, checkpoint=None, member=member)


def default_name(workspace: Workspace, kind: str) -> str:
    base = f"{kind}-{datetime.now():%Y%m%d-%H%M%S}"
    name, n = base, 1
    while model_dir(workspace, name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def stopped_run(workspace: Workspace) -> str:
    """The newest run that can be resumed."""
    stopped = [i for i in list_models(workspace) if i.status in ("stopped", "incomplete")]
    if not stopped:
        raise GenreError("no stopped training run to resume (see `genre models list`)")
    return stopped[-1].name


def _store_features(store: FeatureStore, settings: Settings) -> dict[str, Any]:
    """The feature config a store was made with (its manifest), for the model card."""
    try:
        return json.loads((store.folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return feature_config(settings) if store.key == config_key(settings) else {}


def fresh(dataset: Dataset, settings: Settings, workspace: Workspace, store: FeatureStore, name: str) -> Plan:
    ts = settings.training
    data = load_dataset(dataset, store)
    fit_ids, val_ids = member_split(dataset, data, ts, 0)
    arch = Architecture(
        ts.model,
        len(data.genres),
        coeffs=int(data.train.mfcc.shape[2]),
        bands=int(data.train.contrast.shape[2]),
        sizes=dataclasses.replace(settings.model),
    )
    folder = model_dir(workspace, name)
    return Plan(name, folder, store, ts, data, fit_ids, val_ids, arch, _store_features(store, settings))


def resume(
    dataset: Dataset,
    settings: Settings,
    workspace: Workspace,
    store: FeatureStore | None,
    name: str,
    epochs: int | None,
) -> Plan:
    folder = model_dir(workspace, name)
    tensors, meta = checkpoint.load(folder, name)
    store = store or FeatureStore(workspace.features, meta["feature_key"])
    ts = dataclasses.replace(
        TrainingSettings(**meta["settings"]),
        device=settings.training.device,
        threads=settings.training.threads,
        epochs=epochs or meta["settings"]["epochs"],
    )
    _check_same_data(name, meta, dataset, store)
    member = int(meta.get("member", 0))
    done = [checkpoint.load_member(folder, name, i) for i in range(member)]
    # A member that ran its course is finished by `train` (calibrated and kept) if the run
    # stopped before it was kept; a kept one hands over to the next member.
    finished = ts.ensemble > 1 and meta["state"]["stopped"] in ("epochs", "early-stop")
    kept = finished and checkpoint.has_member(folder, member)
    if kept and member + 1 >= ts.ensemble:
        raise GenreError(
            f"all {ts.ensemble} members of ensemble {name!r} have trained: there is nothing to resume"
        )
    if not finished:
        _check_resumable(name, meta, ts)
    norm, frames = Norm.from_json(meta["norm"]), (meta["frames"][0], meta["frames"][1])
    data = load_dataset(dataset, store, norm, frames, meta["genres"])
    val_keys = set(meta["split"]["val"])
    val_ids = [i for i, k in enumerate(data.train.song_keys) if k in val_keys]
    fit_ids = [i for i, k in enumerate(data.train.song_keys) if k not in val_keys]
    arch = decode(Architecture, meta["architecture"], "architecture")
    features = _store_features(store, settings)
    p = Plan(name, folder, store, ts, data, fit_ids, val_ids, arch, features, (tensors, meta), member, done)
    if kept:
        p.done.append(checkpoint.load_member(folder, name, member))
        return next_member(p, dataset, member + 1)
    return p


def _check_resumable(name: str, meta: dict[str, Any], ts: TrainingSettings) -> None:
    state = meta["state"]
    if state["stopped"] == "early-stop":
        raise GenreError(
            f"model {name!r} stopped early at epoch {state['epoch']} (validation loss no longer "
            "improved): there is nothing to resume"
        )
    if state["epoch"] >= ts.epochs:
        raise GenreError(
            f"model {name!r} has trained {state['epoch']} of {ts.epochs} epochs: pass a larger "
            "--epochs to continue it"
        )


def _check_same_data(name: str, meta: dict[str, Any], dataset: Dataset, store: FeatureStore) -> None:
    if meta["fingerprint"] != dataset.fingerprint:
        raise GenreError(
            f"the dataset changed since model {name!r} was trained (fingerprint "
            f"{meta['fingerprint']} -> {dataset.fingerprint}): train a new model instead"
        )
    if meta["feature_key"] != store.key:
        raise GenreError(
            f"model {name!r} was trained on features {meta['feature_key']}, not {store.key}: "
            "resume it from the store it was trained on"
        )
