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
from agentdeck.console.widgets.list_moves import ListMoves


class VimTable(ListMoves, DataTable, inherit_bindings=False):
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

    @property
    def max_scroll_x(self) -> int:
        """As far right as the first column edge that shows the last column whole.

        The plain limit (content width less the view) usually falls inside a column, so the
        last → would leave that column cut at the left edge; past the content is blank.
        """
        furthest = super().max_scroll_x
        if furthest <= 0:
            return 0
        return next((e for e in self._column_edges() if e >= furthest), furthest)

    def action_columns(self, delta: int) -> None:
        """→/←: scroll sideways one whole column, so the view always starts at a column's left edge."""
        edges = self._column_edges()[:-1]
        now, furthest = round(self.scroll_x), self.max_scroll_x
        if delta > 0:
            target = next((e for e in edges if e > now), furthest)
        else:
            target = next((e for e in reversed(edges) if e < now), 0)
        self.scroll_to(x=min(target, furthest), animate=False)

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
