"""One task: its summary, its events in seq order, and the chosen event's payload.

Pushed over the Tasks screen (enter); ``r`` opens the task in Replay,
``escape`` goes back. It refreshes live while the task is still running.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches

from agentdeck.console.keymap import REPLAY
from agentdeck.console.safe import plain
from agentdeck.console.screens.base import DeckScreen
from agentdeck.console.widgets.chrome import format_clock
from agentdeck.console.service.views import TaskDetail
from agentdeck.console.widgets.payload_scroll import PayloadScroll
from agentdeck.console.widgets.task_events import EventTable, payload_text
from agentdeck.console.widgets.text_block import TextBlock


class TaskDetailScreen(DeckScreen):
    MODE = "tasks"
    CSS_PATH = "task_detail.tcss"
    AUTO_FOCUS = "#detail-events"
    DRAW_AT_ONCE = True  # pushed with a task just shown in it: laid out and drawn as its resume is handled
    BINDINGS = [
        Binding("escape", "back", "Back", key_display="esc"),
        REPLAY,
        Binding("tab", "app.focus_next", "Table/payload", show=False),  # (the app's action: a screen has none)
    ]

    def __init__(self, task_id: str = "") -> None:
        super().__init__()
        self.task_id = task_id
        self.events: list = []
        self.found: bool | None = None  # None until the task was looked up
        self._loaded: TaskDetail | None = None
        self._fresh = False  # data just shown by show_task(): the resume needs no reload
        self._shown: tuple | None = None  # what _show drew last (skip redrawing the same)
        self._detail: TaskDetail | None = None  # what it shows (re-reads ask the service whether it changed)
        self._payload_of: tuple | None = None  # (task, event) whose payload is shown (skip showing it again)

    def show_task(self, task_id: str, loaded: TaskDetail | None = None, *, recheck: bool = False) -> None:
        """Show another task (the app keeps one detail screen and re-points it).

        ``loaded`` is ``DeckService.task_detail``'s result when the caller fetched it
        already (the app does, before pushing this screen, so the screen
        appears with its data in one paint). ``recheck``: it was read before a store
        change heard since (read ahead): the task's row is read again once it is on screen.
        """
        self._recheck = recheck and loaded is not None
        self.task_id = task_id
        self.events = []
        self.found = None
        self._shown = None
        self._payload_of = None
        self._loaded = loaded
        if self.is_mounted:
            if loaded is None:
                self.query_one("#detail-summary", TextBlock).update(Text())
                self.query_one(EventTable).show_events([])
                self.query_one("#detail-payload", TextBlock).update(Text())
            self.reload()

    def compose_body(self) -> ComposeResult:
        # TextBlock, not Static: drawn a line at a time, a few times cheaper to show new (each enter does).
        yield TextBlock(id="detail-summary")
        yield EventTable(id="detail-events")
        with PayloadScroll(id="detail-payload-box"):
            yield TextBlock(id="detail-payload")

    def reload(self) -> None:
        if self._loaded is not None:
            loaded, self._loaded = self._loaded, None
            self._show(loaded)
            self._fresh = not self.is_current  # about to be shown: that resume need not re-read
            if self._recheck and self.is_current:
                self._recheck = False
                self._recheck_after_frame()
        else:
            self._fetch()

    _recheck = False  # the data show_task() handed over may predate a store change: read after the first frame

    def resumed(self) -> None:
        # Shown right after show_task() handed over fresh data: nothing to re-read.
        if not self._fresh:
            self.reload()
        elif self._recheck:
            self._recheck_after_frame()
        self._fresh = self._recheck = False

    def _recheck_after_frame(self) -> None:
        """Read the task's row again once the frame showing it is drawn; its events too if it changed.

        After the frame: begun at once, the read's worker held the interpreter during the frame enter waits for.
        """
        task_id, deck, held = self.task_id, self.deck, self._detail
        known = held.key if held is not None and held.task_id == task_id and held.key else None
        self.read_after_frame("task-detail", lambda: deck.task_detail_if_changed(task_id, known),
                              lambda detail: self._show(detail if detail is not None else held))

    def _fetch(self) -> None:
        task_id, deck = self.task_id, self.deck
        held = self._detail if self._detail is not None and self._detail.task_id == task_id else None
        known = held.key if held is not None and held.key else None
        self.read("task-detail", lambda: deck.task_detail_if_changed(task_id, known),
                  lambda detail: self._show(detail if detail is not None else held))

    def _show(self, detail: TaskDetail | None) -> None:
        if detail is None or detail.task_id != self.task_id:
            return  # the screen was re-pointed meanwhile
        self._detail = detail
        task, events = detail.task, detail.events
        try:
            summary = self.query_one("#detail-summary", TextBlock)
        except NoMatches:
            return  # not composed (yet, or any more)
        # A busy fleet re-reads the open task many times a second: redraw only when it changed
        # (each update of the summary or payload lays the screen out again).
        shown = (self.task_id, tuple(task) if task is not None else None, tuple(e["id"] for e in events),
                 detail.abandoned, self.app.now() // 60)  # type: ignore[attr-defined]
        if shown == self._shown:
            return
        self._shown = shown
        self.found = task is not None
        self.events = events
        summary.update(_summary(self.task_id, task, len(events), self.app.now(),  # type: ignore[attr-defined]
                                abandoned=detail.abandoned))
        table = self.query_one(EventTable)
        table.show_events(events)
        self._show_payload(table.cursor_row)

    @on(EventTable.Highlighted, "#detail-events")
    def _highlighted(self, event: EventTable.Highlighted) -> None:
        self._show_payload(event.cursor_row)

    @on(EventTable.Chosen, "#detail-events")
    def _selected(self, event: EventTable.Chosen) -> None:
        self.query_one("#detail-payload-box").focus()

    def _show_payload(self, row: int) -> None:
        event = self.events[row] if self.events and 0 <= row < len(self.events) else None
        held = self._payload_of
        if held is not None and held[0] == self.task_id and held[1] is event:
            # The table's cursor message after new rows names the row just shown: updating the payload
            # with the same text laid the whole screen out a second time (profiled: ~25 ms of each enter).
            return
        self._payload_of = (self.task_id, event)
        target = self.query_one("#detail-payload", TextBlock)
        if event is None:
            target.update(Text())
            return
        head = Text(f"event {event['seq']} · ", style="bold")
        head.append_text(plain(event["kind"], 40))
        head.append("\n")
        target.update(head + payload_text(event["payload"]))

    def action_back(self) -> None:
        stack = self.app.screen_stack
        below = stack[-2] if len(stack) > 1 and stack[-1] is self else None
        if isinstance(below, DeckScreen):
            below.draw_whole_when_switched(laid_out=False)  # the list as it was left, plus what changed since
        self.dismiss()

    def action_replay(self) -> None:
        self.app.open_replay(self.task_id)


def _summary(task_id: str, task, shown: int, now: float | None = None, *, abandoned: bool = False) -> Text:
    text = Text()
    if task is None:
        text.append("no such task: ", "bold red")
        text.append_text(plain(task_id, 200, single_line=True))
        return text
    text.append("task ", "dim")
    text.append_text(plain(task["task_id"], 200, style="bold", single_line=True))
    text.append("  request ", "dim")
    text.append_text(plain(task["request_id"], 200, single_line=True))
    text.append("  agent ", "dim")
    text.append_text(plain(task["agent"], 200, style="bold", single_line=True))
    text.append(" ")
    text.append_text(plain(task["version"], 200, single_line=True))
    text.append("  ")
    text.append_text(plain(f"{task['cohort']}/{task['stage']}", 60, single_line=True))
    text.append("\n")
    text.append("outcome ", "dim")
    if task["outcome"] is None and abandoned:  # silent past --abandon-after; a late event revives it
        text.append("abandoned", "dim")
    else:
        text.append_text(plain(task["outcome"] or "running", 20, style="bold"))
    text.append("  started ", "dim")
    text.append(format_clock(task["started"], now) or "?")
    if task["latency_ms"] is not None:
        text.append(f"  latency {task['latency_ms']:.0f}ms")
    text.append(f"  cost ${task['cost_usd']:.4f}  tokens {task['tokens']}")
    text.append(f"  tools {task['tool_calls']} ({task['tool_errors']} errors, {task['retries']} retries)")
    text.append(f"  escalations {task['escalations']}  actions {task['actions']}")
    if task["violations"]:
        text.append(f"  violations {task['violations']}", "bold red")
    text.append("\n")
    text.append("request ", "dim")
    text.append_text(plain(task["request"], 300, single_line=True))
    if task["events"] > shown:
        text.append(f"\nshowing the first {shown} of {task['events']} events", "yellow")
    return text
