"""The escalation queue (pending) or history (decided), as a table of rows."""

from __future__ import annotations

from agentdeck.console.service.views import Row

from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
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
        self._drawn: dict[tuple, tuple[object, list]] = {}  # where a cell is drawn -> (its value, its lines): _render_cell
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

    DRAWN_KEPT = 4000  # rendered cells kept (a screenful is ~200: every state of the rows in view, many times)

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> list:
        """DataTable's cell rendering, kept for as long as the cell holds the same value.

        DataTable keys its rendered cells on a counter that every ``update_cell`` bumps, so one cell of
        one row changed (a clock tick moves an age; a store change, a status) rendered every cell in
        view again through Rich, on the next frame: that was most of the first frame of a switch to
        Escalations (issue 9). Here a cell's lines are reused while its value is the same object (an
        unchanged cell keeps its Text: ``show`` replaces only the cells that changed) and everything
        else that reaches the lines (row and column, styles, width, cursor, hover, focus) is the same.
        """
        if row_index == -1:
            row_key = self._header_row_key
        else:
            row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        if row_key is None or column_key is None or column_index == -1:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        value = self.columns[column_key].label if row_index == -1 else self._data[row_key].get(column_key)
        where = (row_index, row_key, column_key, base_style, width, cursor, hover, self._show_hover_cursor,
                 self._pseudo_class_state, self.show_cursor, self.cursor_type, self.header_height)
        drawn = self._drawn.get(where)
        if drawn is not None and drawn[0] is value:
            return drawn[1]
        lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        if len(self._drawn) >= self.DRAWN_KEPT:
            self._drawn.clear()
        self._drawn[where] = (value, lines)
        return lines

    # The table's own style, looked up once a frame (render_lines) rather than by DataTable.render_line for
    # every line: each lookup walks the widget's ancestors and was four tenths of drawing the list whole.
    _frame_style: Style | None = None

    @property
    def rich_style(self) -> Style:
        style = self._frame_style
        return style if style is not None else super().rich_style

    def render_lines(self, crop: Region) -> list[Strip]:
        self._frame_style = super().rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._frame_style = None

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._drawn.clear()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._drawn.clear()

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
