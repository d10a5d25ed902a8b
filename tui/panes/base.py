"""What every pane shares: engine events as Textual messages, job bookkeeping, formatting.

Long engine work runs in a thread worker. The worker is handed a reporter that posts each engine
event to the pane as an `EngineEvent` message (`post_message` is thread-safe), and a cancel token
that the app also sets when it quits, so a job always stops between two consistent steps.
"""

from __future__ import annotations

import inspect
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import App
from textual.containers import Vertical
from textual.message import Message
from textual.widget import Widget
from textual.worker import Worker

from genre_erkennung.core import events as ev

if TYPE_CHECKING:
    from ..app import GenreApp


class EngineEvent(Message):
    """One engine event, delivered on the UI thread."""

    def __init__(self, job: str, event: ev.Event) -> None:
        super().__init__()
        self.job = job
        self.event = event


class JobDone(Message):
    """A worker's job returned (`result`) or raised a user-facing error (`error`)."""

    def __init__(self, job: str, result: Any = None, error: str | None = None) -> None:
        super().__init__()
        self.job = job
        self.result = result
        self.error = error


class Pane(Vertical):
    """A tab of the app. Subclasses set TITLE and PANE_ID and may override `default_focus`."""

    TITLE: ClassVar[str] = ""
    PANE_ID: ClassVar[str] = ""

    @property
    def genre_app(self) -> GenreApp:
        return self.app  # type: ignore[return-value]

    def default_focus(self) -> Widget | None:
        """The widget that takes the focus when the pane is shown."""
        return None

    def reporter(self, job: str) -> ev.Reporter:
        """A thread-safe `Reporter` that turns engine events into `EngineEvent` messages."""

        def report(event: ev.Event) -> None:
            self.post_message(EngineEvent(job, event))

        return report

    def run_worker(
        self,
        work: Any,
        name: str | None = "",
        group: str = "default",
        description: str = "",
        exit_on_error: bool = True,
        start: bool = True,
        exclusive: bool = False,
        thread: bool = False,
    ) -> Worker[Any]:
        """Textual's run_worker (which @work calls), with every thread worker tracked by the app so
        that quitting waits for the thread to return (see GenreApp.track)."""
        if thread and callable(work) and not inspect.iscoroutinefunction(getattr(work, "func", work)):
            work = self.genre_app.track(work)
        return super().run_worker(
            work,
            name=name,
            group=group,
            description=description,
            exit_on_error=exit_on_error,
            start=start,
            exclusive=exclusive,
            thread=thread,
        )

    def new_job(self) -> threading.Event:
        """A cancel token the app also sets on quit."""
        return self.genre_app.new_cancel_token()


def tone(widget: Widget | App, name: str) -> str:
    """A Rich style colour from the current theme (e.g. 'text-error'), readable on dark and light."""
    app = widget if isinstance(widget, App) else widget.app
    value = app.theme_variables.get(name)
    return value or ""


def clock(seconds: float | None) -> str:
    """12.3 -> '0:12'; 3725 -> '1:02:05'; None -> '–'."""
    if seconds is None:
        return "–"
    m, s = divmod(int(seconds + 0.5), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def styled(text: str, style: str) -> Text:
    return Text(text, style=style)


def shorten(text: str, width: int) -> str:
    """Keep the end of a long path: '…/rock/song.mp3'."""
    if width <= 1 or len(text) <= width:
        return text
    return "…" + text[-(width - 1) :]


def relative(path: str | Path, root: Path | None) -> str | None:
    """`path` relative to `root`, or None when it lies elsewhere."""
    if root is None:
        return None
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return None
