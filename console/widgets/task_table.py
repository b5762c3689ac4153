"""The Tasks list: a table over a window of the store's tasks.

The table never holds more than one window of rows (``console.service.deck.WINDOW``);
moving past either end asks the screen for the next window (keyset paging in
``store.queries``). New tasks come in at the bottom, like ``tail -f``; a live
update redraws only the rows that changed.
"""

from __future__ import annotations

from agentdeck.console.service.views import Row
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar
from textual.strip import Strip

from agentdeck.console.keymap import COLUMN_BINDINGS, LIST_BINDINGS
from agentdeck.console.widgets.held_scrollbar import HeldScrollBar
from agentdeck.console.widgets.line_table import CachedLines, header_strip, row_strip, same_cells
from agentdeck.console.widgets.list_moves import ListMoves
from agentdeck.console.safe import plain
from agentdeck.console.widgets.chrome import format_clock, same_day


# (key, label, width): fixed widths so a hostile 200-character agent name
# cannot push the other columns off screen, and updates never re-measure.
COLUMNS = (
    ("time", "time", 8),
    ("task", "task", 16),
    ("agent", "agent", 14),
    ("version", "ver", 6),
    ("cohort", "cohort", 8),
    ("stage", "stage", 8),
    ("step", "step", 12),
    ("tool", "last tool", 15),
    ("outcome", "outcome", 9),
    ("latency", "latency", 7),
    ("cost", "cost", 6),
    ("violations", "viol", 4),
)
# The first columns say which task a row is: they stay put when the rest scroll sideways.
PINNED = 2
# The other columns, most important first: on a narrow terminal the last ones
# drop off the first view (→ scrolls them in), so at 80 columns a row still
# says how the task ended, how long it took, what it cost and whether it broke a rule.
PRIORITY = ("outcome", "latency", "cost", "violations", "agent", "step", "tool", "cohort", "version", "stage")


@dataclass(frozen=True)
class ColumnView:
    """Which columns a ``width``-wide table shows, scrolled ``offset`` columns right."""

    shown: tuple[int, ...]  # indices into COLUMNS, left to right
    offset: int  # the offset actually used (clamped to what scrolling can reveal)
    more_left: bool
    more_right: bool


def _cell_width(index: int) -> int:
    return COLUMNS[index][2] + 2  # one space either side


def column_view(width: int, offset: int = 0) -> ColumnView:
    """Lay the columns out for ``width``: the pinned ones, then as many of the rest as fit.

    Unscrolled, the rest that fit are the most important (``PRIORITY``) in
    their usual order; scrolling right moves along that view followed by the
    columns it left out (in their usual order), one column per step, until the
    last column is in view. When everything fits, nothing scrolls.
    """
    pinned = list(range(PINNED))
    room = width - sum(_cell_width(i) for i in pinned)
    first: list[int] = []
    left = room
    for key in PRIORITY:
        index = next(i for i, c in enumerate(COLUMNS) if c[0] == key)
        if _cell_width(index) <= left:
            first.append(index)
            left -= _cell_width(index)
    first.sort()
    rest = first + [i for i in range(PINNED, len(COLUMNS)) if i not in first]
    # The furthest useful offset: the one that brings the last column into view.
    last = len(rest)
    used = 0
    while last > 0 and used + _cell_width(rest[last - 1]) <= room:
        used += _cell_width(rest[last - 1])
        last -= 1
    offset = max(0, min(offset, last))
    shown = []
    used = 0
    for index in rest[offset:]:
        if used + _cell_width(index) > room:
            break
        shown.append(index)
        used += _cell_width(index)
    return ColumnView(tuple(pinned + shown), offset, offset > 0, offset + len(shown) < len(rest))
OUTCOME_STYLE = {
    "success": "green",
    "failed": "bold red",
    "denied": "yellow",
    "escalated": "magenta",
    "aborted": "red",
    "timeout": "red",
    None: "cyan",
    "abandoned": "dim",
}


def _abandoned(row: Row) -> bool:
    """Computed when read (store.queries ABANDONED); a row read without the column is not."""
    try:
        return bool(row["abandoned"])
    except (IndexError, KeyError):
        return False


def task_cells(row: Row, now: float | None = None) -> tuple[Text, ...]:
    """One task as table cells; every trace-supplied value goes through ``plain``.

    ``now`` (the app clock): a task not seen today shows its date, not a time of day.
    """
    outcome = row["outcome"] or ("abandoned" if _abandoned(row) else None)
    latency = row["latency_ms"]
    violations = row["violations"]
    return (
        plain(format_clock(row["seen"], now, short=True), style="" if row["started"] is not None else "dim"),
        plain(row["task_id"], 40, single_line=True),
        plain(row["agent"], 40, single_line=True),
        plain(row["version"], 40, single_line=True),
        plain(row["cohort"], 20, single_line=True, style="bold yellow" if row["cohort"] == "canary" else ""),
        plain(row["stage"], 20, single_line=True),
        plain(row["last_kind"], 20, single_line=True),
        plain(row["last_tool"], 40, single_line=True),
        plain(outcome or "running", 20, single_line=True, style=OUTCOME_STYLE.get(outcome, "")),
        Text(_latency(latency), justify="right"),
        Text(f"${row['cost_usd']:.3f}", justify="right"),
        Text(str(violations) if violations else "", style="bold red", justify="right"),
    )


def _latency(ms: float | None) -> str:
    if ms is None:
        return ""
    return f"{ms:.0f}ms" if ms < 10_000 else f"{ms / 1000:.1f}s"


class LazyCells(dict):
    """Task id -> cells, made from the task's row the first time they are needed.

    A window holds up to 200 rows but only the ~40 in view are ever drawn;
    the others' cells are never built unless asked for.
    """

    def __init__(self, rows: dict[str, Row] | None = None, now: float | None = None) -> None:
        super().__init__()
        self.rows = rows or {}
        self.now = now

    def __missing__(self, key: str) -> tuple[Text, ...]:
        value = self[key] = task_cells(self.rows[key], self.now)
        return value

    def get(self, key, default=None):
        return self[key] if key in self.rows else default


@dataclass
class Shown:
    """What the table holds: task ids in order and their cells."""

    keys: list[str]
    cells: LazyCells


class TaskTable(CachedLines, ListMoves, ScrollView, can_focus=True, inherit_bindings=False):
    """Tasks, oldest at the top; a window the screen moves over the store.

    A line-API widget rather than a DataTable: each row is rendered once into
    a cached strip and re-rendered only when its cells (or its cursor/zebra
    state) change, so a live update of one task redraws one line, not the
    whole table. The first line is the header and never scrolls.

    Its keys are its own (``inherit_bindings=False``): a scroll container's
    "Page Left"/"Page Right" mean nothing here, and ``?`` should not list them.
    The list keys and their moves are every list's (LIST_BINDINGS, ListMoves); only
    g/G differ: they go to the oldest/newest task of all, not of the window.
    """

    BINDINGS = [
        Binding("enter", "select", "Open"),
        *LIST_BINDINGS,
        *COLUMN_BINDINGS,
    ]
    COMPONENT_CLASSES = {"task-table--header", "task-table--cursor", "task-table--even"}
    DEFAULT_CSS = """
    TaskTable { background: $surface; overflow-x: hidden; }
    TaskTable > .task-table--header { background: $panel; color: $foreground; text-style: bold; }
    TaskTable > .task-table--cursor { background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold; }
    TaskTable:blur > .task-table--cursor { background: $block-cursor-blurred-background; text-style: none; }
    TaskTable > .task-table--even { background: $surface-lighten-1; }
    """

    # repaint=False: a move repaints the two lines it changes (watch_cursor_row), not the whole table (a
    # reactive's own repaint re-drew all ~40 lines through Textual's line cache on every j/k).
    cursor_row: reactive[int] = reactive(0, always_update=True, repaint=False)

    class Moved(Message):
        """The user moved the cursor (follow mode pauses)."""

    class Edge(Message):
        """The user moved past the window's end; ``overshoot`` rows further."""

        def __init__(self, older: bool, overshoot: int) -> None:
            super().__init__()
            self.older = older
            self.overshoot = overshoot

    class Jump(Message):
        """The user asked for the oldest (g) or newest (G) task of all."""

        def __init__(self, newest: bool) -> None:
            super().__init__()
            self.newest = newest

    class Selected(Message):
        """Enter (or a click on the cursor row): open this task."""

        def __init__(self, task_id: str) -> None:
            super().__init__()
            self.task_id = task_id

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.shown = Shown([], LazyCells())
        self.more_older = False
        self.more_newer = False
        # task -> (cells, {(variant, width, focus): strip}) it was drawn from. Every state drawn is
        # kept: in follow mode each new task moves every row by one, flipping its zebra stripe.
        self._strips: dict[str, tuple] = {}
        self._header: tuple[tuple, Strip] | None = None
        self._raw: dict[str, tuple] = {}  # task -> the row it was last shown from
        # Rows of the windows shown before (task -> (row, cells)), newest last, at most KEPT: g and G go back
        # to the same ends of the list, whose rows then keep their cells and strips (no frame rebuilds them).
        self._kept: dict[str, tuple[tuple, tuple[Text, ...]]] = {}
        self._styles: dict[str, Style] = {}
        self.column_offset = 0  # columns scrolled right (→/←), past the pinned ones
        self._view: tuple[tuple[int, int], ColumnView] | None = None

    # -- size and rows -------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self.shown.keys)

    @property
    def cursor_task(self) -> str | None:
        return self.shown.keys[min(self.cursor_row, self.row_count - 1)] if self.shown.keys else None

    def row_values(self, task_id: str) -> tuple | None:
        """The values of ``task_id``'s row as the table last showed it (None: not in the window)."""
        return self._raw.get(task_id)

    def _page_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)  # less the header

    def _set_virtual_size(self) -> None:
        # No horizontal scrollbar: sideways is by whole columns (column_view), the task columns pinned.
        self.virtual_size = Size(self.size.width, self.row_count + 1)

    def columns(self) -> ColumnView:
        """The columns shown now (for this width and sideways offset)."""
        width = self.scrollable_content_region.width  # (less the vertical scrollbar)
        key = (width, self.column_offset)
        if self._view is None or self._view[0] != key:
            view = column_view(*key)
            self.column_offset = view.offset  # (a wider terminal may need less scrolling)
            self._view = ((width, view.offset), view)
        return self._view[1]

    def column_labels(self) -> list[str]:
        """The headers of the columns shown now, left to right."""
        return [COLUMNS[i][1] for i in self.columns().shown]

    def action_columns(self, delta: int) -> None:
        """→/←: scroll the unpinned columns one column right or left."""
        before = self.columns()
        if (delta > 0 and not before.more_right) or (delta < 0 and not before.more_left):
            return
        self.column_offset = before.offset + delta
        if self.columns() != before:
            self.refresh()

    def on_resize(self) -> None:
        self._set_virtual_size()
        # Keep the cursor's row in view when the table gets shorter (the filter input opening below it, a
        # smaller terminal): following, that row is the newest task, and it hid behind the input until the next
        # refresh, under a FOLLOW badge.
        if self.row_count:
            self.scroll_to_cursor()

    @property
    def vertical_scrollbar(self) -> ScrollBar:
        # Textual's Widget.vertical_scrollbar (8.2), made a HeldScrollBar: g and G move it between the same two
        # positions, and drawing it again was a fifth of each.
        if self._vertical_scrollbar is None:
            self._vertical_scrollbar = bar = HeldScrollBar(vertical=True, name="vertical",
                                                           thickness=self.scrollbar_size_vertical)
            bar.display = False
            self.app._start_widget(self, bar)
        return self._vertical_scrollbar

    KEPT = 600  # rows of earlier windows whose cells and strips are kept (three windows)

    def show_rows(self, rows: list[Row], now: float | None = None) -> None:
        """Make the table hold exactly ``rows``; unchanged rows keep their cells and strips.

        Called on every refresh while following a fleet (the window of 200 re-read, a few rows new or changed):
        the rows it held before are known by identity or by value, and only the new and changed ones are
        looked at further (building and comparing every row's cells was a third of the console's CPU per refresh).
        """
        if not same_day(self.shown.cells.now, now):
            # The first column reads a time of day only for rows seen on ``now``'s day: past midnight a row
            # that did not change must read its date, so no cells or strips made the day before are kept.
            self.shown = Shown(self.shown.keys, LazyCells({}, now))
            self._kept.clear()
            self._raw = {}
            self._strips.clear()
            self.refresh()
        old, old_keys, kept, old_raw = self.shown.cells, self.shown.keys, self._kept, self._raw
        old_rows = old.rows
        keys = [r["task_id"] for r in rows]
        by_key = dict(zip(keys, rows))
        cells = LazyCells(by_key, now)
        # The same row objects as last time (a window refreshed from its newest rows keeps the older rows it
        # held: console/service/tail_window.py) are unchanged; the others are compared by value.
        raw = {}
        unchanged = set()
        for key, row in by_key.items():
            if old_rows.get(key) is row:
                raw[key] = old_raw[key]
                unchanged.add(key)
            else:
                raw[key] = values = tuple(row)
                if old_raw.get(key) == values:
                    unchanged.add(key)
        dict.update(cells, {key: drawn for key, drawn in old.items() if key in unchanged})  # (cells and strips kept)
        changed = set()
        for key in raw.keys() - unchanged:  # new to the window, or changed
            if dict.__contains__(old, key):
                drawn = old[key]
            elif key in kept:
                before, drawn = kept.pop(key)  # (back in the window: held as shown from now on)
                if before == raw[key]:
                    dict.__setitem__(cells, key, drawn)
                    continue
            else:
                continue  # never drawn: its cells are built when (if) it is
            new = task_cells(cells.rows[key], now)
            if same_cells(drawn, new):
                dict.__setitem__(cells, key, drawn)  # changed, but not in anything shown
            else:
                dict.__setitem__(cells, key, new)
                changed.add(key)
        for key in old.keys() - raw.keys():  # drawn and gone from the window: kept for a return (g/G)
            kept[key] = (old_raw[key], old[key])
        while len(kept) > self.KEPT:
            del kept[next(iter(kept))]
        self._raw = raw
        self.shown = Shown(keys, cells)
        for key in self._strips.keys() - raw.keys() - kept.keys():
            del self._strips[key]
        self._set_virtual_size()
        if self.cursor_row >= self.row_count:
            self.cursor_row = max(0, self.row_count - 1)
        if keys != old_keys:
            self.refresh()
        else:  # same rows in the same places: repaint the lines that changed
            for key in changed:
                self.refresh_line(keys.index(key) + 1)

    # -- the cursor ------------------------------------------------------------

    def move_cursor(self, *, row: int, animate: bool = False) -> None:
        """Put the cursor on ``row`` (clamped) and scroll it into view (no Moved message)."""
        self.cursor_row = max(0, min(row, self.row_count - 1))
        self.scroll_to_cursor()

    def scroll_to_cursor(self) -> None:
        page = self._page_rows()
        top = round(self.scroll_y)
        if self.cursor_row < top:
            top = self.cursor_row
        elif self.cursor_row >= top + page:
            top = self.cursor_row - page + 1
        if top != round(self.scroll_y):
            self.scroll_to(y=top, animate=False, force=True)  # (scrollbars may lag a new virtual size)

    def watch_cursor_row(self, old: int, new: int) -> None:
        self.refresh_line(old + 1)
        self.refresh_line(new + 1)

    # The user moved the cursor and the screen has not handled the Moved message yet: a window read
    # that lands in between must not put the cursor back on the newest task (TasksScreen._show).
    moved = False

    def _moved(self) -> None:
        self.moved = True
        self.post_message(self.Moved())

    def go_row(self, row: int) -> None:
        """The user moves to ``row``: past either end of the window asks for the next one."""
        self._moved()
        if row < 0 and self.more_older:
            self.post_message(self.Edge(older=True, overshoot=-row))
        elif row >= self.row_count and self.more_newer:
            self.post_message(self.Edge(older=False, overshoot=row - self.row_count + 1))
        self.move_cursor(row=row)

    def _cursor_at(self) -> int:
        return self.cursor_row

    def _row_total(self) -> int:
        return self.row_count

    def action_first(self) -> None:
        self.post_message(self.Jump(newest=False))

    def action_last(self) -> None:
        self.post_message(self.Jump(newest=True))

    def action_select(self) -> None:
        if self.cursor_task is not None:
            self.post_message(self.Selected(self.cursor_task))

    def on_click(self, event: events.Click) -> None:
        row = round(self.scroll_y) + event.y - 1
        if event.y < 1 or not 0 <= row < self.row_count:
            return
        self._moved()
        if row == self.cursor_row:
            self.action_select()
        else:
            self.move_cursor(row=row)

    def on_mouse_scroll_up(self) -> None:
        self._moved()

    def on_mouse_scroll_down(self) -> None:
        self._moved()

    # -- drawing ---------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._strips.clear()
        self._header = None

    def _frame_values(self) -> tuple:
        return (self.size.width, self._style(""), self.columns(), round(self.scroll_y), self.cursor_row,
                self.has_focus)

    def render_line(self, y: int) -> Strip:
        # (self._frame is None: called on its own, outside a frame)
        width, rich_style, view, top, cursor_row, focus = self._frame or self._frame_values()
        if y == 0:
            room = self.scrollable_content_region.width  # (→ goes left of the scrollbar)
            if self._header is None or self._header[0] != (width, room, view):
                base = rich_style + self._style("task-table--header")
                self._header = ((width, room, view), header_strip(COLUMNS, view.shown, view.more_left, view.more_right, PINNED, base, room).adjust_cell_length(width, base))
            return self._header[1]
        index = top + y - 1
        if not 0 <= index < self.row_count:
            return Strip.blank(width, rich_style)
        key = self.shown.keys[index]
        cells = self.shown.cells[key]
        variant = "task-table--cursor" if index == cursor_row else "task-table--even" if index % 2 else ""
        state = (variant, width, focus, view.shown)
        cached = self._strips.get(key)
        if cached is None or cached[0] is not cells:
            cached = self._strips[key] = (cells, {})
        strip = cached[1].get(state)
        if strip is not None:
            return strip
        base = rich_style + self._style(variant) if variant else rich_style
        strip = cached[1][state] = row_strip(COLUMNS, cells, base, width, view.shown)
        return strip

    def on_focus(self) -> None:
        self._styles.clear()
        self.refresh()

    def on_blur(self) -> None:
        self._styles.clear()
        self.refresh()
