"""Each module has one name: genre_erkennung.core / .tui, never a second copy as core / tui."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("name", ["core.errors", "tui.common", "core"])
def test_the_folders_cannot_be_imported_under_their_folder_names(name: str) -> None:
    proc = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0 and "import genre_erkennung." in proc.stderr


def test_every_module_is_loaded_once() -> None:
    """Importing the whole app from the repository root gives one module per source file."""
    code = (
        "import sys, genre_erkennung.tui.cli, genre_erkennung.tui.app, genre_erkennung.core.train; "
        "import os; files = [os.path.realpath(m.__file__) for n, m in list(sys.modules.items()) "
        "if n.startswith('genre_erkennung') and getattr(m, '__file__', None)]; "
        "print(len(files), len(set(files)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    total, unique = map(int, proc.stdout.split())
    assert total == unique > 30


def test_the_type_checker_sees_the_package_through_its_links() -> None:
    for part in ("core", "tui"):
        link = ROOT / "genre_erkennung" / part
        assert link.is_symlink() and link.resolve() == (ROOT / part).resolve()
