"""The Tasks list: a DataTable over a window of the store's tasks.

The table never holds more than one window of rows (``WINDOW``); moving past
either end asks the screen for the next window (keyset paging in
``store.queries``). Live updates change only the cells that changed, and
append new tasks at the bottom, like ``tail -f``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from console.safe import plain
from console.widgets.chrome import format_clock

# (key, label, width): fixed widths so a hostile 200-character agent name
# cannot push the other columns off screen, and updates never re-measure.
COLUMNS = (
    ("time", "time", 8),
    ("task", "task", 14),
    ("agent", "agent", 14),
    ("version", "ver", 6),
    ("cohort", "cohort", 8),
    ("stage", "stage", 8),
    ("step", "step", 11),
    ("tool", "last tool", 15),
    ("outcome", "outcome", 9),
    ("latency", "latency", 7),
    ("cost", "cost", 6),
    ("violations", "viol", 4),
)
OUTCOME_STYLE = {
    "success": "green",
    "failed": "bold red",
    "denied": "yellow",
    "escalated": "magenta",
    "aborted": "red",
    "timeout": "red",
    None: "cyan",
}


def task_cells(row: sqlite3.Row) -> tuple[Text, ...]:
    """One task as table cells; every trace-supplied value goes through ``plain``."""
    outcome = row["outcome"]
    latency = row["latency_ms"]
    violations = row["violations"]
    return (
        plain(format_clock(row["seen"]), style="" if row["started"] is not None else "dim"),
        plain(row["task_id"], 40, single_line=True),
        plain(row["agent"], 40, single_line=True),
        plain(row["version"], 40, single_line=True),
        plain(row["cohort"], 20, single_line=True, style="bold yellow" if row["cohort"] == "canary" else ""),
        plain(row["stage"], 20, single_line=True),
        plain(row["last_kind"], 20, single_line=True),
        plain(row["last_tool"], 40, single_line=True),
        plain(outcome or "running", 20, single_line=True, style=OUTCOME_STYLE.get(outcome, "")),
        Text(_latency(latency), justify="right"),
        Text(f"${row['cost_usd']:.3f}", justify="right"),
        Text(str(violations) if violations else "", style="bold red", justify="right"),
    )


def _latency(ms: float | None) -> str:
    if ms is None:
        return ""
    return f"{ms:.0f}ms" if ms < 10_000 else f"{ms / 1000:.1f}s"


class VimTable(DataTable):
    """A row-cursor DataTable with less/vim keys."""

    BINDINGS = [
        Binding("j,down", "cursor_down", "Down", show=False),
        Binding("k,up", "cursor_up", "Up", show=False),
        Binding("g,home", "first", "Top", show=False),
        Binding("G,end", "last", "Bottom", show=False),
        Binding("ctrl+d", "half_page(1)", "½ page down", show=False),
        Binding("ctrl+u", "half_page(-1)", "½ page up", show=False),
        Binding("pagedown,ctrl+f", "half_page(2)", "Page down", show=False),
        Binding("pageup,ctrl+b", "half_page(-2)", "Page up", show=False),
    ]

    def _page_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - (1 if self.show_header else 0))

    def go_row(self, row: int) -> None:
        """Move the cursor to ``row`` (clamped)."""
        if self.row_count:
            self.move_cursor(row=max(0, min(row, self.row_count - 1)), animate=False)

    def action_cursor_down(self) -> None:
        self.go_row(self.cursor_row + 1)

    def action_cursor_up(self) -> None:
        self.go_row(self.cursor_row - 1)

    def action_half_page(self, halves: int) -> None:
        self.go_row(self.cursor_row + halves * max(1, self._page_rows() // 2))

    def action_first(self) -> None:
        self.go_row(0)

    def action_last(self) -> None:
        self.go_row(self.row_count - 1)


@dataclass
class Shown:
    """What the table holds: task ids in order and their cells."""

    keys: list[str]
    cells: dict[str, tuple[Text, ...]]


class TaskTable(VimTable):
    """Tasks, oldest at the top; a window the screen moves over the store."""

    BINDINGS = [Binding("enter", "select_cursor", "Open")]

    class Moved(Message):
        """The user moved the cursor (follow mode pauses)."""

    class Edge(Message):
        """The user moved past the window's end; ``overshoot`` rows further."""

        def __init__(self, older: bool, overshoot: int) -> None:
            super().__init__()
            self.older = older
            self.overshoot = overshoot

    class Jump(Message):
        """The user asked for the oldest (g) or newest (G) task of all."""

        def __init__(self, newest: bool) -> None:
            super().__init__()
            self.newest = newest

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        for key, label, width in COLUMNS:
            self.add_column(label, width=width, key=key)
        self.shown = Shown([], {})
        self.more_older = False
        self.more_newer = False

    # -- user navigation: the screen decides about windows and follow ------

    def go_row(self, row: int) -> None:
        self.post_message(self.Moved())
        if row < 0 and self.more_older:
            self.post_message(self.Edge(older=True, overshoot=-row))
            row = 0
        elif row >= self.row_count and self.more_newer:
            self.post_message(self.Edge(older=False, overshoot=row - self.row_count + 1))
        super().go_row(row)

    def action_first(self) -> None:
        self.post_message(self.Jump(newest=False))

    def action_last(self) -> None:
        self.post_message(self.Jump(newest=True))

    def on_click(self) -> None:
        self.post_message(self.Moved())

    def on_mouse_scroll_up(self) -> None:
        self.post_message(self.Moved())

    @property
    def cursor_task(self) -> str | None:
        if not self.row_count:
            return None
        return self.shown.keys[min(self.cursor_row, len(self.shown.keys) - 1)]

    # -- showing a window ----------------------------------------------------

    def show_rows(self, rows: list[sqlite3.Row]) -> None:
        """Make the table hold exactly ``rows``, touching as little as possible.

        Same tasks in the same order: only changed cells are updated. The old
        window's tail followed by new tasks (follow mode): drop from the top,
        append at the bottom. Anything else: rebuild.
        """
        keys = [r["task_id"] for r in rows]
        cells = {r["task_id"]: task_cells(r) for r in rows}
        old = self.shown
        start = _overlap_start(old.keys, keys)
        if start is None:
            self.clear()
            for key in keys:
                self.add_row(*cells[key], key=key)
        else:
            for key in old.keys[:start]:
                self.remove_row(key)
            kept = len(old.keys) - start
            for key in keys[:kept]:
                before, after = old.cells[key], cells[key]
                if before != after:
                    for (column, _, _), a, b in zip(COLUMNS, before, after):
                        if a != b:
                            self.update_cell(key, column, b)
            for key in keys[kept:]:
                self.add_row(*cells[key], key=key)
        self.shown = Shown(keys, cells)


def _overlap_start(old: list[str], new: list[str]) -> int | None:
    """Where in ``old`` the rows that ``new`` begins with start, if old's tail is new's head."""
    if not old or not new:
        return None if old or new else 0
    try:
        start = old.index(new[0])
    except ValueError:
        return None
    tail = old[start:]
    return start if new[: len(tail)] == tail else None
