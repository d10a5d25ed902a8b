"""Start-up of the commands that need no tensor math, against a bare interpreter and `import torch`.

    python bench/startup.py [--repeat 5]

Each command runs --repeat times in a new process; the best wall time and the CPU seconds of
that run (user + system, the child's own) are printed. CPU time is what to read on a busy box:
wall time there is mostly waiting for a core. Target (issue 15): each under 0.5 s wall, idle.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import GENRE, load_average

CARD = Path(__file__).parents[1] / "tests" / "data" / "model_card_v1.json"


def once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `cmd`."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode})")
    return wall, usage.ru_utime + usage.ru_stime


def best(cmd: list[str], repeat: int, env: dict[str, str]) -> tuple[float, float]:
    return min((once(cmd, env) for _ in range(repeat)), key=lambda r: r[0])


def fake_model(ws: Path, name: str) -> None:
    """A saved model as these commands see it: a card and the weights it names (never read)."""
    folder = ws / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    weights = b"weights " + name.encode()
    card = json.loads(CARD.read_text())
    card["name"], card["weights"]["sha256"] = name, hashlib.sha256(weights).hexdigest()
    (folder / "weights.safetensors").write_bytes(weights)
    (folder / "model.json").write_text(json.dumps(card))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        for name in ("m1", "m2"):
            fake_model(ws, name)
        env = {**os.environ, "GENRE_NO_USER_CONFIG": "1"}
        w = ["--workspace", str(ws)]
        rows: list[tuple[str, list[str], dict[str, str]]] = [
            ("python -c pass", [sys.executable, "-c", "pass"], env),
            ("python -c 'import torch'", [sys.executable, "-c", "import torch"], env),
            ("genre --help", [GENRE, "--help"], env),
            ("genre --version", [GENRE, "--version"], env),
            ("genre models list", [GENRE, "models", "list", *w], env),
            ("genre models show m1", [GENRE, "models", "show", "m1", *w], env),
            ("genre store list", [GENRE, "store", "list", *w], env),
            ("genre store prune --dry-run", [GENRE, "store", "prune", "--dry-run", *w], env),
            ("genre dataset show (missing)", [GENRE, "dataset", "show", str(Path(tmp) / "none"), *w], env),
            (
                "completion (bash)",
                [GENRE],
                {**env, "_GENRE_COMPLETE": "complete_bash", "COMP_WORDS": "genre mo", "COMP_CWORD": "1"},
            ),
        ]
        print(f"load average before: {load_average()}; best of {args.repeat} runs each")
        print(f"{'':32} {'wall s':>7} {'cpu s':>7}")
        results = {}
        for label, cmd, e in rows:
            results[label] = best(cmd, args.repeat, e)
            print(f"{label:32} {results[label][0]:7.3f} {results[label][1]:7.3f}", flush=True)
    torch_cpu = results["python -c 'import torch'"][1]
    worst = max((r for k, r in results.items() if k.startswith(("genre", "completion"))), key=lambda r: r[0])
    print(
        f"slowest light command: {worst[0]:.3f} s wall, {worst[1]:.3f} s CPU "
        f"(target < 0.5 s wall on an idle box; importing torch alone: {torch_cpu:.3f} s CPU)"
    )
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
