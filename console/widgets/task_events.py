"""A task's events as people read them: one line each, and the full payload.

Payloads are untrusted JSON from trace files: they are parsed (never
evaluated), pretty-printed and passed through ``console.safe`` before they
reach a widget.
"""

from __future__ import annotations

import json

from rich.text import Text
from textual.binding import Binding
from textual.geometry import Region
from textual.strip import Strip

from agentdeck.console.safe import clean, plain
from agentdeck.console.service.views import Row
from agentdeck.console.widgets.chrome import format_clock
from agentdeck.console.widgets.line_table import LineTable
from agentdeck.replay.step_text import step_detail

SUMMARY_LIMIT = 160
PAYLOAD_LIMIT = 50_000  # characters of pretty JSON shown for one event
KIND_STYLE = {
    "task_start": "bold",
    "escalation": "bold magenta",
    "decision": "magenta",
    "action": "bold cyan",
    "compensation": "cyan",
    "policy_check": "yellow",
    "task_end": "bold",
}


def load_payload(raw: str) -> dict:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def payload_text(raw: str) -> Text:
    """An event's payload, pretty-printed and safe to show."""
    try:
        pretty = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        pretty = raw
    return plain(pretty, PAYLOAD_LIMIT)


# seq needs 7 columns: task_end and OpenTelemetry steps use 7-digit seqs (store/otlp.py).
EVENT_COLUMNS = (("seq", "seq", 7), ("time", "time", 12), ("kind", "kind", 12), ("what", "what", 42))


def event_cells(row: Row) -> tuple[Text, ...]:
    payload = load_payload(row["payload"])
    try:
        what = step_detail(row["kind"], payload)
    except (TypeError, ValueError, AttributeError):  # an odd payload still gets its row
        what = ""
    millis = f"{row['ts'] % 1:.3f}"[1:]
    return (
        Text(str(row["seq"]), justify="right"),
        Text(format_clock(row["ts"]) + millis),
        plain(row["kind"], 20, style=KIND_STYLE.get(row["kind"], "")),
        Text(clean(what, SUMMARY_LIMIT, single_line=True)),
    )


class EventTable(LineTable):
    """A task's events in seq order (cells built only for the rows drawn)."""

    COLUMNS = EVENT_COLUMNS
    BINDINGS = [Binding("enter", "select_cursor", "Payload", show=False)]

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.event_ids: list[int] = []

    def cells_for(self, row: Row) -> tuple[Text, ...]:
        return event_cells(row)

    def on_resize(self) -> None:
        self._fit_columns()

    def render_lines(self, crop: Region) -> list[Strip]:
        # The room may have changed in the layout this frame draws (a task whose events need a scrollbar after
        # one whose did not): fitted now, the frame has the columns the Resize handled after it would have set,
        # and no second frame redraws every line with them.
        self._fit_columns(refresh=False)
        return super().render_lines(crop)

    def _fit_columns(self, *, refresh: bool = True) -> None:
        # "what" takes the room the other columns leave: no empty space beside
        # a cut summary on a wide terminal, no column cut off at the edge at 80.
        others = sum(w + 2 for key, _, w in EVENT_COLUMNS if key != "what")
        room = self.scrollable_content_region.width - others - 2
        width = max(20, min(room, SUMMARY_LIMIT))
        self.set_columns(tuple((key, label, width if key == "what" else w) for key, label, w in EVENT_COLUMNS),
                         refresh=refresh)

    def show_events(self, rows: list[Row]) -> None:
        ids = [r["id"] for r in rows]
        if ids == self.event_ids:
            return
        current = self.event_ids[self.cursor_row] if self.event_ids and self.row_count else None
        # A live task: its new events came after the shown ones, which keep their cells.
        keep = len(self.event_ids) if self.event_ids and ids[: len(self.event_ids)] == self.event_ids else 0
        self.event_ids = ids
        self.set_rows(rows, keep=keep)
        self.move_cursor(row=ids.index(current) if current in ids else 0)
