"""What every pane shares, and `JobPane`: one way to run an engine job from a pane.

A job runs in a thread worker. It is handed a reporter that posts each engine event to its pane
as an `EngineEvent` message (`post_message` is thread-safe) and a cancel token that the app also
sets when it quits, so a job always stops between two consistent steps; the app waits for the
thread (see `GenreApp.track`). The job's return value goes to the `done` callback given to
`start_job`; whatever it raises ends in `job_failed`, the one error path of every pane.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import App
from textual.containers import Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from genre_erkennung.core import events as ev
from genre_erkennung.core.errors import GenreError

if TYPE_CHECKING:
    from ..app import GenreApp

#: A pane's job: the engine call, given a reporter and a cancel token; its result is never None.
Job = Callable[[ev.Reporter, threading.Event], Any]


def _supersedes(new: ev.Event, old: ev.Event) -> bool:
    """Whether `new` makes `old` worth nothing: only progress readings, never counted events."""
    if isinstance(new, ev.ExtractProgress):
        return isinstance(old, ev.ExtractProgress)
    if isinstance(new, ev.DownloadProgress):
        return isinstance(old, ev.DownloadProgress) and old.url == new.url
    return False


class EngineEvent(Message):
    """One engine event, delivered to its pane on the UI thread.

    A progress reading still queued is dropped for a newer one (Textual's `can_replace`, as
    Toolong merges its scan progress), so a flood of download ticks costs a few redraws."""

    def __init__(self, event: ev.Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EngineEvent) and _supersedes(message.event, self.event)


def describe_error(exc: BaseException) -> str:
    """One line for a job's failure: the engine's own words for what the user can fix."""
    if isinstance(exc, GenreError):
        return str(exc)
    if isinstance(exc, ImportError):
        return f"a module it needs is unavailable ({exc})"
    return f"unexpected {type(exc).__name__}: {exc} (a bug: please report it)"


class Pane(Vertical):
    """A tab of the app. Subclasses set TITLE and PANE_ID, compose a Static `#<PANE_ID>-status`
    and may override `default_focus`."""

    TITLE: ClassVar[str] = ""
    PANE_ID: ClassVar[str] = ""

    @property
    def genre_app(self) -> GenreApp:
        return self.app  # type: ignore[return-value]

    def default_focus(self) -> Widget | None:
        """The widget that takes the focus when the pane is shown."""
        return None

    def leave_input(self) -> bool:
        """Escape in one of the pane's inputs: True if the pane handled it (else the focus moves
        to `default_focus`)."""
        return False

    def status(self, text: str | Text) -> None:
        """The pane's status line (it wraps: errors are shown whole)."""
        self.query_one(f"#{self.PANE_ID}-status", Static).update(text)


class JobPane(Pane):
    """A pane that runs engine jobs, one at a time. Bindings named in START_ACTIONS are greyed out
    while a job runs, `cancel` while none does; `apply` shows the job's events."""

    START_ACTIONS: ClassVar[frozenset[str]] = frozenset({"start"})
    STOPPING: ClassVar[str] = "Stopping at the next safe point…"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cancel: threading.Event | None = None
        self._job_worker: Worker[Any] | None = None
        self._done: Callable[[Any], None] = lambda _result: None

    @property
    def running(self) -> bool:
        return self.cancel is not None

    def start_job(self, work: Job, done: Callable[[Any], None], status: str) -> bool:
        """Run `work(report, cancel)` in a thread, then `done(result)` on the UI thread. Refused
        (False) while this pane's previous job runs."""
        if self.running:
            self.notify(f"{self.TITLE}: a job is already running.", severity="warning")
            return False
        cancel = self.genre_app.new_cancel_token()
        self.cancel, self._done = cancel, done

        def report(event: ev.Event) -> None:
            self.post_message(EngineEvent(event))

        self.status(status)
        self.refresh_bindings()
        self._job_worker = self.run_worker(
            self.genre_app.track(lambda: work(report, cancel)),
            name=self.PANE_ID,
            group=self.PANE_ID,
            thread=True,
            exit_on_error=False,
        )
        return True

    def action_cancel(self) -> None:
        if self.cancel is not None:
            self.cancel.set()
            self.status(self.STOPPING)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.START_ACTIONS:
            return None if self.running else True  # None: shown greyed out
        if action == "cancel":
            return True if self.running else None
        return True

    def on_engine_event(self, message: EngineEvent) -> None:
        message.stop()
        self.apply(message.event)

    def apply(self, event: ev.Event) -> None:
        """Show one engine event of the running job (tests call it to drive a pane exactly)."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker is not self._job_worker or not worker.is_finished:
            return
        done = self._done
        self.cancel, self._job_worker = None, None
        self.refresh_bindings()
        if event.state is WorkerState.SUCCESS and worker.result is not None:
            done(worker.result)
        elif event.state is WorkerState.ERROR and worker.error is not None:
            self.job_failed(describe_error(worker.error))

    def job_failed(self, error: str) -> None:
        """The job raised: say so in the status line and in a notification."""
        self.status(Text(f"error: {error}", style=tone(self, "text-error")))
        self.notify(error, title=self.TITLE, severity="error")


def tone(widget: Widget | App, name: str) -> str:
    """A Rich style colour from the current theme (e.g. 'text-error'), readable on dark and light."""
    app = widget if isinstance(widget, App) else widget.app
    value = app.theme_variables.get(name)
    return value or ""


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def relative(path: str | Path, root: Path | None) -> str | None:
    """`path` relative to `root`, or None when it lies elsewhere."""
    if root is None:
        return None
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return None
