"""Tasks: every task of every agent, live, newest at the bottom like ``tail -f``.

The table holds one window of tasks (``console.service.deck.WINDOW``). In follow mode
the window is the newest tasks and the cursor rides on the newest; moving
the cursor, clicking or scrolling pauses following (the window then stays
where it is, its rows still updating live, and the status line counts the
newer tasks); ``f`` or ``G`` resumes. Windows are read by the service
(``DeckService.task_page``) on a worker thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.timer import Timer

from agentdeck.console.keymap import REPLAY
from agentdeck.console.safe import plain
from agentdeck.console.screens.base import DeckScreen, settled
from agentdeck.console.screens.detail_ahead import DetailAhead
from agentdeck.console.service.deck import WINDOW
from agentdeck.console.service.views import EMPTY_PAGE, TaskFilter, TaskKey, TaskPage, Window, task_key
from agentdeck.console.widgets.chrome import TextLine
from agentdeck.console.widgets.task_filter import FilterInput, describe, parse_filter
from agentdeck.console.widgets.task_table import TaskTable

_clock = time.monotonic  # (when the whole window was last read; a test moves it)
log = logging.getLogger(__name__)


class TasksScreen(DeckScreen):
    MODE = "tasks"
    READ_AHEAD = True  # a switch here reads first and shows the screen once (SwitchAhead)
    CSS_PATH = "tasks.tcss"
    AUTO_FOCUS = "#tasks"
    WINDOW = WINDOW  # rows held at most
    FOCUSING_ACTIONS = frozenset({"filter"})
    BINDINGS = [
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "clear_filter", "Clear filter", key_display="esc"),
        Binding("f", "follow", "Follow"),
        REPLAY,
    ]

    # repaint=False: only the status line shows it (watch_follow). A reactive on a screen repaints the whole
    # screen when it changes: g from follow mode, G and the first k each drew every line of it, not a partial frame.
    follow: reactive[bool] = reactive(True, repaint=False)

    def __init__(self) -> None:
        super().__init__()
        self.filt = TaskFilter()
        self.anchor: TaskKey | None = None  # first row's key while paused; None follows
        self.page: TaskPage = EMPTY_PAGE
        self._pending_edge: tuple[bool, int] | None = None  # (older, rows to move) until the window arrives
        self._pending: tuple[Window, Callable[[TaskTable], None]] | None = None  # window move in flight
        # The newest and the oldest window as last read, with the filter they were read for: g and G
        # show them at once and re-read behind them (the jump answers on the next frame, not after a read).
        self._ends: dict[str, tuple[TaskFilter, TaskPage]] = {}
        self._oldest_for: TaskFilter | None = None  # the filter the oldest window was last read ahead for
        # The detail of the task under the paused cursor, read once the cursor rests there: enter shows it
        # without a read of its own (console/screens/detail_ahead.py).
        self.detail_ahead = DetailAhead(self._run_ahead)

    def compose_body(self) -> ComposeResult:
        yield TextLine(id="tasks-status")
        yield TaskTable(id="tasks")
        yield FilterInput(id="tasks-filter", leave_to="#tasks")

    @property
    def table(self) -> TaskTable:
        return self.query_one(TaskTable)

    # -- fetching windows ----------------------------------------------------

    # Paused, the window's rows still update live, but at most this often: a busy fleet
    # commits many times a second, and each re-read competes with the keys being pressed.
    PAUSED_REFRESH_S = 0.25

    def refresh_gap(self) -> float:
        return 0.0 if self.follow else self.PAUSED_REFRESH_S

    # Suspended under a screen pushed over it (a task's detail), not switched away from: escape comes back
    # here, and its first frame is the list as it was left.
    _covered = False

    def on_screen_suspend(self) -> None:
        self._covered = self in self.app.screen_stack and self.app.screen is not self

    def resumed(self) -> None:
        if self._tail_shown and self._full_timer is None:
            self._arm_full_read()  # (it came while the screen was away)
        if not self._covered:
            super().resumed()  # (switched back to: DeckScreen re-reads)
            return
        self._covered = False
        if self._changes_covered >= self._changes_heard and not self._stale:
            return  # no store change heard since the rows shown were read: nothing to read again
        # Back from the detail: the list it left is drawn first; the re-read for what changed
        # meanwhile is asked once that frame is on screen (begun at once, its worker held the
        # interpreter for part of that frame).
        def reload_now() -> None:
            if self.is_current:
                self.reload()
            elif not self.deck_waiting:
                self._on_settled()

        self.after_next_frame("after-frame:reload", reload_now)

    def reload(self) -> None:
        if self._pending is not None:
            self._request(*self._pending)  # a window move in flight: redo it on the fresh data
            return
        self._request(Window("follow") if self.anchor is None else Window("at", self.anchor))

    def _request(self, window: Window, place: Callable[[TaskTable], None] | None = None, *,
                 jump: bool = False) -> None:
        filt, deck, limit = self.filt, self.deck, self.WINDOW
        end = self._ends.get(window.kind) if jump else None
        known = end[1] if end is not None and end[0] == filt else None
        if known is not None:
            # A jump to an end of the list read before: shown now, re-read behind it (once that frame
            # is drawn). The fresh window keeps the task under the cursor (the user may have moved on).
            # A window read asked before the key answers for what was shown then: dropped, not shown over it.
            self.supersede("tasks-page")
            self._show(known, place)
            place = None
        self._pending = (window, place) if place is not None else None
        held, tail = self._tail_read(window, filt) if known is None and place is None and not jump else (None, 0)
        asked_at = _clock()

        def show(page: TaskPage) -> None:
            if window.kind in ("follow", "oldest"):
                self._ends[window.kind] = (filt, page)
            if window.kind == "follow":
                if held is None:
                    self._full_read = (filt, asked_at)
                self._tail_shown = held is not None
            self._show(page, place)
            if window.kind == "follow" and self.follow:
                self.draw_now()  # a live row on screen now, not at the next update tick (DeckScreen.draw_now)
            if self._tail_shown and self._full_timer is None:
                self._arm_full_read()  # the older rows kept are read again when due, even if no commit asks

        (self.read_after_frame if known is not None else self.read)(
            "tasks-page", lambda: deck.task_page(filt, window, limit, held=held, tail=tail), show)

    # Following, a refresh reads only the newest tasks (at least this many, and twice the rows in view) and keeps
    # the older rows of the window shown (console/service/tail_window.py); the whole window is read again at
    # least every FULL_EVERY seconds, so a change to an older row is on screen within that time.
    TAIL_MIN = 64
    TAIL_PAGES = 2
    FULL_EVERY = 1.0
    _full_read: tuple[TaskFilter, float] | None = None  # the filter and time the whole newest window was last read
    _full_timer: Timer | None = None
    _tail_shown = False  # the window shown was made from a read of its newest rows only

    def _arm_full_read(self, at_least: float = 0.0) -> None:
        due = self._full_read[1] + self.FULL_EVERY - _clock() if self._full_read is not None else 0.0
        self._full_timer = self.set_timer(max(due, at_least, 0.01), self._full_due)  # (Textual: never 0)

    def _full_due(self) -> None:
        self._full_timer = None
        if not self._tail_shown or not self.is_current or not self.follow:
            return  # (read whole since; or it is when shown again, or following again)
        if self._full_read is not None and _clock() - self._full_read[1] < self.FULL_EVERY:
            self._arm_full_read()  # (early)
        elif settled(self) and not self._leaving():
            self.reload()  # (due: read whole)
        else:  # a read in flight (maybe only of the newest rows), or a key switching away: look again after it
            self._arm_full_read(at_least=0.1)

    def _tail_read(self, window: Window, filt: TaskFilter) -> tuple[TaskPage | None, int]:
        """(the window to keep the older rows of, rows to read) for a refresh while following; (None, 0): read it all."""
        if window.kind != "follow" or not self.follow or self._full_read is None or self._full_read[0] != filt:
            return None, 0
        if _clock() - self._full_read[1] >= self.FULL_EVERY or self._ends.get("follow", (None, None))[1] \
                is not self.page:
            return None, 0  # (due, or what is shown is not the newest window last read)
        tail = max(self.TAIL_MIN, self.TAIL_PAGES * self.table._page_rows())
        return (self.page, tail) if tail < self.WINDOW else (None, 0)

    def _show(self, page: TaskPage, place) -> None:
        if not self.is_mounted:
            return
        anchor = page.anchor
        self._pending_edge = self._pending = None
        table = self.table
        if table.moved:  # a key moved the cursor just before this answer: it pauses, as its message will say
            self._user_moved()
        current = table.cursor_task
        if self.follow:
            self.anchor = None
        else:
            # (a follow-mode result can land just after the user paused)
            self.anchor = anchor if anchor is not None or not page.rows else task_key(page.rows[0])
        self.page = page
        table.more_older = page.older
        table.more_newer = page.newer > 0
        table.show_rows(page.rows, self.app.now())  # type: ignore[attr-defined]
        if self.follow:
            table.move_cursor(row=max(table.row_count - 1, 0))
        elif place is not None:
            place(table)
        elif current is not None and current in table.shown.keys:
            # Same task under the cursor; the view stays where the user scrolled it.
            table.cursor_row = table.shown.keys.index(current)
        self._show_status()
        self._read_oldest_ahead()
        self._read_detail_soon()

    def _read_oldest_ahead(self) -> None:
        """Read the oldest window once for each filter, after the first one shown: the first g then shows it at once."""
        filt = self.filt
        if self._oldest_for == filt or self._ends.get("oldest", (None,))[0] == filt:
            return
        self._oldest_for = filt
        deck, limit = self.deck, self.WINDOW

        def keep(page: TaskPage) -> None:
            if self._ends.get("oldest", (None,))[0] != filt:  # (a g read since is as fresh)
                self._ends["oldest"] = (filt, page)

        self.read_after_frame("tasks-oldest", lambda: deck.task_page(filt, Window("oldest"), limit), keep,
                              covers=False)

    # -- follow and navigation ---------------------------------------------

    def _pause(self) -> None:
        if self.follow:
            self.follow = False
            # Freeze the window where it is; live updates keep refreshing it.
            self.anchor = task_key(self.page.rows[0]) if self.page.rows else None

    def watch_follow(self) -> None:
        if self.is_mounted:
            self._show_status()

    @on(TaskTable.Moved)
    def _user_moved(self) -> None:
        self.table.moved = False
        self._pause()
        self._read_detail_soon()

    # -- the detail of the task under the cursor, read ahead ------------------

    # The cursor rests on a row this long before its detail is read ahead. Read after every move (j held down,
    # ctrl+d/u), the reads' worker threads took the interpreter from the next keys' frames: bench/console.py's
    # j/k and ctrl+d/u p50 rose by 1-4 ms, for reads mostly of rows passed over.
    AHEAD_REST_S = 0.12

    def _read_detail_soon(self) -> None:
        """Read the cursor's task's detail once the cursor has rested on it ``AHEAD_REST_S`` (paused only).

        Following, the cursor rides on each new task (several a second): nothing is read ahead.
        """
        if self.follow:
            return
        if self._ahead_timer is not None:
            self._ahead_timer.stop()
        self._ahead_timer = self.set_timer(self.AHEAD_REST_S, self._read_detail_ahead)

    _ahead_timer: Timer | None = None

    def _read_detail_ahead(self) -> None:
        self._ahead_timer = None
        if self.follow or not self.is_current or not self.is_mounted:
            return
        table = self.table
        task_id = table.cursor_task
        if task_id is None:
            return
        deck = self.deck
        again = self.detail_ahead.ask(task_id, table.row_values(task_id), self._changes_heard,
                                      lambda: deck.task_detail(task_id), now=self.app.now())  # type: ignore[attr-defined]
        if again > 0:  # (this task's last read is in flight or recent: DetailAhead.AGAIN_AFTER)
            self._ahead_timer = self.set_timer(again, self._read_detail_ahead)

    def _run_ahead(self, job, done) -> None:
        app = self.app

        def work() -> None:
            try:
                result = job()
            except Exception:  # enter then reads it itself, and shows that read's error to the operator
                log.exception("reading a task's detail ahead failed")
                result = None
            try:
                app.call_from_thread(done, result)
            except RuntimeError:  # (the app stopped meanwhile)
                pass

        # Not exclusive: an answer is never dropped, as an enter may be waiting for it (DetailAhead.usable).
        self.run_worker(work, thread=True, group="detail-ahead", name="detail-ahead", exit_on_error=False)

    @on(TaskTable.Edge)
    def _edge(self, event: TaskTable.Edge) -> None:
        """Move the window half its size older or newer, keeping the cursor's task in place.

        Keys pressed before the new window arrives add up (nothing is lost).
        """
        rows = self.page.rows
        if not rows:
            return
        half = max(1, len(rows) // 2)
        step = -event.overshoot if event.older else event.overshoot
        pending = self._pending_edge
        delta = pending[1] + step if pending is not None and pending[0] == event.older else step
        self._pending_edge = (event.older, delta)
        if event.older:
            target = rows[0]["task_id"]
            self._request(Window("before", task_key(rows[0]), half), self._placer(target, delta))
        else:
            start = task_key(rows[min(half, len(rows) - 1)])
            target = rows[-1]["task_id"]
            self._request(Window("at", start), self._placer(target, delta))

    @staticmethod
    def _placer(task_id: str, delta: int) -> Callable[[TaskTable], None]:
        def place(table: TaskTable) -> None:
            keys = table.shown.keys
            row = keys.index(task_id) + delta if task_id in keys else 0
            table.move_cursor(row=max(0, min(row, table.row_count - 1)), animate=False)
        return place

    @on(TaskTable.Jump)
    def _jump(self, event: TaskTable.Jump) -> None:
        if event.newest:
            self.action_follow()
            return
        self._pause()
        self.follow = False
        self._request(Window("oldest"), lambda table: table.move_cursor(row=0, animate=False), jump=True)

    def action_follow(self) -> None:
        self.follow = True
        self.anchor = None
        self._pending = self._pending_edge = None
        self.table.focus()
        self._request(Window("follow"), jump=True)

    # -- opening -------------------------------------------------------------

    @on(TaskTable.Selected)
    def _selected(self, event: TaskTable.Selected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        task_id = self.table.cursor_task
        if task_id is None:
            return
        self._pause()
        app = self.app
        ahead = self.detail_ahead.usable(task_id, self.table.row_values(task_id))
        if ahead is None:
            app.open_task(task_id)  # type: ignore[attr-defined]
            return
        # Read ahead: shown now, or when the read in flight answers. A store change heard since it began (or
        # time enough for a task to go abandoned) is checked behind the first frame (the task's row re-read).
        recheck = ahead.recheck(self._changes_heard, app.now())  # type: ignore[attr-defined]
        # The last task asked for is shown: an enter's read still in flight (open_task) is dropped, and this
        # one is if another task is opened before it answers (enter on another row, the palette).
        claim = app.claim_task_open()  # type: ignore[attr-defined]
        if ahead.detail is not None:
            app.show_task(ahead.detail, recheck=recheck)  # type: ignore[attr-defined]
            return
        asked_at = app.where()  # type: ignore[attr-defined]

        def answered(detail) -> None:
            if app.where() != asked_at or not app.task_open_is(claim):  # type: ignore[attr-defined]
                return  # a key pressed after enter was shown first: the later key wins (as open_task)
            if detail is None:
                app.open_task(task_id)  # type: ignore[attr-defined]  # (the read failed: read again, errors shown)
            else:
                app.show_task(detail, recheck=ahead.recheck(self._changes_heard, app.now()),  # type: ignore[attr-defined]
                              asked_at=asked_at)

        ahead.then.append(answered)

    def action_replay(self) -> None:
        task_id = self.table.cursor_task
        if task_id is not None:
            self._pause()
            self.app.open_replay(task_id)

    # -- filtering -------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one(FilterInput)
        box.value = describe(self.filt)
        box.display = True
        self.set_focus(box)  # now, not queued behind the keys read with / (FOCUSING_ACTIONS)
        box.opened()
        box.cursor_position = len(box.value)

    def action_clear_filter(self) -> None:
        if not self.filt.empty:
            self.set_filter(TaskFilter())

    def set_filter(self, filt: TaskFilter) -> None:
        """Show only tasks matching ``filt``, newest first (follow resumes)."""
        self.filt = filt
        self.page = EMPTY_PAGE
        self.follow = True
        self.anchor = None
        self._pending = self._pending_edge = None
        self.reload()

    def apply_filter_text(self, text: str) -> None:
        self.set_filter(parse_filter(text))

    @on(FilterInput.Applied)
    def _filter_applied(self, event: FilterInput.Applied) -> None:
        # The box has hidden itself and given the table the focus already (PromptInput.leave, in its own queue).
        # Not again here: with / typed after the Enter in the same read, the box is open again by now, and hiding
        # it (and a queued focus of the table) left it shown with the keys typed after the / going to the table.
        self.set_filter(event.filt)

    # -- status line ---------------------------------------------------------

    def _show_status(self) -> None:
        text = self._status_text(compact=False)
        if text.cell_len > (self.size.width or self.app.size.width) - 1:
            # 80 columns: the state, what is waiting and the filter matter; the hints go.
            text = self._status_text(compact=True)
        self.query_one("#tasks-status", TextLine).update(text)

    def on_resize(self, event: events.Resize) -> None:
        self._show_status()

    def _status_text(self, *, compact: bool) -> Text:
        text = Text()
        if self.follow:
            text.append(" ● FOLLOW ", "bold black on green")
        else:
            text.append(" ❚❚ PAUSED ", "bold black on yellow")
            newer = self.page.newer
            if newer:
                text.append(f" +{newer if newer < 1000 else '999+'} newer", "bold yellow")
            text.append("  f follows", "dim")
        shown = len(self.page.rows)
        text.append(f"   {shown} shown" if compact else f"   {shown} task{'s' if shown != 1 else ''} shown")
        if self.page.older and not compact:
            text.append(" · older above", "dim")
        text.append("   filter: ")
        if self.filt.empty:
            text.append("none", "dim")
            if not compact:
                text.append("  (/ to filter)", "dim")
        else:
            # The filter is the operator's own text, but it may hold pasted trace text.
            text.append_text(plain(describe(self.filt), 80, style="bold cyan", single_line=True))
            if not compact:
                text.append("  (esc clears)", "dim")
        return text
