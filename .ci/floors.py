"""The declared floors of the direct dependencies, as pip constraints, for `make test-floor`.

`python .ci/floors.py` prints `name==floor` for every `name>=floor` in pyproject.toml's
[project].dependencies, except torch: the floor venv takes the CPU wheel on this disk, since any
other torch is a multi-GB download. `--check` instead compares the installed versions with the
floors and exits 1 on a difference, so a run can show it really tested the floors.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

SKIP = {"torch"}


def floors(pyproject: Path) -> dict[str, str]:
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    found = {}
    for dep in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*>=\s*([0-9][0-9A-Za-z.]*)", dep.strip())
        if not m:
            sys.exit(f"{pyproject}: {dep!r} has no `>=FLOOR`; every direct dependency needs one")
        if m.group(1).lower() not in SKIP:
            found[m.group(1).lower()] = m.group(2)
    return found


def main() -> int:
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    wanted = floors(pyproject)
    if "--check" not in sys.argv:
        print("\n".join(f"{name}=={version}" for name, version in wanted.items()))
        return 0
    wrong = 0
    for name, version in wanted.items():
        have = importlib.metadata.version(name)
        ok = have == version
        wrong += not ok
        note = "" if ok else f" (declared >= {version})"
        print(f"{'floor' if ok else 'NOT THE FLOOR'}: {name} {have}{note}")
    print(f"torch {importlib.metadata.version('torch')} (the wheel on this disk, not a floor)")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
