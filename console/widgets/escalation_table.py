"""The escalation queue (pending) or history (decided), as a table of rows."""

from __future__ import annotations

from agentdeck.console.service.views import Row

from rich.text import Text
from textual.widgets.data_table import RowDoesNotExist


from agentdeck.console.safe import plain
from agentdeck.console.widgets.line_table import same_cells
from agentdeck.console.widgets.vim_table import VimTable
from agentdeck.console.widgets.escalation_format import (
    DELIVERY_STYLE, RISK_STYLE, STATUS_STYLE, action_label, amount_label, clock, duration, proposed,
)

PENDING_COLUMNS = ("time left", "risk", "escalation", "proposed action", "amount", "age")
# Most telling first: at 80 columns what was decided, how and whether it reached the agent fit;
# who and the id (also in the detail pane) are a → away.
DECIDED_COLUMNS = ("decided", "status", "delivery", "risk", "proposed action", "by", "escalation")


class EscalationTable(VimTable):
    """Rows keyed by escalation id; the cursor stays on the same escalation across refreshes.

    A VimTable: j/k, g/G, Home/End and the page keys move as on every list.
    """

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.history = False
        self._cells: dict[str, tuple] = {}  # escalation id -> the cells shown, in row order

    def on_mount(self) -> None:
        self.add_columns(*PENDING_COLUMNS)

    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None

    def show(self, rows: list[Row], now: float, *, history: bool, orphaned: frozenset[str] = frozenset()) -> None:
        """Show ``rows``; when they are the rows already shown, in the same order, only changed cells are redrawn.

        A clock tick or a store change reads the queue back whole, usually unchanged, and
        clear() + add_row would drop the column widths' settled state, the sideways scroll
        and the cursor for a frame (a flicker, and a snapshot that depended on the frame).
        """
        keep, position = self.selected_id(), self.cursor_row
        fresh = history != self.history or not self.columns
        if fresh:
            self.clear(columns=True)
            self.add_columns(*(DECIDED_COLUMNS if history else PENDING_COLUMNS))
            self.history = history
            self._cells = {}
            keep = None
        cells = {r["escalation_id"]: self._decided_cells(r, now) if history
                 else self._pending_cells(r, now, r["escalation_id"] in orphaned) for r in rows}
        if not fresh and list(cells) == list(self._cells):
            self._update_in_place(cells)
            return
        if not fresh:
            self.clear()
        for key, row_cells in cells.items():
            self.add_row(*row_cells, key=key)
        self._cells = cells
        if keep is not None:
            try:
                self.move_cursor(row=self.get_row_index(keep))
            except RowDoesNotExist:
                # It left this list (just decided): stay at the same position, so the
                # next escalation moves under the cursor instead of jumping to the top.
                self.go_row(position)

    def _update_in_place(self, cells: dict[str, tuple]) -> None:
        columns = list(self.columns)
        for key, row_cells in cells.items():
            for column, old, new in zip(columns, self._cells[key], row_cells):
                if not same_cells((old,), (new,)):
                    self.update_cell(key, column, new, update_width=True)
        self._cells = cells

    @staticmethod
    def _risk(risk: str) -> Text:
        return plain(risk, 10, style=RISK_STYLE.get(risk, ""), single_line=True)

    def _pending_cells(self, r: Row, now: float, orphaned: bool = False) -> tuple:
        remaining = r["deadline"] - now
        expired = remaining < 0
        left = f"EXPIRED -{duration(remaining)}" if expired else duration(remaining)
        action = proposed(r["proposed_action"])
        # Orphaned: no agent will get the decision (console.service.reach); the detail pane says why.
        when = Text("orphaned", style="dim italic") if orphaned else Text(
            left, style="bold magenta" if expired else ("yellow" if remaining < 300 else ""))
        return (
            when,
            self._risk(r["risk"]),
            plain(r["escalation_id"], 24, single_line=True),
            plain(action_label(action), 28, single_line=True),
            Text(amount_label(action), justify="right"),
            Text(duration(now - r["ts"])),
        )

    def _decided_cells(self, r: Row, now: float) -> tuple:
        action = proposed(r["proposed_action"])
        delivery = r["delivery"]
        return (
            Text(clock(r["decided_at"], now)),
            plain(r["status"], 10, style=STATUS_STYLE.get(r["status"], ""), single_line=True),
            Text(delivery or "by agent", style=DELIVERY_STYLE.get(delivery or "", "dim")),
            self._risk(r["risk"]),
            plain(action_label(action), 28, single_line=True),
            plain(r["decided_by"] or "", 16, single_line=True),
            plain(r["escalation_id"], 24, single_line=True),
        )
