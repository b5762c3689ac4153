"""The moves behind the key map's list keys (console/keymap.py LIST_BINDINGS), once for every list.

j/k, g/G (Home/End), ctrl+d/u and the page keys mean the same on each list;
a list says only where its cursor is, how many rows it holds, how many fit on
a page and how to go to a row (``go_row``, which clamps).
"""

from __future__ import annotations


class ListMoves:
    """Mixed in before the widget class (``class X(ListMoves, DataTable)``) so these actions win."""

    def go_row(self, row: int) -> None:
        raise NotImplementedError

    def _cursor_at(self) -> int:
        raise NotImplementedError

    def _row_total(self) -> int:
        raise NotImplementedError

    def _page_rows(self) -> int:
        raise NotImplementedError

    def action_cursor_down(self) -> None:
        self.go_row(self._cursor_at() + 1)

    def action_cursor_up(self) -> None:
        self.go_row(self._cursor_at() - 1)

    def action_half_page(self, halves: int) -> None:
        self.go_row(self._cursor_at() + halves * max(1, self._page_rows() // 2))

    def action_first(self) -> None:
        self.go_row(0)

    def action_last(self) -> None:
        self.go_row(self._row_total() - 1)


class ColumnMoves:
    """→/← (keymap COLUMN_BINDINGS) a whole column at a time, for a list wider than the screen.

    Mixed in before the widget class, as ``ListMoves``; the list says where its columns start
    (``_column_edges``: each column's left edge, then where the last one ends).
    """

    def _column_edges(self) -> list[int]:
        raise NotImplementedError

    @property
    def max_scroll_x(self) -> int:
        """As far right as the first column edge that shows the last column whole.

        The plain limit (content width less the view) usually falls inside a column, so the
        last → would leave that column cut at the left edge; past the content is blank.
        """
        furthest = super().max_scroll_x  # type: ignore[misc]
        if furthest <= 0:
            return 0
        return next((e for e in self._column_edges() if e >= furthest), furthest)

    def action_columns(self, delta: int) -> None:
        """→/←: scroll sideways one whole column, so the view always starts at a column's left edge."""
        edges = self._column_edges()[:-1]
        now, furthest = round(self.scroll_x), self.max_scroll_x  # type: ignore[attr-defined]
        if delta > 0:
            target = next((e for e in edges if e > now), furthest)
        else:
            target = next((e for e in reversed(edges) if e < now), 0)
        self.scroll_to(x=min(target, furthest), animate=False)  # type: ignore[attr-defined]
