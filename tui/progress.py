"""Render engine events as a rich progress bar on stderr (stdout stays for data)."""

from __future__ import annotations

from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from genre_erkennung.core import events as ev

from . import common
from .common import err


class ProgressReporter:
    """A `Reporter` for batch jobs over songs; use as a context manager around the job."""

    def __init__(self, label: str, quiet: bool = False) -> None:
        self.label = label
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}", markup=False),
            TimeElapsedColumn(),
            console=err,
            transient=False,
            disable=quiet,
        )
        self.task: TaskID | None = None

    def __enter__(self) -> ProgressReporter:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def __call__(self, event: ev.Event) -> None:
        match event:
            case ev.JobStarted(total=total):
                self.task = self.progress.add_task(self.label, total=total, info="")
            case ev.SongDone() | ev.SongFailed() if self.task is not None:
                self.progress.advance(self.task)
                if isinstance(event, ev.SongFailed):
                    self.progress.console.print(
                        Text.assemble(("failed: ", "red"), f"{event.path}: {event.error}")
                    )
            case ev.ExtractProgress(realtime_factor=rtf, eta=eta) if self.task is not None:
                eta_text = f", ETA {common.clock(eta)}" if eta is not None else ""
                self.progress.update(self.task, info=f"{rtf:.0f}x realtime{eta_text}")
            case ev.Message(text=text, level=level):
                style = "yellow" if level == "warning" else "dim"
                self.progress.console.print(Text(text, style=style))
            case _:
                pass
