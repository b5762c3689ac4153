"""The escalation queue (pending) or history (decided), as a table of rows.

Drawn a line at a time from cached row strips (``CachedLines``, as the Tasks list) rather than through
Textual's DataTable, while looking exactly like the DataTable it was (tests/test_escalation_table_render.py
draws both and compares them): columns as wide as their widest cell, a header, zebra rows, the row cursor,
the mouse's hover row, sideways scrolling with a scrollbar when the columns are wider than the terminal.
DataTable rendered each cell through Rich and dropped every rendered cell whenever any cell changed (a clock
tick moves every age): that was most of the first frame of a switch to Escalations (issue 9). Here a row's
strip is kept while its cells, its place and its state are the same, and a plain cell is drawn without Rich.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from agentdeck.console.service.views import Row

from rich.cells import cell_len
from rich.measure import Measurement
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual._segment_tools import line_crop
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.renderables.styled import Styled
from textual.scroll_view import ScrollView
from textual.strip import Strip

from agentdeck.console.keymap import COLUMN_BINDINGS, LIST_BINDINGS
from agentdeck.console.safe import plain
from agentdeck.console.widgets.line_table import CachedLines, cell_style, same_cells
from agentdeck.console.widgets.list_moves import ColumnMoves, ListMoves
from agentdeck.console.widgets.escalation_format import (
    DELIVERY_STYLE, RISK_STYLE, STATUS_STYLE, action_label, amount_label, clock, duration, proposed,
)

PENDING_COLUMNS = ("time left", "risk", "escalation", "proposed action", "amount", "age")
# Most telling first: at 80 columns what was decided, how and whether it reached the agent fit;
# who and the id (also in the detail pane) are a → away.
DECIDED_COLUMNS = ("decided", "status", "delivery", "risk", "proposed action", "by", "escalation")

PADDING = 1  # cells either side of a cell's content, as DataTable's cell_padding


class Key(NamedTuple):
    """A row's (or column's) key, as DataTable's: ``.value`` is the escalation id."""

    value: str


class CellKey(NamedTuple):
    row_key: Key
    column_key: Key


class RowDoesNotExist(KeyError):
    """No row has this escalation id."""


def _width(cell: Text) -> int:
    """The cells ``cell`` takes on one line (DataTable's measure of a cell: its widest line)."""
    text = cell.plain
    if "\n" in text or "\t" in text or not text.isprintable():
        from textual.app import active_app

        console = active_app.get().console
        return Measurement.get(console, console.options, cell).maximum
    return cell_len(text)




_META: dict[tuple[int, int], Style] = {}


def _meta(row: int, column: int) -> Style:
    """DataTable's mouse meta on a cell (the same segments, so the same screen, down to where runs split)."""
    style = _META.get((row, column))
    if style is None:
        if len(_META) > 20_000:
            _META.clear()
        style = _META[(row, column)] = Style.from_meta({"row": row, "column": column})
    return style


def plain_cell(cell: Text, content: int, pre: Style, post: Style) -> list[Segment] | None:
    """A cell of one style, printable ASCII, that fits: the segments Rich makes of it in DataTable, without Rich.

    None for any other cell (the caller asks Rich). tests/test_escalation_table_render.py checks both agree.
    """
    text = cell.plain
    # ASCII only: wide, zero-width and combining characters (a skin-tone modifier alone is drawn as nothing) are
    # measured and drawn Rich's way by Rich itself.
    if cell.spans or cell.justify not in (None, "default", "right") or not (text.isascii() and text.isprintable()):
        return None
    if cell.justify == "right":
        text = text.rstrip()  # (as Rich's Text.justify does for "right": "0 " is drawn "  0", not " 0 ")
    gap = content - cell_len(text)
    if gap < 0:
        return None
    edge = pre + post
    style = pre + cell_style(cell) + post
    if style == edge:  # one run, as Strip.simplify would make of it (fewer segments to crop and filter)
        filled = " " * gap + text if cell.justify == "right" else text + " " * gap
        return [Segment(f"{' ' * PADDING}{filled}{' ' * PADDING}", edge)]
    pad = Segment(" " * PADDING, edge)
    if cell.justify == "right":  # (the room is part of the text: its style)
        middle = [Segment(" " * gap + text, style)] if gap or text else []
    elif text:
        middle = [Segment(text, style), Segment(" " * gap, edge)] if gap else [Segment(text, style)]
    else:  # (no text: the room in the cell's padding style)
        middle = [Segment(" " * gap, edge)] if gap else []
    return [pad, *middle, pad]


class EscalationTable(CachedLines, ListMoves, ColumnMoves, ScrollView, can_focus=True, inherit_bindings=False):
    """Rows keyed by escalation id; the cursor stays on the same escalation across refreshes.

    j/k, g/G, Home/End and the page keys move as on every list; ←/→ scroll sideways a whole column.
    Its keys are its own: a scroll container's ("Page Left"…) would be listed by ``?`` beside these.
    """

    BINDINGS = [Binding("enter", "select_cursor", "Select", show=False), *LIST_BINDINGS, *COLUMN_BINDINGS]
    COMPONENT_CLASSES = {
        "datatable--header", "datatable--cursor", "datatable--hover", "datatable--header-hover",
        "datatable--header-cursor", "datatable--even-row", "datatable--odd-row",
    }
    # DataTable's own CSS (Textual 8.2) for what this table draws, so it looks the same.
    DEFAULT_CSS = """
    EscalationTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        &:focus {
            background-tint: $foreground 5%;
            & > .datatable--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .datatable--header {
                background-tint: $foreground 5%;
            }
        }
        &:dark {
            & > .datatable--even-row {
                background: $surface-darken-1 40%;
            }
        }
        & > .datatable--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .datatable--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .datatable--odd-row {
        }
        & > .datatable--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .datatable--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .datatable--header-cursor {
            background: $accent-darken-1;
            color: $foreground;
        }
        & > .datatable--header-hover {
            background: $accent 30%;
        }
        & > .datatable--hover {
            background: $block-hover-background;
        }
    }
    """

    cursor_row: reactive[int] = reactive(0)

    class Highlighted(Message):
        """The cursor is on another escalation (``escalation_id``; None: the list is empty)."""

        def __init__(self, table: EscalationTable, escalation_id: str | None) -> None:
            super().__init__()
            self.table = table
            self.escalation_id = escalation_id

        @property
        def control(self) -> EscalationTable:
            return self.table

    class Selected(Highlighted):
        """Enter, or a click on the cursor row."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.history = False
        self.labels: tuple[str, ...] = ()  # the column headers, left to right
        self.widths: tuple[int, ...] = ()  # each column's content width (without its padding)
        self.keys: list[str] = []  # escalation ids, in row order
        self._cells: dict[str, tuple[Text, ...]] = {}  # escalation id -> the cells shown, in column order
        self._index: dict[str, int] = {}
        self._styles: dict[str, Style] = {}
        # escalation id -> (its cells, {(row, state…): strip}): kept while the cells are the same objects
        self._strips: dict[str, tuple[tuple[Text, ...], dict[tuple, Strip]]] = {}
        self._header: tuple[tuple, Strip] | None = None
        self.hover_row = -1  # the row under the mouse (-1: the header)
        self._show_hover = False  # shown while the mouse moves over the table, not after a key moves the cursor

    def on_mount(self) -> None:
        self._set_columns(PENDING_COLUMNS)

    # -- what the screen and tests ask ------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self.keys)

    @property
    def rows(self) -> tuple[Key, ...]:
        return tuple(Key(k) for k in self.keys)

    def selected_id(self) -> str | None:
        if not self.keys:
            return None
        return self.keys[min(self.cursor_row, len(self.keys) - 1)]

    def get_row_index(self, escalation_id: str) -> int:
        try:
            return self._index[escalation_id]
        except KeyError:
            raise RowDoesNotExist(escalation_id) from None

    def get_row_at(self, index: int) -> list[Text]:
        return list(self._cells[self.keys[index]])

    def coordinate_to_cell_key(self, coordinate: tuple[int, int]) -> CellKey:
        row, column = coordinate
        return CellKey(Key(self.keys[row]), Key(self.labels[column]))

    # -- rows ----------------------------------------------------------------------------

    def _set_columns(self, labels: tuple[str, ...]) -> None:
        self.labels = labels
        self.widths = tuple(cell_len(label) for label in labels)
        self._header = None

    def show(self, rows: list[Row], now: float, *, history: bool, orphaned: frozenset[str] = frozenset()) -> None:
        """Show ``rows``; when they are the rows already shown, in the same order, only changed cells are redrawn.

        A clock tick or a store change reads the queue back whole, usually unchanged: the column widths, the
        sideways scroll and the cursor stay, and a row's strip is drawn again only if one of its cells changed.
        """
        keep, position = self.selected_id(), self.cursor_row
        fresh = history != self.history or not self.labels
        if fresh:
            self._set_columns(DECIDED_COLUMNS if history else PENDING_COLUMNS)
            self.history = history
            self._cells, self.keys, self._index, self._strips = {}, [], {}, {}
            self.scroll_to(0, 0, animate=False, force=True)
            keep = None
        cells = {r["escalation_id"]: self._decided_cells(r, now) if history
                 else self._pending_cells(r, now, r["escalation_id"] in orphaned) for r in rows}
        if not fresh and list(cells) == self.keys:
            self._update_in_place(cells)
            return
        # As DataTable's add_row: the columns widen to the new cells and never narrow for rows that left.
        widths = list(self.widths)
        for row_cells in cells.values():
            for i, cell in enumerate(row_cells):
                n = _width(cell)
                if n > widths[i]:
                    widths[i] = n
        self._cells = cells
        self.keys = list(cells)
        self._index = {k: i for i, k in enumerate(self.keys)}
        for key in [k for k in self._strips if k not in cells]:
            del self._strips[key]
        self._resize(tuple(widths))
        self.refresh()
        if keep is not None and keep in self._index:
            self.move_cursor(row=self._index[keep])
        else:
            # It left this list (just decided): stay at the same position, so the
            # next escalation moves under the cursor instead of jumping to the top.
            self.move_cursor(row=position if keep is not None else 0)

    def _update_in_place(self, cells: dict[str, tuple[Text, ...]]) -> None:
        """The same rows: keep each unchanged cell's Text (and so the row's strip); repaint the rows that changed."""
        changed_columns: set[int] = set()
        for index, (key, row_cells) in enumerate(cells.items()):
            old = self._cells[key]
            merged = tuple(o if same_cells((o,), (n,)) else n for o, n in zip(old, row_cells))
            if any(m is not o for m, o in zip(merged, old)):
                changed_columns.update(i for i, (m, o) in enumerate(zip(merged, old)) if m is not o)
                self._cells[key] = merged
                self.refresh_line(index + 1)
        if changed_columns:
            # As DataTable's update_cell(update_width=True): a changed column is as wide as its widest cell now.
            widths = list(self.widths)
            for i in changed_columns:
                widths[i] = max([cell_len(self.labels[i]), *(_width(c[i]) for c in self._cells.values())])
            if tuple(widths) != self.widths:
                self._resize(tuple(widths))
                self.refresh()

    def _resize(self, widths: tuple[int, ...]) -> None:
        if widths != self.widths:
            self.widths = widths
            self._header = None
        self.virtual_size = Size(self._table_width(), len(self.keys) + 1)
        if self.scroll_x > self.max_scroll_x:
            self.scroll_to(x=self.max_scroll_x, animate=False, force=True)

    def _table_width(self) -> int:
        return sum(self.widths) + 2 * PADDING * len(self.widths)

    # -- the cursor ------------------------------------------------------------------------

    def validate_cursor_row(self, row: int) -> int:
        return max(0, min(row, len(self.keys) - 1)) if self.keys else 0

    def watch_cursor_row(self, old: int, new: int) -> None:
        self.refresh_line(old + 1)
        self.refresh_line(new + 1)
        if self.keys:
            self.post_message(self.Highlighted(self, self.selected_id()))

    def move_cursor(self, *, row: int, animate: bool = False) -> None:
        """Put the cursor on ``row`` (clamped) and scroll it into view, under the header."""
        self.cursor_row = row
        page, top = self._page_rows(), round(self.scroll_y)
        if self.cursor_row < top:
            top = self.cursor_row
        elif self.cursor_row >= top + page:
            top = self.cursor_row - page + 1
        if top != round(self.scroll_y):
            self.scroll_to(y=top, animate=False, force=True)

    def go_row(self, row: int) -> None:
        """Move the cursor to ``row`` (clamped): a key, so the mouse's hover row goes (as DataTable's keys do)."""
        self._hover(False)
        if self.keys:
            self.move_cursor(row=row)

    def _cursor_at(self) -> int:
        return self.cursor_row

    def _row_total(self) -> int:
        return len(self.keys)

    def _page_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)  # less the header

    def action_select_cursor(self) -> None:
        if self.keys:
            self.post_message(self.Selected(self, self.selected_id()))

    # -- sideways ---------------------------------------------------------------------------

    def _column_edges(self) -> list[int]:
        """Where each column starts, and where the last one ends."""
        edges, x = [], 0
        for width in self.widths:
            edges.append(x)
            x += width + 2 * PADDING
        return edges + [x]


    # -- the mouse -----------------------------------------------------------------------------

    def _row_at(self, y: int) -> int:
        """The row drawn at line ``y`` of the table (-1: the header)."""
        return -1 if y < 1 else round(self.scroll_y) + y - 1

    def _hover(self, show: bool, row: int | None = None) -> None:
        if show == self._show_hover and (row is None or row == self.hover_row):
            return
        for line in {self.hover_row, self.hover_row if row is None else row}:
            self._refresh_row(line)
        self._show_hover = show
        if row is not None:
            self.hover_row = row

    def _refresh_row(self, row: int) -> None:
        if row < 0:
            self.refresh(Region(0, 0, self.size.width, 1))
        else:
            self.refresh_line(row + 1)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        row = self._row_at(event.y)
        self._hover(row < len(self.keys), row)

    def on_leave(self, _event: events.Leave) -> None:
        self._hover(False)

    def on_click(self, event: events.Click) -> None:
        row = self._row_at(event.y)
        self._hover(True, row)
        if not 0 <= row < len(self.keys):
            return  # the header (DataTable sorts nothing on it either) or below the last row
        if row == self.cursor_row:
            self.action_select_cursor()
        else:
            self.move_cursor(row=row)
        event.stop()

    # -- drawing -------------------------------------------------------------------------------

    def _raw(self, name: str) -> Style:
        """A component's own style, not over the table's (DataTable styles rows and the header with these)."""
        style = self._styles.get("raw " + name)
        if style is None:
            style = self._styles["raw " + name] = self.get_component_styles(name).rich_style
        return style

    def _forget_styles(self) -> None:
        self._styles.clear()
        self._strips.clear()
        self._header = None

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._forget_styles()

    def on_focus(self) -> None:
        self._forget_styles()
        self.refresh()

    def on_blur(self) -> None:
        self._forget_styles()
        self.refresh()

    def _frame_values(self) -> tuple:
        return (self.size.width, self._style(""), round(self.scroll_x), round(self.scroll_y), self.cursor_row,
                self.hover_row if self._show_hover else -2, self.widths)

    def render_line(self, y: int) -> Strip:
        # (self._frame is None: called on its own, outside a frame)
        width, base, x, top, cursor_row, hover_row, widths = self._frame or self._frame_values()
        if y == 0:
            drawn = (width, base, x, hover_row == -1, widths)
            if self._header is None or self._header[0] != drawn:
                self._header = (drawn, self._strip(-1, self.labels, width, base, x, cursor_row, hover_row))
            return self._header[1]
        index = top + y - 1
        if not 0 <= index < len(self.keys):
            return Strip.blank(width, base)
        key = self.keys[index]
        cells = self._cells[key]
        state = (index, width, base, x, index == cursor_row, index == hover_row, widths)
        cached = self._strips.get(key)
        if cached is None or cached[0] is not cells or len(cached[1]) > 64:
            cached = self._strips[key] = (cells, {})
        strip = cached[1].get(state)
        if strip is None:
            strip = cached[1][state] = self._strip(index, cells, width, base, x, cursor_row, hover_row)
        return strip

    def _strip(self, row: int, cells: Sequence[Text | str], width: int, base: Style, x: int,
               cursor_row: int, hover_row: int) -> Strip:
        """Row ``row`` (-1: the header) as DataTable._render_line draws it: the same segments and styles."""
        header = row == -1
        cursor = row == cursor_row  # (never the header's: the cursor row is 0 or more)
        hover = row == hover_row
        row_style = self._raw("datatable--header") if header else self._raw(
            "datatable--odd-row" if row % 2 else "datatable--even-row")
        component = Style()
        if hover:
            component += self._style("datatable--hover")
            if header:
                component += self._style("datatable--header-hover")
        if cursor:
            component += self._style("datatable--cursor")
        # Cursor colour over the cell's own (DataTable's cursor_foreground_priority "css"); its background under.
        post = Style.from_color(color=component.color)
        segments: list[Segment] = []
        # DataTable's (row + meta) + component, as (row + component) + meta: the meta has no colour or attribute.
        core = row_style + component
        for column, (cell, content) in enumerate(zip(cells, self.widths)):
            segments.extend(self._cell(Text(cell) if isinstance(cell, str) else cell, content, core + _meta(row, column),
                                       post))
        extend = core + Style.from_meta({"row": row, "column": 0, "out_of_bounds": True})
        segments.append(Segment(" " * max(0, width - self._table_width()), extend))
        return Strip(line_crop(segments, x, x + width, width)).adjust_cell_length(width, base).simplify()

    def _cell(self, cell: Text, content: int, pre: Style, post: Style) -> list[Segment]:
        """One cell padded to ``content`` + its padding, as DataTable renders it (Rich's Padding in Styled)."""
        segments = plain_cell(cell, content, pre, post)
        if segments is not None:
            return segments
        # Anything else (spans, tabs, a value wider than its column…) exactly as DataTable does it, through Rich.
        console = self.app.console
        options = self.app.console_options.update_dimensions(content + 2 * PADDING, 1).update(no_wrap=True)
        return console.render_lines(Styled(Padding(cell, (0, PADDING)), pre_style=pre, post_style=post), options)[0]

    # -- cells ------------------------------------------------------------------------------------

    @staticmethod
    def _risk(risk: str) -> Text:
        return plain(risk, 10, style=RISK_STYLE.get(risk, ""), single_line=True)

    def _pending_cells(self, r: Row, now: float, orphaned: bool = False) -> tuple[Text, ...]:
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

    def _decided_cells(self, r: Row, now: float) -> tuple[Text, ...]:
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

