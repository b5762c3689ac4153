"""The Replay timeline: one line a step, rendered lazily (a 10,000-step task costs nothing to show).

A line API ``ScrollView``: only the visible lines are built, each from the
step's (untrusted) title cleaned by ``console.safe.clean`` into a plain
segment — never parsed as markup. The cursor is a reactive; moving it posts
``ReplayTimeline.Moved`` so the screen can show the step's detail.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, UTC

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from agentdeck.console.keymap import LIST_BINDINGS
from agentdeck.console.widgets.list_moves import ListMoves
from agentdeck.console.safe import clean
from agentdeck.console.service.views import DECISION_KINDS, Step

KIND_STYLE = {
    "task_start": "bold",
    "plan": "cyan",
    "reasoning": "dim",
    "tool_call": "blue",
    "tool_result": "blue",
    "policy_check": "magenta",
    "escalation": "bold yellow",
    "decision": "bold yellow",
    "action": "bold green",
    "compensation": "bold red",
    "task_end": "bold",
    "gap": "bold red",
}
TITLE_LIMIT = 300
LINES_KEPT_PER_SCREEN = 200  # built lines kept: a few screens' worth (cleared beyond four times this)


def _clock(ts: float | None) -> str:
    if ts is None:
        return "            "
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:12]


class ReplayTimeline(ListMoves, ScrollView, can_focus=True):
    DEFAULT_CSS = """
    ReplayTimeline { background: $surface; }
    ReplayTimeline > .replay-timeline--cursor { background: $accent 40%; text-style: bold; }
    ReplayTimeline:focus > .replay-timeline--cursor { background: $accent; }
    """
    COMPONENT_CLASSES = {"replay-timeline--cursor"}
    BINDINGS = LIST_BINDINGS  # j/k, g/G, Home/End, page keys: as on every list

    def _page_rows(self) -> int:
        return max(1, self.scrollable_content_region.height)

    def go_row(self, row: int) -> None:
        self.cursor = row  # validate_cursor clamps

    def _cursor_at(self) -> int:
        return self.cursor

    def _row_total(self) -> int:
        return len(self.steps)

    cursor: reactive[int] = reactive(0, always_update=True)

    class Moved(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.steps: Sequence[Step] = []
        self._width = 80
        # Built lines by (index, under the cursor, width, base style, cursor style): a frame redraws every
        # visible line (the cursor moved, the detail pane changed) and each cost ~0.3 ms to build again.
        self._lines: dict[tuple, Strip] = {}
        self._frame: tuple[Style, Style, int, int] | None = None  # styles, width, offset for the lines being drawn

    def set_steps(self, steps: Sequence[Step], cursor: int = 0) -> None:
        self.steps = steps
        self._lines.clear()
        self._width = 80
        self.virtual_size = Size(self._width, len(steps))
        self.cursor = max(0, min(cursor, len(steps) - 1))
        self.refresh()

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self.steps) - 1)) if self.steps else 0

    def watch_cursor(self, old: int, new: int) -> None:
        if not self.steps:
            return
        self.scroll_to_region(Region(0, new, 1, 1), animate=False, immediate=True)
        self.refresh()
        self.post_message(self.Moved(new))

    def line_text(self, step: Step) -> list[tuple[str, str]]:
        mark = "◆" if step.kind in DECISION_KINDS else " "
        seq = "" if step.seq is None else str(step.seq)
        return [
            (f"{mark}{seq:>7} {_clock(step.ts)} ", "dim"),  # 7 digits: task_end, OpenTelemetry steps
            (f"{step.kind:<13}", KIND_STYLE.get(step.kind, "")),
            (clean(step.title, TITLE_LIMIT, single_line=True), "red" if step.is_gap else ""),
        ]

    def render_lines(self, crop: Region) -> list[Strip]:
        # The styles, width and offset are the same for every line of one draw: looked up once for it
        # (each lookup walks the DOM; per line they were a third of the timeline's drawing).
        self._frame = self._frame_now()
        try:
            return super().render_lines(crop)
        finally:
            self._frame = None

    def _frame_now(self) -> tuple[Style, Style, int, int]:
        return (self.rich_style, self.get_component_rich_style("replay-timeline--cursor"),
                self.scrollable_content_region.width, self.scroll_offset.y)

    def render_line(self, y: int) -> Strip:
        frame = self._frame or self._frame_now()  # (or called on its own, not through render_lines)
        base, cursor_style, width, top = frame
        index = top + y
        if index >= len(self.steps):
            return Strip.blank(width, base)
        key = (index, index == self.cursor, width, base, cursor_style)
        strip = self._lines.get(key)
        if strip is None:
            if len(self._lines) > 4 * LINES_KEPT_PER_SCREEN:
                self._lines.clear()
            strip = self._lines[key] = self._build_line(self.steps[index], base,
                                                        cursor_style if index == self.cursor else None, width)
        return strip

    def _build_line(self, step: Step, base: Style, style_cursor: Style | None, width: int) -> Strip:
        segments = []
        for text, style in self.line_text(step):
            s = base + Style.parse(style) if style else base
            if style_cursor is not None:
                s = s + style_cursor
            segments.append(Segment(text, s))
        return Strip(segments).crop_extend(0, width, base + style_cursor if style_cursor else base)

    def on_click(self, event: events.Click) -> None:
        index = self.scroll_offset.y + event.y
        if 0 <= index < len(self.steps):
            self.cursor = index
