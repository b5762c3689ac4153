"""What every screen shows around its content: tab bar and live counters."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Tab, Tabs

from agentdeck.console.service.views import Counters

SCREENS = [("tasks", "1 Tasks"), ("escalations", "2 Escalations"), ("canary", "3 Canary"), ("replay", "4 Replay")]


class ScreenTabs(Tabs, can_focus=False):
    """Tab bar mirroring the app's modes; clicking a tab switches screen.

    Not focusable: the keyboard stays on each screen's content (number keys
    switch screens), so j/k never land on the tabs.
    """

    def __init__(self, active: str) -> None:
        super().__init__(*[Tab(label, id=f"tab-{mode}") for mode, label in SCREENS], active=f"tab-{active}")
        self.mode = active

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        mode = (event.tab.id or "").removeprefix("tab-")
        if mode and mode != self.mode:
            self.app.switch_mode(mode)


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


class LiveCounters(TextLine):
    """tasks/min, errors, open escalations, ingest lag — from the app's counters."""

    def on_mount(self) -> None:
        self.watch(self.app, "counters", self.show)

    def show(self, counters: Counters | None) -> None:
        if counters is None:
            self.update("")
            return
        now = self.app.now()
        lag = "—"
        if counters.last_ingest_at is not None and counters.last_event_ts is not None:
            lag = _ago(max(0.0, now - counters.last_ingest_at))
        text = Text()
        text.append(f"{counters.tasks_per_min:.0f}", "bold")
        text.append(" tasks/min  ")
        text.append(f"{counters.errors}", "bold red" if counters.errors else "bold")
        text.append(" errors/h  ")
        text.append(f"{counters.open_escalations}", "bold yellow" if counters.open_escalations else "bold")
        text.append(" open esc  ")
        text.append(f"{counters.events:,}", "bold")
        text.append(" events  ")
        if counters.rejects:
            text.append(f"{counters.rejects}", "bold red")
            text.append(" rejects  ")
        text.append("ingest ")
        text.append(lag, "bold")
        tailing = getattr(self.app, "follow_traces", False) and getattr(self.app, "trace_paths", None)
        if tailing and counters.last_ingest_at and counters.last_event_ts:
            # How long the newest ingested event took from its timestamp to the
            # store (only while tailing: for a browsed store it means nothing).
            delay = max(0.0, counters.last_ingest_at - counters.last_event_ts)
            text.append("  lag ")
            text.append(_duration(delay), "bold red" if delay > 5 else "bold")
        self.update(text)


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


class DeckHeader(Horizontal):
    """Top bar: the screens as tabs, and the live counters."""

    DEFAULT_CSS = """
    DeckHeader { height: 2; dock: top; background: $panel; }
    DeckHeader ScreenTabs { width: 46; height: 2; }
    DeckHeader LiveCounters { width: 1fr; padding: 0 1; content-align: right middle; height: 2; }
    """

    def __init__(self, active: str) -> None:
        super().__init__()
        self.active = active

    def compose(self) -> ComposeResult:
        yield ScreenTabs(self.active)
        yield LiveCounters()


def format_clock(ts: float | None) -> str:
    if ts is None:
        return ""
    return time.strftime("%H:%M:%S", time.gmtime(ts))
