"""Shared fixtures: real audio made by the real ffmpeg, and an isolated config/workspace."""

from __future__ import annotations

import functools
import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from genre_erkennung.core import audio


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test reads the developer's own config or writes to their data folder."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("GENRE_NO_USER_CONFIG", "1")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))


def make_audio(
    path: Path,
    seconds: float,
    *,
    freq: float = 440.0,
    channels: int = 1,
    sample_rate: int = 44100,
    kind: str = "sine",
    seed: int = 0,
    extra: list[str] | None = None,
) -> Path:
    """Write a tone or noise with ffmpeg's lavfi sources; the codec follows the extension."""
    if kind == "sine":
        src = f"sine=frequency={freq}:sample_rate={sample_rate}:duration={seconds}"
    else:
        src = f"anoisesrc=color={kind}:sample_rate={sample_rate}:duration={seconds}:amplitude=0.3:seed={seed}"
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [audio.find_ffmpeg(), "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", src]
    cmd += ["-ac", str(channels), *(extra or []), audio.ffmpeg_input(path)]
    subprocess.run(cmd, check=True)
    return path


@pytest.fixture
def audio_file() -> Callable[..., Path]:
    return make_audio


def make_dataset(
    root: Path,
    genres: dict[str, tuple[str, float]],
    per_split: tuple[int, int] = (2, 1),
    seconds: float = 12.0,
) -> Path:
    """ROOT/{train,test}/<genre>/ with songs of a genre-specific tone or noise colour."""
    for genre, (kind, freq) in genres.items():
        for s, (split, n) in enumerate(zip(("train", "test"), per_split, strict=True)):
            for i in range(n):
                name = f"{genre} song {i}.mp3" if i % 2 == 0 else f"{genre}-ü {i}.wav"
                variant = 1 + i / 10 + s / 20
                make_audio(
                    root / split / genre / name,
                    seconds + i,
                    kind=kind,
                    freq=freq * variant,
                    seed=1 + i + 100 * s,
                )
    return root


def run_genre(*args: str | Path, check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the installed `genre` command for real, stdout and stderr kept apart."""
    exe = Path(sys.executable).with_name("genre")
    proc = subprocess.run(
        [str(exe), *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"genre {args} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 (ephemeral port) serving a folder the tests fill."""
    root = tmp_path_factory.mktemp("www")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


def refused_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def genre_in_process(*args: str | Path, check: bool = False) -> subprocess.CompletedProcess:
    """Run the CLI inside this process (no second torch import); same shape as `run_genre`."""
    from typer.testing import CliRunner

    from genre_erkennung.tui.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    if check and result.exit_code != 0:
        raise AssertionError(f"genre {args} failed ({result.exit_code}):\n{result.stderr}")
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


# --- the real sonic-annotator (tests/test_sonic_live.py) ---------------------------------------


@pytest.fixture(scope="session")
def sonic_host() -> str:
    """The real sonic-annotator, with both plugins found through VAMP_PATH, else a skip that
    says why. Under CI=true that skip is a failure: a broken install must not pass as skipped."""
    import os

    from genre_erkennung.core.errors import GenreError
    from genre_erkennung.core.features.sonic import host_status

    try:
        status = host_status()
        reason = status.problem()
    except GenreError as exc:
        reason = str(exc)
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true, so the live sonic-annotator tests must run: {reason}")
        pytest.skip(reason)
    return status.path
