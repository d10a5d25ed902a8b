"""What every command shares: the common options, settings loading, and error rendering.

stdout carries only a command's data (tables, --json); progress and messages go to stderr.
"""

from __future__ import annotations

import errno
import functools
import re
import shlex
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from genre_erkennung.core import config as config_mod
from genre_erkennung.core.config import Settings
from genre_erkennung.core.errors import GenreError
from genre_erkennung.core.workspace import Workspace, from_settings

# markup=False: file names like "[live] song.mp3" are data, never style tags. A pipe gets a wide
# console so tables (model names, paths) are not cut at 80 columns.
out = Console(highlight=False, soft_wrap=True, markup=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

_STOP_REASONS = {
    "epochs": "all epochs run",
    "early-stop": "stopped early: validation loss stopped improving",
    "cancelled": "stopped by you",
}


def stop_reason(stopped: str) -> str:
    """Why a training run ended, in words (the card keeps the short code)."""
    return _STOP_REASONS.get(stopped, stopped)


def genre_list(genres: list[str]) -> str:
    """Genres joined so that a name holding a comma stays one name: `a, "b, c"`."""
    return ", ".join(f'"{g}"' if "," in g or '"' in g else g for g in genres)


def clock(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour on: song positions and durations everywhere."""
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML config file (see sample_config.toml).")
]
WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", help="Folder for features, models and downloads."),
]
DatasetOpt = Annotated[Path | None, typer.Option("--dataset", help="Dataset root holding train/ and test/.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", help="Show tracebacks (for bug reports).")]


@dataclass
class Context:
    """Settings after every layer of precedence, and the workspace they name."""

    settings: Settings
    workspace: Workspace

    def dataset_root(self) -> Path:
        if not self.settings.dataset:
            raise GenreError("no dataset given: pass --dataset ROOT or set `dataset` in your config")
        return Path(self.settings.dataset).expanduser()


def load(
    config: Path | None, workspace: Path | None = None, dataset: Path | None = None, **flags: Any
) -> Context:
    """Defaults < user config < --config < flags (given as dotted keys, e.g. audio.sample_rate)."""
    settings = config_mod.load(config)
    if workspace is not None:
        settings.workspace = str(workspace)
    if dataset is not None:
        settings.dataset = str(dataset)
    for key, value in flags.items():
        config_mod.override(settings, key.replace("__", "."), value)
    return Context(settings, from_settings(settings))


#: Commands that work on a workspace: a hint naming one repeats the options that chose it.
_WORKSPACE_COMMANDS = re.compile(r"`genre (extract|train|query|models|store|evaluate)\b[^`]*`")


def repeat_options(text: str, config: Path | None = None, workspace: Path | None = None) -> str:
    """Add the user's --config and --workspace to each `genre ...` command a message suggests,
    so following the hint works on the same workspace with the same settings."""
    extra = [(flag, value) for flag, value in (("--config", config), ("--workspace", workspace)) if value]

    def complete(match: re.Match[str]) -> str:
        command = match.group(0)[1:-1]
        for flag, value in extra:
            if f"{flag} " not in command:
                command += f" {flag} {shlex.quote(str(value))}"
        return f"`{command}`"

    return _WORKSPACE_COMMANDS.sub(complete, text) if extra else text


#: Operating-system failures a user fixes outside the app, and how.
_FIXES = {
    errno.EROFS: "the folder is not writable; use --workspace with one you can write",
    errno.EACCES: "not writable or readable for you; check its permissions or use another --workspace",
    errno.ENOSPC: "the disk is full; free some space (see `genre store list`) and run the command again",
}
_USER_FIXABLE = frozenset(_FIXES)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Turn a GenreError into one red line on stderr and its exit code; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        verbose = bool(kwargs.get("verbose"))
        try:
            return fn(*args, **kwargs)
        except GenreError as exc:
            if verbose:
                traceback.print_exc()
            message = repeat_options(str(exc), kwargs.get("config"), kwargs.get("workspace"))
            err.print(Text.assemble(("error: ", "bold red"), message))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print(Text("interrupted", style="yellow"))
            raise typer.Exit(130) from None
        except OSError as exc:
            if exc.errno not in _USER_FIXABLE or verbose:
                raise
            where = exc.filename or "a file"
            err.print(Text.assemble(("error: ", "bold red"), f"{where}: {exc.strerror}: {_FIXES[exc.errno]}"))
            raise typer.Exit(1) from None
        except BrokenPipeError:
            sys.stderr.close()
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
