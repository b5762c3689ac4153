"""A row-cursor DataTable with less/vim keys: the Problems list (and the reference the Escalations list is
tested against: tests/test_escalation_table_render.py).

Not in task_table.py: the Tasks screen (the first one shown) draws its list
with the line API, and importing Textual's DataTable is left until a screen
that uses it is composed (after the first paint, or when first shown).
"""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import DataTable

from agentdeck.console.keymap import COLUMN_BINDINGS, LIST_BINDINGS
from agentdeck.console.widgets.list_moves import ColumnMoves, ListMoves


class VimTable(ListMoves, ColumnMoves, DataTable, inherit_bindings=False):
    """A row-cursor DataTable with less/vim keys.

    Its keys are its own: DataTable's and its scroll container's ("Page Left",
    ctrl+home "Top" beside g "Top"…) would be listed by ``?`` beside these, as
    a second and meaningless meaning of the same moves.
    """

    BINDINGS = [Binding("enter", "select_cursor", "Select", show=False), *LIST_BINDINGS, *COLUMN_BINDINGS]

    def _column_edges(self) -> list[int]:
        """Where each column starts, and where the last one ends."""
        edges, x = [], 0
        for column in self.ordered_columns:
            edges.append(x)
            x += column.get_render_width(self)
        return edges + [x]


    def _page_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - (1 if self.show_header else 0))

    def go_row(self, row: int) -> None:
        """Move the cursor to ``row`` (clamped)."""
        if self.row_count:
            self.move_cursor(row=max(0, min(row, self.row_count - 1)), animate=False)

    def _cursor_at(self) -> int:
        return self.cursor_row

    def _row_total(self) -> int:
        return self.row_count
