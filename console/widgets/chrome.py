"""What every screen shows around its content: tab bar and live counters."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Static

from agentdeck.console.service.views import Counters

if TYPE_CHECKING:
    from agentdeck.store.health import Health

SCREENS = [("tasks", "1 Tasks"), ("escalations", "2 Escalations"), ("canary", "3 Canary"), ("replay", "4 Replay"),
           ("problems", "5 Problems")]  # the tab shows the health indicator instead: "5 ✔ ok", "5 ▲ 2"


class TextLine(Widget):
    """One line of text that changes often (counters, status).

    Unlike ``Static.update`` a change repaints this widget only, with no
    layout pass over the screen; its size comes from CSS, not its content.
    """

    DEFAULT_CSS = "TextLine { height: 1; }"

    def __init__(self, text: Text | None = None, **kw) -> None:
        super().__init__(**kw)
        self.text = text or Text()

    def update(self, text: Text | str) -> None:
        text = Text(text) if isinstance(text, str) else text
        if text.plain != self.text.plain or text.spans != self.text.spans or text.style != self.text.style:
            # (Sized by CSS, not by its text: a repaint, no layout pass.)
            self.text = text
            self.refresh()

    def render(self) -> Text:
        return self.text


class ChangingText(Static):
    """Text that may wrap over several lines and changes now and then (a verdict, a title).

    ``show`` skips the update, which costs a layout pass, when the text is the one shown:
    a live report often moves a few figures and leaves the rest. (``TextLine`` is for one
    line sized by CSS, which needs no layout pass at all.)"""

    _shown: Text | str | None = None

    def show(self, content: Text | str) -> None:
        if content != self._shown:
            self._shown = content
            # A str is shown as it is, never parsed as markup (callers pass trace text through plain() today;
            # this keeps a future caller from forgetting).
            self.update(Text(content) if isinstance(content, str) else content)


# An event ingested this soon after its timestamp is live; older ones are a
# backfill (sample data, a catch-up) whose age says nothing about ingest lag.
LIVE_WINDOW_S = 600.0


def counter_items(counters: Counters, now: float, *, tailing: bool,
                  behind_bytes: int = 0) -> list[tuple[Text, Text]]:
    """The header's counters, most important first, each in a long and a short form.

    Ingest first (whether data is still arriving matters most), then its lag
    or backlog, the open escalations and rejected lines; rates last.
    """
    items: list[tuple[Text, Text]] = []

    def item(*parts: tuple[str, str], short: tuple[tuple[str, str], ...] | None = None) -> None:
        items.append((Text.assemble(*parts), Text.assemble(*(short or parts))))

    if counters.last_ingest_at is None:
        item(("ingest ", ""), ("—", "bold"))
    else:
        age = max(0.0, now - counters.last_ingest_at)
        item(("ingest ", ""), (_ago(age), "bold yellow" if tailing and age > 120 else "bold"))
    if tailing and behind_bytes > 0:
        # Written to the trace files, not in the store yet: the real backlog.
        item(("behind ", ""), (_size(behind_bytes), "bold yellow"))
    elif tailing and counters.last_ingest_at and counters.last_event_ts:
        # How long the newest event took from its timestamp to the store; only
        # for live events (a backfill of old traces is not lag).
        delay = max(0.0, counters.last_ingest_at - counters.last_event_ts)
        if delay < LIVE_WINDOW_S:
            item(("lag ", ""), (_duration(delay), "bold red" if delay > 5 else "bold"))
    count = (f"{counters.open_escalations}", "bold yellow" if counters.open_escalations else "bold")
    item(count, (" open esc", ""), short=(count, (" esc", "")))
    if counters.rejects:
        count = (f"{counters.rejects}", "bold red")
        item(count, (" rejects", ""), short=(count, (" rej", "")))
    count = (f"{counters.errors}", "bold red" if counters.errors else "bold")
    item(count, (" errors/h", ""), short=(count, (" err/h", "")))
    item((f"{counters.tasks_per_min:.0f}", "bold"), (" tasks/min", ""))
    item((f"{counters.events:,}", "bold"), (" events", ""))
    return items


def counters_text(counters: Counters, now: float, *, tailing: bool, behind_bytes: int = 0,
                  width: int | None = None, lines: int = 2) -> Text:
    """The header's counters. ``now`` is the console's clock; the ingest age counts up from it.

    On one line when they fit ``width`` (or no width is given). Otherwise on
    up to ``lines`` lines in their short forms ("3 esc", "4 rej", "0 err/h"),
    the most important first, and what still does not fit is left out from
    the least important end, so an 80-column header keeps ingest, lag,
    escalations and rejects.
    """
    items = counter_items(counters, now, tailing=tailing, behind_bytes=behind_bytes)
    one = Text("  ").join(long for long, _ in items)
    if width is None or one.cell_len <= width:
        return one
    rows, placed = _pack([long for long, _ in items], width, lines)
    if placed < len(items) - 2:  # (the two rates may go; anything more: the short forms)
        rows, placed = _pack([short for _, short in items], width, lines)
    text = Text("\n").join(Text("  ").join(row) for row in rows if row)
    text.justify = "right"
    return text


def _pack(items: list[Text], width: int, lines: int) -> tuple[list[list[Text]], int]:
    """Items in order onto ``lines`` rows, each on the current row or a later one (they read in
    order of importance, left to right, top to bottom); (rows, how many were placed)."""
    rows: list[list[Text]] = [[] for _ in range(lines)]
    placed = current = 0
    for item in items:
        for index in range(current, lines):
            row = rows[index]
            used = sum(t.cell_len for t in row) + 2 * len(row)
            if used + item.cell_len <= width:
                row.append(item)
                placed += 1
                current = index
                break
    return rows, placed


class LiveCounters(TextLine):
    """tasks/min, errors, open escalations, ingest age and lag — from the app's counters.

    Redrawn every second as well as on every change, so "ingest 5m ago" keeps
    counting when nothing arrives (a stuck ingest must not look like a quiet fleet).
    """

    def on_mount(self) -> None:
        self.counters: Counters | None = None
        self.watch(self.app, "counters", self.show)
        self.set_interval(1.0, self.redraw)

    def show(self, counters: Counters | None) -> None:
        self.counters = counters
        self.redraw()

    def redraw(self) -> None:
        if self.counters is None:
            self.update("")
            return
        app = self.app
        tailing = bool(getattr(app, "follow_traces", False) and getattr(app, "trace_paths", None))
        health = getattr(app, "health", None)
        now = app.now() if hasattr(app, "now") else time.time()
        self.update(counters_text(self.counters, now, tailing=tailing,
                                  behind_bytes=getattr(health, "behind_bytes", 0),
                                  width=self.content_region.width or None, lines=self.content_region.height or 2))

    def on_resize(self) -> None:
        self.redraw()


def indicator_text(health: Health) -> Text:
    """The Problems tab's label: the health indicator (how many problems, coloured by the worst)."""
    text = Text("5 ")
    if health.level == "error":
        text.append(f"✖ {len(health.problems)}", "bold red")
    elif health.level == "warn":
        text.append(f"▲ {len(health.problems)}", "bold yellow")
    else:
        text.append("✔ ok", "bold green")
    return text


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def _ago(seconds: float) -> str:
    if seconds < 1:
        return "now"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.0f}h ago"


# Rows the header (DeckHeader, height 2) and the key footer take: a dialog that keeps them in view
# (compensation_dialog, reason_dialog) leaves these free.
HEADER_ROWS, FOOTER_ROWS = 2, 1


def rows_between_chrome(height: int, fixed: int) -> int:
    """Rows a dialog's scrolling part may take on a ``height``-row terminal, once the header, the footer and
    the dialog's ``fixed`` rows are placed (CSS cannot give an auto-height scroll "the rows its siblings
    leave"); at least 3."""
    return max(3, max(8, height - HEADER_ROWS - FOOTER_ROWS) - fixed)


class DeckHeader(Horizontal):
    """Top bar: the screens as tabs (the last one the health indicator) and the live counters."""

    DEFAULT_CSS = """
    DeckHeader { height: 2; dock: top; background: $panel; }
    DeckHeader ScreenTabs { width: 53; height: 2; }
    DeckHeader LiveCounters { width: 1fr; padding: 0 1; content-align: right middle; height: 2; }
    """

    def __init__(self, active: str) -> None:
        super().__init__()
        self.active = active

    def compose(self) -> ComposeResult:
        yield LiveCounters()

    def on_mount(self) -> None:
        # The tab bar comes just after the screen's first frame: Textual's Tabs (ten widgets and their
        # stylesheet) were 35-40 ms of CPU on the way to the console's first paint (bench/console.py),
        # which shows the screen's own content without waiting for them. The bar is on the frame after;
        # its module (and Textual's Tabs) is imported then too.
        self.call_after_refresh(self._mount_tabs)

    _tabs_mounted = False

    def _mount_tabs(self) -> None:
        from agentdeck.console.widgets.screen_tabs import ScreenTabs

        if self.is_attached and not self._tabs_mounted:  # (a console quit right after its first frame: no MountError)
            self._tabs_mounted = True
            self.mount(ScreenTabs(self.active), before=0)

    def ensure_tabs(self) -> None:
        """Called as its screen is shown. The after-refresh call of ``on_mount`` waits on the screen that was on
        top then (Textual queues it there): a screen composed ahead under a screen that went before its next
        frame (a task detail, the help) lost it, and was shown without its tab bar for the rest of the run."""
        if not self._tabs_mounted:
            self.call_after_refresh(self._mount_tabs)


def same_day(a: float | None, b: float | None) -> bool:
    """Both UTC times on the same calendar day (None: no clock to compare with): ``format_clock`` shows a
    time of day alone only then."""
    return a is None or b is None or time.gmtime(a)[:3] == time.gmtime(b)[:3]


def format_clock(ts: float | None, now: float | None = None, *, short: bool = False) -> str:
    """A UTC time of day; with a date whenever it is not ``now``'s day (the app clock).

    Rows from five days ago must not read like today's: "Nov 19 14:22:05"
    (``short``, for an 8-column cell: "Nov 19"; another year: "Nov 2025").
    """
    if ts is None:
        return ""
    t = time.gmtime(ts)
    if now is not None and not same_day(ts, now):
        other_year = t.tm_year != time.gmtime(now).tm_year
        if short:
            return time.strftime("%b %Y" if other_year else "%b %d", t)
        return time.strftime("%Y-%m-%d %H:%M:%S" if other_year else "%b %d %H:%M:%S", t)
    return time.strftime("%H:%M:%S", t)
