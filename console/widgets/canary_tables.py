"""The Canary screen's three lists, drawn a line at a time (console/widgets/line_table.py).

They were DataTables: refilled on every new report (a live fleet: every few
seconds), each DataTable measured and rendered every cell of every row again,
which was most of the UI thread's work on opening the screen or pressing
``w`` (bench/canary_screen.py). Here a refill hands over the source rows; a
row's cells are built when it is first drawn, the column widths come from the
values (the metrics and differences: a dozen or two rows) or from plain
strings (the tasks), so the look stays that of a DataTable sized to its
content.

Each keeps the list keys (j/k, g/G, Home/End, page keys), Enter, and ←/→ to
reach the columns past the right edge at 80 columns; the columns that say
which row it is stay put.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding

from agentdeck.console.keymap import COLUMN_BINDINGS
from agentdeck.console.safe import plain
from agentdeck.console.widgets import canary_format as fmt
from agentdeck.console.widgets.chrome import format_clock
from agentdeck.console.widgets.line_table import Column, LineTable

ENTER = Binding("enter", "select_cursor", "Select", show=False)


def fitted(labels: Sequence[str], rows: Sequence[Sequence[Text]]) -> tuple[Column, ...]:
    """Columns as wide as their widest cell or label (as a DataTable sizes them)."""
    widths = [cell_len(label) for label in labels]
    for cells in rows:
        for i, cell in enumerate(cells[: len(widths)]):
            n = cell_len(cell.plain)
            if n > widths[i]:
                widths[i] = n
    return tuple((label, label, w) for label, w in zip(labels, widths))


class FittedTable(LineTable):
    """A short list whose rows are built whole when it is filled, the columns sized to them."""

    HEADERS: tuple[str, ...] = ()
    BINDINGS = [ENTER, *COLUMN_BINDINGS]

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.columns = fitted(self.HEADERS, [])

    def show_built(self, rows: list[tuple[Text, ...]]) -> None:
        self.set_columns(fitted(self.HEADERS, rows))
        self.set_rows(rows)

    def cells_for(self, row: Any) -> tuple[Text, ...]:
        return row  # built whole in show_built


class MetricTable(FittedTable):
    """One row per metric of the report (``fmt.row``): both cohorts, the delta, its interval, the verdict."""

    PINNED = 1  # the metric's name
    HEADERS = fmt.HEADERS

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.metrics: list[Any] = []  # canary.MetricResult, in order

    def show_metrics(self, metrics: Sequence[Any]) -> None:
        """Hold these metrics; the cursor stays on its row (the metrics of a report are always the same)."""
        metrics = list(metrics)
        if metrics != self.metrics:
            self.metrics = metrics
            self.show_built([tuple(fmt.row(m)) for m in metrics])  # a dozen rows: their widths size the columns


class DiffTable(FittedTable):
    """Where the versions differ (store.canary_diff.Difference rows), largest first."""

    PINNED = 2  # what and which feature
    HEADERS = fmt.DIFF_HEADERS

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.differences: list[Any] = []
        self.feature_width = 60

    def show_differences(self, differences: Sequence[Any], feature_width: int) -> None:
        differences = list(differences)
        if differences != self.differences or feature_width != self.feature_width:
            self.differences, self.feature_width = differences, feature_width
            self.show_built([tuple(fmt.diff_row(d, feature_width)) for d in differences])


TASK_COLUMNS = ("ver", "started", "task", "outcome", "latency", "tokens", "tools", "cost", "fail", "comp", "viol",
                "esc")
VERSION_WIDTH, TASK_WIDTH = 8, 28


def task_strings(r: Any, now: float) -> tuple[str, ...]:
    """One task behind a metric as the strings shown (before the untrusted ones are made literal)."""
    return (
        str(r["version"]),
        format_clock(r["started"], now),
        str(r["task_id"]),
        str(r["outcome"] or "running"),
        f"{r['latency_ms']:.0f} ms" if r["latency_ms"] is not None else "",
        f"{r['tokens']:,}",
        str(r["tool_calls"]),
        f"${r['cost_usd']:.4f}",
        str(r["actions_failed"] or ""),
        str(r["compensations"] or ""),
        str(r["violations"] or ""),
        str(r["escalations"] or ""),
    )


class CanaryTaskTable(LineTable):
    """The tasks behind the highlighted metric (canary first); Enter or r opens one's replay."""

    PINNED = 3  # version, start, task id
    BINDINGS = [ENTER, *COLUMN_BINDINGS]

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.columns = tuple((c, c, cell_len(c)) for c in TASK_COLUMNS)
        self.task_ids: list[str] = []
        self._strings: list[tuple[str, ...]] = []
        self._source: list[Any] = []
        self._day: tuple[int, ...] = ()

    @property
    def cursor_task(self) -> str | None:
        return self.task_ids[self.cursor_row] if self.task_ids and 0 <= self.cursor_row < len(self.task_ids) else None

    def show_tasks(self, rows: Sequence[Any], now: float, *, same_list: bool = True) -> None:
        """Hold these tasks. The same list refilled (``same_list``: new data): the cursor stays on the task it
        was on while that is still listed; another list starts at its top."""
        rows = list(rows)
        day = time.gmtime(now)[:3]  # the start times read "14:50:31" on now's day, with a date on another
        if rows == self._source and day == self._day:
            if not same_list:
                self.move_cursor(row=0)
            return
        was = self.cursor_task if same_list else None
        self._source, self._day = rows, day
        self.task_ids = [str(r["task_id"]) for r in rows]
        self._strings = [task_strings(r, now) for r in rows]
        widths = [cell_len(c) for c in TASK_COLUMNS]
        for strings in self._strings:
            for i, s in enumerate(strings):
                if len(s) > widths[i]:  # (len: cheap; cell_len only where it could matter, below)
                    widths[i] = len(s)
        for i in (0, 2, 3):  # from traces: wide characters count double
            widths[i] = max([cell_len(c) for c in (TASK_COLUMNS[i], *(s[i] for s in self._strings))])
        widths[0], widths[2] = min(widths[0], VERSION_WIDTH), min(widths[2], TASK_WIDTH)
        self.set_columns(tuple((c, c, w) for c, w in zip(TASK_COLUMNS, widths)))
        self.set_rows(list(range(len(rows))))
        self.move_cursor(row=self.task_ids.index(was) if was in self.task_ids else 0)

    def cells_for(self, row: Any) -> tuple[Text, ...]:
        s = self._strings[row]
        violations = self._source[row]["violations"]
        return (
            plain(s[0], VERSION_WIDTH, single_line=True),
            Text(s[1]),
            plain(s[2], TASK_WIDTH, single_line=True),
            plain(s[3], single_line=True),
            *(Text(v) for v in s[4:10]),
            Text(s[10], style="bold red" if violations else ""),
            Text(s[11]),
        )
