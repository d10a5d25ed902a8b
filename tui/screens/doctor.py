"""The doctor report over the app (command palette: Doctor): `genre doctor`'s checks, one per
line with its fix, filled in as each check finishes (torch and ffmpeg take a few seconds)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

if TYPE_CHECKING:
    from genre_erkennung.core.doctor import Check, Report


class DoctorScreen(ModalScreen[None]):
    """What this machine has and lacks; Escape closes it."""

    DEFAULT_CSS = """
    DoctorScreen { align: center middle; }
    DoctorScreen > VerticalScroll {
        width: 90%; height: 80%; border: round $accent; background: $surface; padding: 0 1;
    }
    DoctorScreen .ok { color: $text-success; }
    DoctorScreen .warn { color: $text-warning; }
    DoctorScreen .fail { color: $text-error; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Close")]

    def __init__(self, workspace: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        self.report: Report | None = None  # once every check ran

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = "Doctor: what this machine has and lacks"
            yield Static("Checking…", id="doctor-summary")

    def on_mount(self) -> None:
        self._diagnose()

    @work(thread=True, exit_on_error=False)
    def _diagnose(self) -> None:
        from genre_erkennung.core.doctor import diagnose

        report = diagnose(None, self.workspace, on_check=lambda c: self.app.call_from_thread(self._add, c))
        self.app.call_from_thread(self._finish, report)

    def _add(self, check: Check) -> None:
        word = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}[check.status]
        text = Text.assemble((word, "bold"), "  ", (check.name, "bold"), "  ", check.detail)
        if check.fix:
            text.append(f"\n      fix: {check.fix}")
        row = Static(text, classes=f"doctor-check {check.status}")
        self.query_one(VerticalScroll).mount(row, before=self.query_one("#doctor-summary"))

    def _finish(self, report: Report) -> None:
        self.report = report
        summary = (
            "Everything the default commands need is here."
            if report.ok
            else "Something the default commands need is missing: see the FAIL lines."
        )
        self.query_one("#doctor-summary", Static).update(f"{summary}  (Escape closes)")
