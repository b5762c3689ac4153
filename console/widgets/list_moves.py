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
