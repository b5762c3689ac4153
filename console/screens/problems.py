"""Problems: everything that is wrong right now, with since-when and what to do.

The list is the app's ``health`` (store/health.py, checked about once a
second on a worker): ingest that stopped, stalled or cannot read a path,
rejected trace lines, decisions not delivered, compensations that failed.
Worst first; the cursor stays on the same problem across checks; ``enter``
goes where a failed delivery or compensation is retried. ``R``
restarts the console's ingest process now (it is also restarted by itself,
with backoff). Nothing here does I/O: it shows what the check found.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static
from textual.widgets.data_table import CellDoesNotExist

from agentdeck.console.keymap import retry
from agentdeck.console.safe import plain
from agentdeck.console.screens.base import DeckScreen
from agentdeck.console.widgets.chrome import format_clock
from agentdeck.console.widgets.vim_table import VimTable

if TYPE_CHECKING:  # screens read through the app; these are only the shapes they show
    from agentdeck.store.health import Health, Problem

LEVEL_STYLE = {"error": ("✖ error", "bold red"), "warn": ("▲ warn", "bold yellow")}


def age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def since_text(problem: Problem, checked_at: float) -> str:
    if problem.since is None:
        return ""
    clock = format_clock(problem.since, checked_at)  # with its date when not today
    return f"{clock} ({age(checked_at - problem.since)} ago)"


def detail_text(problem: Problem, checked_at: float) -> Text:
    text = Text()
    text.append_text(plain(problem.what, 300, style="bold", single_line=True))
    text.append("\nsince ", "dim")
    text.append(since_text(problem, checked_at) or "—")
    text.append("\nwhat to do: ", "bold")
    text.append_text(plain(problem.todo, 600))
    if problem.detail:
        text.append("\n")
        text.append_text(plain(problem.detail, 2000))
    return text


class ProblemsScreen(DeckScreen):
    MODE = "problems"
    CSS_PATH = "problems.tcss"
    BINDINGS = [
        retry("Restart the console's ingest process now", "restart_ingest"),
        Binding("enter", "goto", "Go to it", show=False),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static("", id="problems-title")
        yield VimTable(id="problems-table", cursor_type="row", zebra_stripes=True)  # the list keys
        yield Static("", id="problems-detail")
        yield Static("", id="problems-status")

    def on_mount(self) -> None:
        table = self.query_one("#problems-table", DataTable)
        table.add_columns("level", "problem", "since")
        self.problems: dict[str, Problem] = {}
        self._shown: tuple[Problem, ...] | None = None  # the problems the table lists
        self.watch(self.app, "health", self.show, init=True)
        # Health is posted when it changes, not every check: the ages count on here.
        self.set_interval(1.0, self._count_ages)
        table.focus()
        ingest = getattr(self.app, "ingest", None)
        following = ingest is not None and getattr(ingest, "supervisor", None) is not None
        self.query_one("#problems-status", Static).update(
            Text("R: restart ingest now  ·  checked about once a second" if following
                 else "this console follows no traces (--no-follow or none given): ingest is not run here",
                 style="dim"))

    def reload(self) -> None:
        """Nothing to read: the app's health check runs on its own worker."""

    def resumed(self) -> None:
        # Checks with the same problems leave the list alone (show), and the ages count on only while it is
        # shown: shown again, they are counted from now before the first frame, not a second later.
        self._count_ages()

    def show(self, health: Health) -> None:
        if self._shown == health.problems:
            # Each check posts a new Health (its time moves) even when the problems are the same: rebuilding the
            # table then would cost a frame's CPU once a second, also while this screen is hidden, against the
            # operator's keys. The ages count on in _count_ages.
            return
        self._shown = health.problems
        table = self.query_one("#problems-table", DataTable)
        keep = self._selected_key()
        self.problems = {p.key: p for p in health.problems}
        # Columns too: their widths then fit what is listed now, not the widest
        # text any earlier check showed (a DataTable's auto widths only grow).
        table.clear(columns=True)
        table.add_columns("level", "problem", "since")
        for p in health.problems:
            label, style = LEVEL_STYLE.get(p.level, (p.level, ""))
            table.add_row(Text(label, style=style), plain(p.what, 200, single_line=True),
                          Text(since_text(p, self._now())), key=p.key)
        if keep in self.problems:
            table.move_cursor(row=table.get_row_index(keep), animate=False)
        title = Text()
        if not health.problems:
            title.append("✔ nothing wrong", "bold green")
            title.append("  ·  ingest, rejects, deliveries, compensations and contract files are checked", "dim")
        else:
            counts = health.counts
            title.append(f"{len(health.problems)} problem{'s' if len(health.problems) != 1 else ''}", "bold")
            title.append(f"  ({counts['error']} errors, {counts['warn']} warnings) worst first", "dim")
        self.query_one("#problems-title", Static).update(title)
        self._show_detail(self._now())

    def _now(self) -> float:
        return self.app.now()  # type: ignore[attr-defined]

    def _count_ages(self) -> None:
        """Once a second while shown: each problem's "since … (N ago)" and the detail's, nothing else."""
        if not self.is_current or not self.problems:
            return
        table = self.query_one("#problems-table", DataTable)
        now = self._now()
        since_column = list(table.columns)[2]
        for key, p in self.problems.items():
            try:
                table.update_cell(key, since_column, Text(since_text(p, now)))
            except CellDoesNotExist:  # a row the next show() has not drawn yet
                continue
        self._show_detail(now)

    def _selected_key(self) -> str | None:
        table = self.query_one("#problems-table", DataTable)
        if not table.row_count:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:
            return None

    def _show_detail(self, checked_at: float) -> None:
        key = self._selected_key()
        problem = self.problems.get(key) if key is not None else None
        self.query_one("#problems-detail", Static).update(
            detail_text(problem, checked_at) if problem else Text(""))

    @on(DataTable.RowHighlighted, "#problems-table")
    def _highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_detail(self._now())

    @on(DataTable.RowSelected, "#problems-table")
    def _selected(self, _event: DataTable.RowSelected) -> None:
        self.action_goto()

    def action_goto(self) -> None:
        """Where the problem is fixed: the Escalations queue, or the task on Replay."""
        key = self._selected_key()
        problem = self.problems.get(key) if key is not None else None
        if problem is None or not problem.goto:
            return
        where, _, task = problem.goto.partition(":")
        if where == "replay" and task:
            self.app.open_replay(task)  # type: ignore[attr-defined]
        else:
            # As the screen's key does (SwitchAhead): shown once, with data read after Enter.
            self.app.switching.switch(where)  # type: ignore[attr-defined]

    def action_restart_ingest(self) -> None:
        ingest = getattr(self.app, "ingest", None)
        if ingest is None or getattr(ingest, "supervisor", None) is None:
            self.notify("This console runs no ingest (no traces to follow).", severity="warning")
            return
        ingest.restart()
        self.notify("Restarting ingest…")
