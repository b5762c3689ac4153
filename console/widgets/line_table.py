"""A read-only table drawn a line at a time: a light stand-in for Textual's DataTable.

Textual's DataTable measures and renders every cell of every row it holds,
re-renders whole rows when the cursor moves, and walks its rows again when
cleared and refilled: on a task of a few hundred events, opening it cost more
than the query behind it many times over (issue 9). This table keeps the
rows' source data only; a row's cells are built the first time it is drawn
(``cells_for``), each line is rendered once into a cached strip, and a cursor
move repaints two lines. Columns have fixed widths, so nothing is measured.

Looks like a zebra-striped DataTable with a row cursor (header line that does
not scroll, the same component styles), and moves with the list keys of
``console.keymap`` (j/k, g/G, Home/End, page keys). Wider than the terminal
(80 columns), ←/→ (``COLUMN_BINDINGS``, bound by the tables that want them)
scroll sideways a whole column at a time, the first ``PINNED`` columns (those
that say which row it is) staying put; ← and → in the header say that columns
are out of view on that side, as on the Tasks list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from agentdeck.console.keymap import LIST_BINDINGS
from agentdeck.console.widgets.list_moves import ListMoves

Column = tuple[str, str, int]  # (key, label, width in cells)


class CachedLines:
    """How LineTable and TaskTable draw: rows from their cached strips, styles looked up once.

    A component style is looked up once until the styles change (each lookup walks the widget's
    ancestors); what every line of one frame shares (``_frame_values``: width, base style, columns, scroll,
    cursor, focus) is looked up once a frame in ``render_lines``, not once a line. Profiled, those lookups
    were a quarter of a full-table frame, which every new task in follow mode costs. A plain box is drawn by
    ``render_plain``. The class using it keeps ``self._styles: dict[str, Style]``.
    """

    _styles: dict[str, Style]
    _frame: tuple | None = None

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            widget: Widget = self  # type: ignore[assignment]
            style = self._styles[name] = widget.get_component_rich_style(name) if name else widget.rich_style
        return style

    def _frame_values(self) -> tuple:
        raise NotImplementedError

    def render_lines(self, crop: Region) -> list[Strip]:
        self._frame = self._frame_values()
        try:
            return render_plain(self, crop) if plain_box(self) else super().render_lines(crop)  # type: ignore
        finally:
            self._frame = None


class LineTable(CachedLines, ListMoves, ScrollView, can_focus=True, inherit_bindings=False):
    """Rows over fixed-width columns; subclasses set ``COLUMNS`` (the widths may change: ``set_columns``)
    and build cells in ``cells_for``.

    Its keys are the list keys only: the scroll container's own (ctrl+pageup "Page Left"…) would be listed
    by ``?`` beside them, as a second meaning of the same moves.
    """

    COLUMNS: Sequence[Column] = ()
    PINNED = 0  # leading columns that stay put when scrolled sideways (←/→)
    BINDINGS = LIST_BINDINGS
    COMPONENT_CLASSES = {"line-table--header", "line-table--cursor", "line-table--even"}
    DEFAULT_CSS = """
    LineTable { background: $surface; color: $foreground; overflow-x: hidden; }
    LineTable:focus { background-tint: $foreground 5%; }
    LineTable > .line-table--header { background: $panel; color: $foreground; text-style: bold; }
    LineTable > .line-table--even { background: $surface-lighten-1 50%; }
    LineTable > .line-table--cursor {
        background: $block-cursor-blurred-background; color: $block-cursor-blurred-foreground;
        text-style: $block-cursor-blurred-text-style;
    }
    LineTable:focus > .line-table--cursor {
        background: $block-cursor-background; color: $block-cursor-foreground; text-style: $block-cursor-text-style;
    }
    """

    # repaint=False: a move repaints the two lines it changes (watch_cursor_row), not every line of the table.
    cursor_row: reactive[int] = reactive(0, always_update=True, repaint=False)

    class _RowMessage(Message):
        def __init__(self, table: LineTable, cursor_row: int) -> None:
            super().__init__()
            self.table = table
            self.cursor_row = cursor_row

        @property
        def control(self) -> LineTable:
            return self.table

    class Highlighted(_RowMessage):
        """The cursor is on another row."""

    class Chosen(_RowMessage):
        """Enter (or a click on the cursor row) on a row."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.columns: Sequence[Column] = self.COLUMNS  # as drawn now (set_columns)
        self.rows: list[Any] = []  # the source of each row, in order
        self._cells: dict[int, tuple[Text, ...]] = {}  # row -> cells, built when first drawn
        self._strips: dict[int, tuple[tuple, Strip]] = {}  # row -> ((variant, width, focus), strip)
        self._header: tuple[tuple, Strip] | None = None
        self._styles: dict[str, Style] = {}
        self.column_offset = 0  # unpinned columns scrolled out on the left (→/←)
        self._view: tuple[tuple, tuple[int, ...], bool] | None = None  # ((room, offset, columns), shown, more right)

    # -- what subclasses provide ------------------------------------------------

    def cells_for(self, row: Any) -> tuple[Text, ...]:
        """One source row as cells (one per column); called once per row, when it is first drawn."""
        raise NotImplementedError

    def set_columns(self, columns: Sequence[Column], *, refresh: bool = True) -> None:
        """Draw with these columns from now on (e.g. a column widened to the room there is).

        ``refresh`` False: asked while drawing (the lines about to be drawn use them; no second frame)."""
        columns = tuple(columns)
        if columns != tuple(self.columns):
            self.columns = columns
            self._strips.clear()
            self._header = None
            self._set_virtual_size()
            if refresh:
                self.refresh()

    def _set_virtual_size(self) -> None:
        # No horizontal scrollbar: sideways is by whole columns (shown_columns).
        self.virtual_size = Size(0, len(self.rows) + 1)

    # -- sideways -------------------------------------------------------------------

    def shown_columns(self) -> tuple[tuple[int, ...], bool]:
        """The indexes of the columns drawn now (the pinned ones, then from ``column_offset`` on), and whether
        more lie beyond the right edge."""
        room = self.scrollable_content_region.width
        key = (room, self.column_offset, tuple(self.columns))
        if self._view is not None and self._view[0] == key:
            return self._view[1], self._view[2]
        widths = [w + 2 for _, _, w in self.columns]
        pinned = min(self.PINNED, len(widths))
        # Never scrolled further than needed to show the last column (a wider terminal needs less).
        offset = max(0, min(self.column_offset, len(widths) - pinned - 1))
        while offset and sum(widths[:pinned]) + sum(widths[pinned + offset - 1:]) <= room:
            offset -= 1
        self.column_offset = offset
        shown = tuple(range(pinned)) + tuple(range(pinned + offset, len(widths)))
        more_right = sum(widths[i] for i in shown) > room
        self._view = (key, shown, more_right)
        return shown, more_right

    def column_labels(self) -> list[str]:
        """The headers of the columns in full view now, left to right (one cut at the right edge is not)."""
        room, edge, labels = self.scrollable_content_region.width, 0, []
        for i in self.shown_columns()[0]:
            edge += self.columns[i][2] + 2
            if edge > room:
                break
            labels.append(self.columns[i][1])
        return labels

    def action_columns(self, delta: int) -> None:
        """→/←: scroll the unpinned columns one column right or left."""
        shown, more_right = self.shown_columns()
        if (delta > 0 and not more_right) or (delta < 0 and not self.column_offset):
            return
        self.column_offset += delta
        self._strips.clear()
        self._header = None
        self.refresh()

    # -- rows ---------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def get_row_at(self, index: int) -> tuple[Text, ...]:
        """The cells of row ``index`` (built if they were not yet)."""
        cells = self._cells.get(index)
        if cells is None:
            cells = self._cells[index] = self.cells_for(self.rows[index])
        return cells

    def set_rows(self, rows: Sequence[Any], *, keep: int = 0) -> None:
        """Hold exactly ``rows``; the first ``keep`` of them are the rows held now (their cells stay)."""
        keep = max(0, min(keep, len(self.rows), len(rows)))
        self.rows = list(rows)
        self._cells = {i: c for i, c in self._cells.items() if i < keep}
        self._strips = {i: s for i, s in self._strips.items() if i < keep}
        self._set_virtual_size()
        if self.cursor_row >= len(self.rows):
            self.cursor_row = max(0, len(self.rows) - 1)
        self.refresh()

    # -- the cursor ---------------------------------------------------------------

    def _page_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)  # less the header

    def validate_cursor_row(self, row: int) -> int:
        return max(0, min(row, len(self.rows) - 1)) if self.rows else 0

    def move_cursor(self, *, row: int, animate: bool = False) -> None:
        self.cursor_row = row
        self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        page, top = self._page_rows(), round(self.scroll_y)
        if self.cursor_row < top:
            top = self.cursor_row
        elif self.cursor_row >= top + page:
            top = self.cursor_row - page + 1
        if top != round(self.scroll_y):
            self.scroll_to(y=top, animate=False, force=True)

    def watch_cursor_row(self, old: int, new: int) -> None:
        self.refresh_line(old + 1)
        self.refresh_line(new + 1)
        if self.rows:
            self.post_message(self.Highlighted(self, new))

    def go_row(self, row: int) -> None:
        self.move_cursor(row=row)

    def _cursor_at(self) -> int:
        return self.cursor_row

    def _row_total(self) -> int:
        return len(self.rows)

    def action_select_cursor(self) -> None:
        if self.rows:
            self.post_message(self.Chosen(self, self.cursor_row))

    def on_click(self, event: events.Click) -> None:
        row = round(self.scroll_y) + event.y - 1
        if event.y < 1 or not 0 <= row < len(self.rows):
            return
        if row == self.cursor_row:
            self.action_select_cursor()
        else:
            self.move_cursor(row=row)

    # -- drawing ------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._forget_styles()

    def _forget_styles(self) -> None:
        self._styles.clear()
        self._strips.clear()
        self._header = None

    def on_focus(self) -> None:
        self._forget_styles()
        self.refresh()

    def on_blur(self) -> None:
        self._forget_styles()
        self.refresh()

    def _frame_values(self) -> tuple:
        return (self.size.width, self._style(""), self.shown_columns(), round(self.scroll_y), self.cursor_row,
                self.has_focus)

    def render_line(self, y: int) -> Strip:
        width, base, (shown, more_right), top, cursor_row, focus = self._frame or self._frame_values()
        if y == 0:
            room = self.scrollable_content_region.width  # (→ goes left of the vertical scrollbar)
            if self._header is None or self._header[0] != (width, room, shown):
                header = base + self._style("line-table--header")
                strip = header_strip(self.columns, shown, self.column_offset > 0, more_right, self.PINNED, header,
                                     room)
                self._header = ((width, room, shown), strip.adjust_cell_length(width, header))
            return self._header[1]
        index = top + y - 1
        if not 0 <= index < len(self.rows):
            return Strip.blank(width, base)
        variant = "line-table--cursor" if index == cursor_row else "" if index % 2 else "line-table--even"
        state = (variant, width, focus, shown)
        cached = self._strips.get(index)
        if cached is not None and cached[0] == state:
            return cached[1]
        strip = row_strip(self.columns, self.get_row_at(index), base + self._style(variant) if variant else base,
                          width, shown)
        self._strips[index] = (state, strip)
        return strip


def plain_box(widget: Widget) -> bool:
    """Nothing in ``widget``'s CSS for Textual's line styling to add to the lines it draws (a table's own CSS)."""
    styles = widget.styles
    return (not any(styles.gutter) and not any(edge for edge, _ in styles.outline) and not styles.tint.a
            and styles.text_opacity == 1.0 and widget.opacity == 1.0 and not styles.has_rule("hatch")
            and widget._border_title is None and widget._border_subtitle is None
            and not widget.hover_style._link_id)


def render_plain(widget: Widget, crop: Region) -> list[Strip]:
    """What Textual's styles cache makes of a plain box's lines (``plain_box``), without remaking every line.

    Its cache keeps lines by position: a table whose rows move (a new task in follow mode, a task's detail
    re-pointed) rebuilt every line on every such frame (a new Strip per line, then one per filter). Here a
    row's strip is the one the widget drew it as last time (its ``render_line`` cache), so the filters'
    results, which Textual keeps on that strip, are reused too. tests/test_task_table_render.py checks the two
    give the same lines.
    """
    filters = widget.app.get_line_filters()
    background = widget.background_colors[1]
    strips = []
    for y in crop.line_range:
        strip = widget.render_line(y)
        for line_filter in filters:
            strip = strip.apply_filter(line_filter, background)
        strips.append(strip)
    x1, x2 = crop.column_span
    if (x1, x2) != (0, widget.region.width):
        strips = [strip.crop(x1, x2) for strip in strips]
    return strips


_STYLE_CACHE: dict[str, Style] = {}


def cell_style(text: Text) -> Style:
    style = text.style
    if isinstance(style, Style):
        return style
    cached = _STYLE_CACHE.get(style)
    if cached is None:
        cached = _STYLE_CACHE[style] = Style.parse(style) if style else Style()
    return cached


def header_strip(columns: Sequence[Column], shown: Sequence[int], more_left: bool, more_right: bool, pinned: int,
                 base: Style, width: int) -> Strip:
    """The header line; ← after the pinned columns and → at the right edge say columns are out of view there."""
    line = "".join(f" {set_cell_size(columns[i][1], columns[i][2])} " for i in shown)
    line = set_cell_size(line, width)
    if more_left and width > 0:
        at = sum(columns[i][2] + 2 for i in range(min(pinned, len(columns))))
        if at < width:
            line = line[:at] + "←" + line[at + 1:]
    if more_right and width > 0:
        line = line[:-1] + "→"
    return Strip([Segment(line, base)], width)


def same_cells(a: tuple[Text, ...], b: tuple[Text, ...]) -> bool:
    """The cells would draw the same (text and style; spans inside a cell are not compared)."""
    return all(x.plain == y.plain and x.style == y.style for x, y in zip(a, b))


def row_strip(columns: Sequence[Column], cells: Sequence[Text], base: Style, width: int,
              shown: Sequence[int] | None = None) -> Strip:
    """One row: each cell cropped (with an ellipsis) or padded to its column, one space either side.

    Drawn for every new or changed row on screen (about ten a frame while the Tasks list follows a busy
    fleet): a cell that fits is padded by hand (no ``set_cell_size``), an unstyled cell takes the row's
    style as it is, and the cells of one style are joined once.
    """
    segments: list[Segment] = []
    run: list[str] = []  # the cells of the current style, not yet a segment
    run_style: Style | None = None
    for index in range(min(len(columns), len(cells))) if shown is None else shown:
        w, cell = columns[index][2], cells[index]
        text = cell.plain
        if "\n" in text:  # one line a row, whatever the cell holds
            text = text.replace("\n", "⏎")
        length = cell_len(text)
        if length > w:
            text = set_cell_size(text, w - 1) + "…"
        elif length < w:
            text = " " * (w - length) + text if cell.justify == "right" else text + " " * (w - length)
        style = base + cell_style(cell) if cell.style else base
        if style != run_style:
            if run:
                segments.append(Segment("".join(run), run_style))
                run = []
            run_style = style
        run.append(f" {text} ")
    if run:
        segments.append(Segment("".join(run), run_style))
    return Strip(segments).adjust_cell_length(width, base)
