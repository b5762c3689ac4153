"""Tasks: every task of every agent, live."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.widgets import DataTable

from console.safe import plain
from console.screens.base import DeckScreen
from console.widgets.chrome import format_clock

COLUMNS = ("time", "task", "agent", "ver", "cohort", "stage", "step", "tool", "outcome", "latency", "cost")
PAGE = 200


class TasksScreen(DeckScreen):
    MODE = "tasks"
    CSS_PATH = "tasks.tcss"

    def compose_body(self) -> ComposeResult:
        table = DataTable(id="tasks", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table

    @work(thread=True, exclusive=True, group="tasks-reload")
    def reload(self) -> None:
        rows = self.app.store.reader().execute(
            "SELECT * FROM tasks ORDER BY updated_at DESC, task_id LIMIT ?", (PAGE,)
        ).fetchall()
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows) -> None:
        table = self.query_one("#tasks", DataTable)
        table.clear()
        for r in rows:
            table.add_row(
                plain(format_clock(r["started"])),
                plain(r["task_id"], 24, single_line=True),
                plain(r["agent"], 20, single_line=True),
                plain(r["version"], 10, single_line=True),
                plain(r["cohort"]),
                plain(r["stage"]),
                plain(r["last_kind"]),
                plain(r["last_tool"], 24, single_line=True),
                plain(r["outcome"] or "running"),
                plain(f"{r['latency_ms']:.0f} ms" if r["latency_ms"] is not None else ""),
                plain(f"${r['cost_usd']:.4f}"),
                key=r["task_id"],
            )
