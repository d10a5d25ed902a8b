"""Accuracy of a training recipe on a dataset, over K seeds, next to the card's baseline.

    python bench/accuracy.py --dataset ROOT [--recipe defaults] [--seeds 3]
                             [--set training.epochs=20 ...] [--workspace W] [--json FILE]

Extracts what the store lacks, trains one model per seed (0 .. K-1) with the recipe's settings,
and prints song accuracy (majority vote and mean probability), balanced accuracy (songs) and
chunk accuracy as mean ± std (and min-max) over the seeds, beside the baseline every card
carries, fitted on the same training split (the merged model's: logistic regression on MFCC
mean+std; a linear/mlp head's: logistic regression on one mean musicnn embedding per song;
`--recipe musicnn-linear|musicnn-mlp`, after `genre pretrained install musicnn --workspace W`,
and `--set features.musicnn_resampler=kaiser-best` for the other resampler), plus the
training time per seed and the load average. Timing belongs here, not in the tests; on a busy
machine, compare recipes measured under similar load. The models are removed afterwards
unless --keep is given. Meant for the real-music set (`bench/music/build.py`), split by source.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genre_erkennung.core import config, registry
from genre_erkennung.core.dataset import scan_dataset
from genre_erkennung.core.errors import GenreError
from genre_erkennung.core.extract import extract
from genre_erkennung.core.predict import predict_chunks, verdict
from genre_erkennung.core.pretrained.head import chunk_probabilities
from genre_erkennung.core.pretrained.headcard import HeadCard
from genre_erkennung.core.store import EMBEDDING_ARRAYS, store_for
from genre_erkennung.core.train import train
from genre_erkennung.core.workspace import Workspace

#: Named recipes: dotted settings on top of the defaults. "defaults" is what `genre train` does.
RECIPES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "grouped": {"training.validation_group": "folder"},
    "gain": {"training.augment_gain_db": 6.0},
    "mask": {"training.time_mask": 0.2},
    "gain+mask": {"training.augment_gain_db": 6.0, "training.time_mask": 0.2},
    "acc-stop": {"training.early_stop": "accuracy"},
    "musicnn-linear": {"features.backend": "musicnn", "training.model": "linear"},
    "musicnn-mlp": {"features.backend": "musicnn", "training.model": "mlp"},
}

SCORES = (
    ("song accuracy (majority vote)", "song_accuracy"),
    ("song accuracy (mean probability)", "song_accuracy_mean"),
    ("balanced accuracy (songs)", "song_balanced_accuracy"),
    ("chunk accuracy", "chunk_accuracy"),
)


THRESHOLDS = (0.0, 0.4, 0.5, 0.6, 0.7, 0.8)


@dataclass
class SeedRun:
    seed: int
    metrics: dict[str, Any]
    baseline: dict[str, Any]
    seconds: float
    epochs: int
    verdicts: list[tuple[float, bool]]  # per test song: (confidence, majority verdict right)


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values are read as JSON where they parse (numbers, true/false)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            sys.exit(f"error: --set {pair!r}: expected key=value, e.g. training.epochs=20")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def settings_for(recipe: dict[str, Any], workspace: Path, dataset: Path) -> config.Settings:
    """Built-in defaults (never the user's config), the recipe, then the paths."""
    s = config.load(use_user_config=False)
    for key, value in recipe.items():
        config.override(s, key, value)
    s.workspace, s.dataset = str(workspace), str(dataset)
    return s


def run_seeds(
    dataset: Path, workspace: Path, recipe: dict[str, Any], seeds: int, keep: bool, log=print
) -> list[SeedRun]:
    settings = settings_for(recipe, workspace, dataset)
    ws = Workspace(workspace.resolve()).ensure()
    ds = scan_dataset(dataset, settings, ws)
    started = time.perf_counter()
    done = extract(ds.songs, settings, ws)
    log(
        f"features: {done.done} extracted, {done.cached} cached, {len(done.failed)} failed "
        f"({time.perf_counter() - started:.0f} s)"
    )
    runs = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for seed in range(seeds):
        config.override(settings, "training.seed", seed)
        result = train(ds, settings, ws, name=f"accuracy-{stamp}-s{seed}")
        t = result.card.training
        m = result.metrics.to_json()
        verdicts = _verdicts(ws, result.name, ds, settings)
        runs.append(SeedRun(seed, m, result.baseline.to_json(), t.seconds, t.epochs_run, verdicts))
        log(
            f"seed {seed}: songs {m['song_accuracy']:.3f} (mean p {m['song_accuracy_mean']:.3f}), "
            f"chunks {m['chunk_accuracy']:.3f}; {t.epochs_run} epochs, {t.seconds:.0f} s"
        )
        if not keep:
            registry.remove(ws, result.name)
    return runs


def _verdicts(ws: Workspace, name: str, ds: Any, settings: config.Settings) -> list[tuple[float, bool]]:
    """Each test song's verdict as `genre query` gives it: (calibrated confidence, right?)."""
    loaded = registry.load(ws, name)
    store = store_for(ws, settings)
    out = []
    for song in ds.usable("test"):
        if not store.has(song.key):
            continue
        if isinstance(loaded.card, HeadCard):
            arrays, meta = store.load_arrays(song.key, EMBEDDING_ARRAYS)
            if not len(arrays["lengths"]):
                continue
            probs = chunk_probabilities(loaded, arrays, meta)[0]
        else:
            e = store.load(song.key)
            probs = predict_chunks(loaded, e.mfcc, e.contrast_peaks, e.lengths)
        v = verdict(probs, loaded.genres)
        out.append((v.confidence, v.majority == song.genre))
    return out


def selective(runs: list[SeedRun]) -> str:
    """What query.min_confidence would do: songs answered (not uncertain) and their accuracy."""
    lines = [f"{'query.min_confidence':22} {'songs answered':>16} {'accuracy of those':>20}"]
    for th in THRESHOLDS:
        cover, acc = [], []
        for r in runs:
            kept = [ok for conf, ok in r.verdicts if conf >= th]
            cover.append(len(kept) / max(len(r.verdicts), 1))
            acc.append(sum(kept) / len(kept) if kept else float("nan"))
        lines.append(f"{th:<22.2f} {statistics.mean(cover):>15.0%} {statistics.mean(acc):>20.3f}")
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f} ({min(values):.3f}-{max(values):.3f})"


def table(runs: list[SeedRun]) -> str:
    lines = [f"{'score':34} {'model: mean ± std (min-max)':32} {'baseline (card)':>22}"]
    for label, key in SCORES:
        model = [r.metrics[key] for r in runs]
        base = [r.baseline[key] for r in runs]
        lines.append(f"{label:34} {_spread(model):32} {_spread(base):>22}")
    secs = [r.seconds for r in runs]
    epochs = ", ".join(str(r.epochs) for r in runs)
    lines.append(
        f"{'training time per seed':34} {statistics.mean(secs):.0f} s "
        f"(min {min(secs):.0f}, max {max(secs):.0f}); epochs run {epochs}"
    )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--recipe", default="defaults", choices=sorted(RECIPES))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--workspace", type=Path, default=Path("bench/out/accuracy-ws"))
    p.add_argument("--keep", action="store_true", help="keep the trained models")
    p.add_argument("--json", type=Path, help="also write every seed's scores here")
    args = p.parse_args()
    recipe = {**RECIPES[args.recipe], **parse_sets(args.sets)}
    load_before = os.getloadavg()
    try:
        runs = run_seeds(args.dataset, args.workspace, recipe, args.seeds, args.keep)
    except GenreError as exc:
        sys.exit(f"error: {exc}")
    load_after = os.getloadavg()
    first = runs[0].metrics
    print(
        f"\nrecipe {args.recipe} {json.dumps(recipe) if recipe else ''} on {args.dataset}: "
        f"{len(first['confusion']['genres'])} genres, {first['songs']} test songs, "
        f"seeds 0-{args.seeds - 1}"
    )
    print(table(runs))
    print(selective(runs))
    loads = " / ".join(" ".join(f"{x:.2f}" for x in la) for la in (load_before, load_after))
    print(f"load average (1, 5, 15 min) before / after: {loads}; {os.cpu_count()} CPUs")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "recipe": args.recipe,
            "settings": recipe,
            "dataset": str(args.dataset),
            "load_average": {"before": load_before, "after": load_after},
            "seeds": [vars(r) for r in runs],
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
