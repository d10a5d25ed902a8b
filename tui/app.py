"""The Textual app: one window for the whole pipeline (dataset, extraction, training, query).

Four panes in tabs, reached with 1-4 whenever no text input has the focus (Escape leaves an input).
Long work runs in thread workers (`JobPane.start_job`) that call the engine with a reporter posting
Textual messages and a cancel token; quitting sets every token, so a job stops between two
consistent steps, and waits for the job threads to get there (see `GenreApp.track` and `exit`).

Shared state lives here as reactives (`SHARED`): the dataset, the saved models, the selected model
and a counter of feature-store changes. Each pane declares a reactive of the same name for what
it shows and the app binds it (`data_bind`: attributes down); panes report what they did with
messages (`panes/messages.py`: messages up). A new pane needs only an entry in PANES.

Entry points: `run(workspace, dataset, config)` builds the settings like the CLI does and opens the
app; `GenreApp(settings, ...)` takes everything injectable for tests (device label, path display).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.reactive import Reactive, reactive
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Input, TabbedContent, TabPane, Tabs

from genre_erkennung.core import config as config_mod
from genre_erkennung.core.config import Settings
from genre_erkennung.core.dataset import Dataset
from genre_erkennung.core.workspace import Workspace, from_settings

from .panes.base import Pane
from .panes.dataset import DatasetPane, demo_root
from .panes.extraction import ExtractionPane
from .panes.features import StoreView
from .panes.messages import DatasetScanned, FeaturesChanged, ModelChosen, ModelSaved
from .panes.query import QueryPane
from .panes.training import TrainingPane
from .screens.doctor import DoctorScreen
from .widgets.infobar import InfoBar

if TYPE_CHECKING:
    from genre_erkennung.core.registry import ModelInfo

PANES: tuple[type[Pane], ...] = (DatasetPane, ExtractionPane, TrainingPane, QueryPane)
#: The app's reactives a pane gets bound to when it declares a reactive of the same name.
SHARED = ("dataset", "models", "model_name", "features_version")
_PANE_KEYS = Binding.Group("panes", compact=True)

T = TypeVar("T")


class _Job:
    """One pane thread worker as the app tracks it: pending -> running -> done, or pending ->
    abandoned when the app quits before the thread got to it (then it never runs)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state = "pending"

    def settled(self) -> bool:
        """Whether the job is over or can no longer start (call only when quitting)."""
        with self.lock:
            if self.state == "pending":
                self.state = "abandoned"
            return self.state != "running"


def _home_path(path: Path) -> str:
    """Show a path with the home folder as ~."""
    try:
        return "~/" + str(Path(path).relative_to(Path.home()))
    except ValueError:
        return str(path)


class GenreApp(App[None]):
    """The genre-erkennung TUI."""

    CSS_PATH = "app.tcss"
    TITLE = "genre-erkennung"
    ENABLE_COMMAND_PALETTE = True
    AUTO_FOCUS = None  # each pane says what takes the focus (see Pane.default_focus)

    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(
                str(i),
                f"show_pane('{pane.PANE_ID}')",
                pane.TITLE,
                group=_PANE_KEYS,
                tooltip=f"Show {pane.TITLE}",
            )
            for i, pane in enumerate(PANES, 1)
        ),
        Binding("q", "quit", "Quit", tooltip="Quit (a running job stops cleanly first)"),
        Binding("escape", "leave_input", "Leave input", show=False),
    ]

    dataset: reactive[Dataset | None] = reactive(None, init=False)
    """The scanned dataset (set by `DatasetScanned`)."""
    models: reactive[tuple[ModelInfo, ...]] = reactive((), init=False)
    """The workspace's saved models, oldest first (damaged ones too, with their error)."""
    model_name: reactive[str | None] = reactive(None, init=False)
    """The model that answers queries and whose card the Training pane shows."""
    features_version: reactive[int] = reactive(0, init=False)
    """Counts `FeaturesChanged`: panes that show what the store holds look again."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        workspace: Workspace | None = None,
        device: str | None = None,
        path_display: Callable[[Path], str] | None = None,
        scan_on_mount: bool = True,
        load_models: bool = True,
    ) -> None:
        """`device`: a fixed label instead of asking torch (tests); `path_display`: how paths are
        shown (tests map temp folders to fixed names); `scan_on_mount`: scan settings.dataset at
        start; `load_models`: list the workspace's models at start (in a worker)."""
        super().__init__()
        self.settings = settings or config_mod.load()
        self.workspace = workspace or from_settings(self.settings)
        self.store_view = StoreView(self.workspace, self.settings)
        self.dataset_root: Path | None = (
            Path(self.settings.dataset).expanduser() if self.settings.dataset else None
        )
        if self.dataset_root is None and demo_root(self.workspace).is_dir():
            self.dataset_root = demo_root(self.workspace)  # made by `genre demo` or key d
        self.device_label = device
        self._path_display = path_display or _home_path
        self.scan_on_mount = scan_on_mount
        self._load_models = load_models
        self.set_reactive(GenreApp.model_name, self.settings.query.model or None)
        self._cancel_tokens: set[threading.Event] = set()
        self._jobs: set[_Job] = set()
        self._jobs_lock = threading.Lock()
        self._quitting = False
        self._focused_pane: str | None = None  # the tab whose pane got the focus when shown

    # ----------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield InfoBar(id="infobar")
        with TabbedContent(id="panes"):
            for i, pane in enumerate(PANES, 1):
                with TabPane(f"{i} {pane.TITLE}", id=pane.PANE_ID):
                    yield self._bound(pane(id=f"{pane.PANE_ID}-pane"))
        yield Footer()

    @staticmethod
    def _bound(pane: Pane) -> Pane:
        """Bind the shared state the pane declares a reactive for."""
        wanted = [name for name in SHARED if isinstance(getattr(type(pane), name, None), Reactive)]
        return pane.data_bind(**{name: getattr(GenreApp, name) for name in wanted}) if wanted else pane

    def on_mount(self) -> None:
        self.query_one("#panes Tabs", Tabs).can_focus = False  # focus always lives in a pane
        bar = self.query_one(InfoBar)
        bar.workspace = self.show_path(self.workspace.root)
        bar.dataset = self.show_path(self.dataset_root) if self.dataset_root else ""
        bar.model = self.model_name or ""
        bar.device = self.device_label or ""
        if self.device_label is None:
            self._detect_device()
        if self._load_models:
            self._list_models()
        self._focus_active()

    @work(thread=True, group="startup", exit_on_error=False)
    def _detect_device(self) -> None:
        """Import torch off the UI thread."""
        self.call_from_thread(self._set_device, detect_device(self.settings))

    def _set_device(self, label: str) -> None:
        self.device_label = label
        self.query_one(InfoBar).device = label

    # ----------------------------------------------------------------- panes

    def pane(self, kind: type[Pane]) -> Pane:
        return self.query_one(f"#{kind.PANE_ID}-pane", kind)

    def active_pane(self) -> Pane:
        active = self.query_one("#panes", TabbedContent).active
        return self.query_one(f"#{active}-pane", Pane)

    def action_show_pane(self, pane_id: str) -> None:
        tabs = self.query_one("#panes", TabbedContent)
        tabs.active = pane_id
        # Switch and focus now, not on the next message: keys typed right after 1-4 (as tmux
        # send-keys or a fast typist delivers them) must reach the new pane.
        tabs.query_one(ContentSwitcher).current = pane_id
        self._focus_active()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """A tab chosen with the mouse: focus its pane once it is laid out. A key (1-4) has focused
        the pane already; focusing it again later would undo a key typed meanwhile (4 then Escape)."""
        if event.pane.id != self._focused_pane:
            self.call_after_refresh(self._focus_tab, event.pane.id)

    def _focus_tab(self, pane_id: str | None) -> None:
        if self.query_one("#panes", TabbedContent).active == pane_id and self._focused_pane != pane_id:
            self._focus_active()

    def _focus_active(self) -> None:
        pane = self.active_pane()
        focused = self.focused
        if not (focused is not None and pane in focused.ancestors and focused.display):
            self.screen.set_focus(pane.default_focus())
            focused = self.focused
        if focused is not None and pane in focused.ancestors:
            self._focused_pane = pane.PANE_ID  # from here on the user moves the focus

    def action_leave_input(self) -> None:
        focused = self.focused
        if not isinstance(focused, Input):
            return
        pane = self.active_pane()
        if pane.leave_input():
            return
        target = pane.default_focus()
        if target is None or isinstance(target, Input):
            self.set_focus(None)
        else:
            target.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_input":
            return isinstance(self.focused, Input)
        return True

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette offers every pane and every pane's actions, besides Textual's own."""
        yield from super().get_system_commands(screen)
        yield SystemCommand("Doctor", "What this machine has and lacks", self._doctor)
        for i, kind in enumerate(PANES, 1):
            yield SystemCommand(f"Show {kind.TITLE}", f"Switch to pane {i} (key {i})", self._shower(kind))
            for binding in kind.BINDINGS:
                if isinstance(binding, Binding):
                    help_text = (
                        f"{binding.tooltip or binding.description} (key {binding.key} on {kind.TITLE})"
                    )
                    yield SystemCommand(
                        f"{kind.TITLE}: {binding.description}", help_text, self._runner(kind, binding.action)
                    )

    def _doctor(self) -> None:
        self.push_screen(DoctorScreen(self.workspace.root))

    def _shower(self, kind: type[Pane]) -> Callable[[], None]:
        return lambda: self.action_show_pane(kind.PANE_ID)

    def _runner(self, kind: type[Pane], action: str) -> Callable[[], None]:
        def run_it() -> None:
            self.action_show_pane(kind.PANE_ID)
            pane = self.pane(kind)
            self.call_after_refresh(pane.run_action, action)

        return run_it

    # ----------------------------------------------------------------- jobs

    def new_cancel_token(self) -> threading.Event:
        token = threading.Event()
        self._cancel_tokens.add(token)
        return token

    def track(self, work: Callable[[], T]) -> Callable[[], T | None]:
        """Wrap a thread worker's body so that quitting waits for it (Pane.run_worker does this for
        every pane's thread worker). Textual cancels a thread worker's task on exit but cannot stop
        its thread, so without this `run`/`run_async` could return while a job still writes."""
        job = _Job()
        with self._jobs_lock:
            self._jobs = {j for j in self._jobs if j.state not in ("done", "abandoned")} | {job}

        def tracked() -> T | None:
            with job.lock:
                if job.state == "abandoned":
                    return None
                job.state = "running"
            try:
                return work()
            finally:
                with job.lock:
                    job.state = "done"

        return tracked

    def _jobs_settled(self) -> bool:
        """Set every cancel token; True once no job thread is running (pending ones never will)."""
        for token in self._cancel_tokens:
            token.set()
        with self._jobs_lock:
            jobs = list(self._jobs)
        return all([job.settled() for job in jobs])

    def exit(self, result: None = None, return_code: int = 0, message: Any = None) -> None:
        """Stop every job at its next safe point, then leave: the UI stays up and says so until the
        job threads have returned, so the store and the models are whole when the app ends."""
        if self._jobs_settled():
            super().exit(result, return_code, message)
            return
        if self._quitting:
            return
        self._quitting = True
        self.notify("Stopping the running job at its next safe point…", title="Quitting")
        self.run_worker(self._exit_when_settled(result, return_code, message), group="quit")

    async def _exit_when_settled(self, result: None, return_code: int, message: Any) -> None:
        while not self._jobs_settled():
            await asyncio.sleep(0.02)
        super().exit(result, return_code, message)

    async def on_unmount(self) -> None:
        """However the app ends (also a test's run_test, which shuts down without `exit`), running
        jobs are told to stop and their threads are awaited."""
        while not self._jobs_settled():
            await asyncio.sleep(0.02)

    # ----------------------------------------------------------------- shared state

    def show_path(self, path: Path | str) -> str:
        return self._path_display(Path(path))

    def watch_dataset(self, ds: Dataset | None) -> None:
        if ds is not None:
            self.dataset_root = ds.root
            self.query_one(InfoBar).dataset = self.show_path(ds.root)

    def watch_model_name(self, name: str | None) -> None:
        self.query_one(InfoBar).model = name or ""

    def on_dataset_scanned(self, message: DatasetScanned) -> None:
        self.dataset = message.dataset

    def on_features_changed(self, _message: FeaturesChanged) -> None:
        self.features_version += 1

    def on_model_saved(self, message: ModelSaved) -> None:
        self._list_models(select=message.name)

    def on_model_chosen(self, message: ModelChosen) -> None:
        self.model_name = message.name

    @work(thread=True, group="models", exit_on_error=False)
    def _list_models(self, select: str | None = None) -> None:
        """The saved models, read off the UI thread (one card file per model)."""
        from genre_erkennung.core import registry

        self.call_from_thread(self._models_listed, registry.list_models(self.workspace), select)

    def _models_listed(self, models: list[ModelInfo], select: str | None) -> None:
        """Keep the selected model if it is still usable, else take `select` or the newest."""
        self.models = tuple(models)
        usable = [m.name for m in models if m.error is None]
        if select in usable:
            self.model_name = select
        elif self.model_name not in usable:
            self.model_name = usable[-1] if usable else None


def detect_device(settings: Settings) -> str:
    """'CUDA · <GPU name>' or 'CPU' (imports torch: call it off the UI thread)."""
    try:
        import torch
    except ImportError:
        return "CPU (no torch)"
    want = settings.training.device
    if want != "cpu" and torch.cuda.is_available():
        return f"CUDA · {torch.cuda.get_device_name(0)}"
    if want == "cuda":
        return "CPU (no CUDA GPU found)"
    return "CPU"


def make_app(
    workspace: Path | None = None, dataset: Path | None = None, config: Path | None = None
) -> GenreApp:
    """Settings as the CLI builds them (defaults < user config < --config < flags), then the app."""
    settings = config_mod.load(config)
    if workspace is not None:
        settings.workspace = str(workspace)
    if dataset is not None:
        settings.dataset = str(dataset)
    return GenreApp(settings)


def run(workspace: Path | None = None, dataset: Path | None = None, config: Path | None = None) -> None:
    """Open the TUI (blocks until the user quits)."""
    make_app(workspace, dataset, config).run()


if __name__ == "__main__":
    run()
