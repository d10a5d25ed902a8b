import os
import stat
from pathlib import Path

from genre_erkennung.core.atomic import atomic_write_text


def test_atomic_files_are_not_private(tmp_path: Path) -> None:
    """mkstemp makes 0600 files; ours get what open() would give under the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    atomic_write_text(tmp_path / "x.json", "{}")
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
