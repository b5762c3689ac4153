"""The agentdeck console: one screen per job, live from the store."""

from __future__ import annotations

import time
from pathlib import Path
from collections.abc import Callable

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive, var
from textual.timer import Timer

from agentdeck.console.data import StoreAccess
from agentdeck.console.delivery import DeliveryService, DeliverySettings
from agentdeck.console.ingest_service import IngestService
from agentdeck.console.messages import HealthChecked, Ingested
from agentdeck.console.palette import COMMANDS as DECK_COMMANDS
from agentdeck.console.screens.canary import CanaryScreen
from agentdeck.console.screens.escalations import EscalationsScreen
from agentdeck.console.screens.problems import ProblemsScreen
from agentdeck.console.screens.replay import ReplayScreen
from agentdeck.console.screens.tasks import TasksScreen
from agentdeck.store import queries
from agentdeck.store.health import Health


class AgentDeck(App):
    """Tasks, Escalations, Canary and Replay over one SQLite store."""

    TITLE = "agentdeck"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = App.COMMANDS | DECK_COMMANDS
    MODES = {
        "tasks": TasksScreen,
        "escalations": EscalationsScreen,
        "canary": CanaryScreen,
        "replay": ReplayScreen,
        "problems": ProblemsScreen,
    }
    DEFAULT_MODE = "tasks"
    BINDINGS = [
        Binding("1", "switch_mode('tasks')", "Tasks"),
        Binding("2", "switch_mode('escalations')", "Escalations"),
        Binding("3", "switch_mode('canary')", "Canary"),
        Binding("4", "switch_mode('replay')", "Replay"),
        Binding("5", "switch_mode('problems')", "Problems"),
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "show_help_panel", "Help", key_display="?"),
    ]

    # `var`, not `reactive`: a change notifies watchers without repainting the
    # whole screen (these change on every ingest batch).
    data_version: var[int] = var(0)
    DATA_EVERY_S = 0.1
    counters: var[queries.Counters | None] = var(None)
    # What is wrong, if anything (store/health.py): the header's indicator and the Problems screen.
    health: var[Health] = var(Health())
    # The task (or request id) the Replay screen shows; set by open_replay.
    replay_task: reactive[str | None] = reactive(None)

    def __init__(
        self,
        db_path: Path,
        trace_paths: list[Path] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        operator: str = "operator",
        allow_hosts: frozenset[str] = frozenset(),
        follow: bool = True,
        tick: float = 1.0,
        outbox: Path | None = None,
        on_expiry: str = "deny",
    ) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        self.trace_paths = list(trace_paths or [])
        self.clock = clock
        self.operator = operator
        self.allow_hosts = allow_hosts
        self.follow_traces = follow
        self.tick = tick
        self.store = StoreAccess(self.db_path)
        # The tailer runs in its own process (when following); commits are noticed by data_version.
        self.ingest = IngestService(self, self.db_path, self.trace_paths, follow=follow)
        self.last_ingest_at: float | None = None
        self._counters_at = 0.0  # monotonic time of the last ingest-driven counters refresh
        self._data_at = 0.0  # monotonic time of the last data_version bump
        self._data_timer: Timer | None = None
        # Decisions go back to agents through the outbox (None: off) and allowed callbacks.
        self.delivery = DeliveryService(self, DeliverySettings(outbox, allow_hosts), on_expiry)  # type: ignore[arg-type]

    def now(self) -> float:
        return self.clock()

    def on_mount(self) -> None:
        self.ingest.start()
        self.refresh_counters()
        if self.tick:
            self.set_interval(self.tick, self.refresh_counters)
        # Re-deliver decisions a previous run left pending; sweep expired escalations.
        self.delivery.start(sweep_every=self.tick * 5 if self.tick else None)

    def on_unmount(self) -> None:
        self.ingest.close()

    def on_ingested(self, message: Ingested) -> None:
        self.last_ingest_at = message.committed_at
        # Screens reload on each bump, and a reload supersedes the one in
        # flight: bumped at most every DATA_EVERY_S (the first at once, the
        # last of a burst when its time comes), so under a steady stream of
        # commits each reload lands instead of being replaced by the next.
        now = time.monotonic()
        wait = self._data_at + self.DATA_EVERY_S - now
        if wait <= 0:
            self._bump_data()
        elif self._data_timer is None:
            self._data_timer = self.set_timer(wait, self._bump_data)
        # A busy fleet commits many batches a second; the counters (aggregate
        # queries) need not follow each one: at most 4 a second, plus the tick.
        now = time.monotonic()
        if now - self._counters_at >= 0.25 or not self.tick:
            self._counters_at = now
            self.refresh_counters()

    def _bump_data(self) -> None:
        self._data_timer = None
        self._data_at = time.monotonic()
        self.data_version += 1

    def on_health_checked(self, message: HealthChecked) -> None:
        self.health = message.health

    def open_task(self, task_id: str) -> None:
        """Show one task's events over the Tasks screen (from Tasks or the palette).

        The task is read first, on a worker, and the screen pushed with it:
        one paint instead of an empty screen and then its data.
        """
        self._load_task(task_id)

    @work(thread=True, exclusive=True, group="open-task")
    def _load_task(self, task_id: str) -> None:
        from agentdeck.console.screens.task_detail import load_detail

        loaded = load_detail(self.store.reader(), task_id)
        self.call_from_thread(self._show_task, task_id, loaded)

    def _show_task(self, task_id: str, loaded: tuple) -> None:
        from agentdeck.console.screens.task_detail import TaskDetailScreen

        self.switch_mode("tasks")
        # One detail screen, installed once: opening a task re-points it
        # instead of composing a new screen.
        if not self.is_screen_installed("task-detail"):
            self.install_screen(TaskDetailScreen(), name="task-detail")
        detail = self.get_screen("task-detail")
        detail.show_task(task_id, loaded)
        if self.screen is not detail:
            self.push_screen(detail)

    def filter_tasks(self, text: str) -> None:
        """Go to Tasks filtered by ``text`` (filter syntax of console.widgets.task_filter)."""
        self.switch_mode("tasks")
        while len(self.screen_stack) > 1 and not isinstance(self.screen, TasksScreen):
            self.pop_screen()  # e.g. a task's detail over the list
        if isinstance(self.screen, TasksScreen):
            self.screen.apply_filter_text(text)

    def open_replay(self, task_or_request_id: str) -> None:
        """Show one task's decision path (from Tasks, Escalations, Canary or the palette)."""
        self.replay_task = task_or_request_id
        self.switch_mode("replay")

    @work(thread=True, exclusive=True, group="counters")
    def refresh_counters(self) -> None:
        counters = queries.counters(self.store.reader(), self.now())
        self.call_from_thread(setattr, self, "counters", counters)
