"""The Escalations list keeps its cursor on the same escalation when rows above it come
and go, stays at the same position when the row under it leaves, and says so (Highlighted) for the screen's
detail; an empty list selects nothing. The table alone in an app (the screen's reads left out)."""

from __future__ import annotations

import json

from textual.app import App, ComposeResult

from agentdeck.console.widgets.escalation_table import EscalationTable

NOW = 1_800_000_000.0


def row(escalation_id: str) -> dict:
    return {"escalation_id": escalation_id, "deadline": NOW + 600, "ts": NOW - 60, "risk": "high",
            "proposed_action": json.dumps({"system": "iam", "operation": "grant", "amount": 5}), "status": "pending"}


class One(App):
    def __init__(self) -> None:
        super().__init__()
        self.highlighted: list[str | None] = []

    def compose(self) -> ComposeResult:
        yield EscalationTable(id="esc-table")

    def on_escalation_table_highlighted(self, event: EscalationTable.Highlighted) -> None:
        self.highlighted.append(event.escalation_id)


async def test_the_cursor_follows_its_escalation_and_stays_in_place_when_it_leaves():
    app = One()
    async with app.run_test(size=(100, 20)) as pilot:
        table = app.query_one(EscalationTable)
        table.focus()
        table.show([row(k) for k in "abc"], NOW, history=False)
        await pilot.pause()
        await pilot.press("j", "j")
        assert table.selected_id() == "c"
        table.show([row(k) for k in ("x", "y", "a", "b", "c")], NOW, history=False)  # two new rows above
        await pilot.pause()
        assert table.selected_id() == "c" and table.cursor_row == 4
        assert app.highlighted[-1] == "c"
        table.show([row(k) for k in ("b", "c")], NOW, history=False)  # rows above it leave
        await pilot.pause()
        assert table.selected_id() == "c" and table.cursor_row == 1
        table.show([row(k) for k in ("b", "d")], NOW, history=False)  # it leaves (decided)
        await pilot.pause()
        assert table.selected_id() == "d"  # the next one moves under the cursor (the screen reloads the detail)
        table.show([], NOW, history=False)
        await pilot.pause()
        assert table.selected_id() is None and table.row_count == 0
        await pilot.press("j", "k", "enter", "G", "g")  # keys on an empty list: nothing to do, no crash
        table.show([row("z")], NOW, history=False)
        await pilot.pause()
        assert table.selected_id() == "z"


async def test_a_wider_terminal_after_scrolling_sideways_shows_the_columns_from_the_first():
    app = One()
    async with app.run_test(size=(50, 12)) as pilot:
        table = app.query_one(EscalationTable)
        table.focus()
        table.show([row(k * 20) for k in "abc"], NOW, history=False)
        await pilot.pause()
        await pilot.press("right", "right")
        await pilot.pause()
        assert table.scroll_x > 0
        await pilot.resize_terminal(160, 12)
        await pilot.pause()
        await pilot.pause()
        assert table.scroll_x == 0
        header = "".join(s.text for s in table.render_line(0))
        assert header.lstrip().startswith("time left"), header
        first = "".join(s.text for s in table.render_line(1))
        assert "a" * 20 in first, first
