"""The Escalations detail follows the queue as other consoles decide: it always shows the row under the cursor.

The queue and the selected escalation's detail are read together on each store change
(console/screens/escalations.py), so these pin that the detail read along is the cursor's.
"""

from __future__ import annotations

import time

from agentdeck.store import decisions
from agentdeck.store.db import connect
from test_escalations_flow import select
from test_escalations_support import esc_db, settle  # noqa: F401  (fixture)


async def wait_for(pilot, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the console did not show the change"
        await settle(pilot, rounds=1)


async def test_detail_follows_the_cursor_while_another_console_decides(esc_db, make_app):
    app = make_app(esc_db)
    async with app.run_test(size=(140, 40)) as pilot:
        await select(pilot, "esc-t-hostile")
        table = app.screen.query_one("#esc-table")
        assert app.screen.view.row["escalation_id"] == "esc-t-hostile"
        other = connect(esc_db)
        # Another console decides a different escalation: the queue shrinks, the cursor and detail stay.
        assert decisions.decide(other, "esc-t-low", "deny", by="bob", reason="no", now=time.time()).applied
        await wait_for(pilot, lambda: "esc-t-low" not in app.screen.rows)
        await settle(pilot)
        assert table.selected_id() == "esc-t-hostile"
        assert app.screen.view.row["escalation_id"] == "esc-t-hostile"
        assert app.screen.view.row["status"] == "pending"
        # Then the selected one itself: it leaves the list and the detail is the escalation now under the cursor.
        assert decisions.decide(other, "esc-t-hostile", "deny", by="bob", reason="no", now=time.time()).applied
        await wait_for(pilot, lambda: "esc-t-hostile" not in app.screen.rows)
        await settle(pilot)
        now_selected = table.selected_id()
        assert now_selected is not None and now_selected != "esc-t-hostile"
        assert app.screen.view.row["escalation_id"] == now_selected
        other.close()


async def test_an_emptied_queue_shows_no_detail(esc_db, make_app):
    app = make_app(esc_db)
    async with app.run_test(size=(140, 40)) as pilot:
        await select(pilot, "esc-t-low")
        other = connect(esc_db)
        for escalation_id in ("esc-t-expired", "esc-t-high", "esc-t-hostile", "esc-t-low"):
            decisions.decide(other, escalation_id, "deny", by="bob", reason="no", now=time.time())
        other.close()
        await wait_for(pilot, lambda: not app.screen.rows)
        await settle(pilot)
        assert app.screen.query_one("#esc-table").selected_id() is None
        assert app.screen.view is None


async def test_a_tick_redraws_only_the_lines_of_the_detail_that_move(esc_db, make_app):
    # Deadline and age move every second; the rest of the pane (request, parameters, justification, steps:
    # long, re-wrapped whenever it is set) is set again only when it changes. The pane reads as one text.
    from textual.widgets import Static

    from conftest import FIXED_NOW
    from agentdeck.console.widgets.escalation_detail import render

    now = [FIXED_NOW]
    app = make_app(esc_db, clock=lambda: now[0])
    async with app.run_test(size=(140, 40)) as pilot:
        await select(pilot, "esc-t-high")
        head, body = (app.screen.query_one(f"#esc-detail-{part}", Static) for part in ("head", "body"))

        def shown() -> str:
            return f"{head.content}\n{body.content}"

        assert shown() == str(render(app.screen.view, now[0], app.screen.deck.on_expiry))
        before_head, before_body = head.content, body.content
        now[0] += 1
        app.screen.reload()
        await settle(pilot)
        assert "in 9m59s" in str(head.content) and head.content is not before_head, "the deadline moved"
        assert body.content is before_body, "nothing else changed: not set again"
        assert shown() == str(render(app.screen.view, now[0], app.screen.deck.on_expiry))
        await pilot.press("j")  # another escalation: all of it
        await settle(pilot)
        assert body.content is not before_body
        assert shown() == str(render(app.screen.view, now[0], app.screen.deck.on_expiry))


async def test_a_detail_read_answering_after_the_queue_emptied_is_not_shown(esc_db, make_app):
    # The queue shrinks in two reloads (another console deciding them all): the cursor lands on a row still
    # listed by the first, whose detail is read; the second empties the list and shows no detail at once. The
    # detail read, answering after that, showed a decided escalation beside the empty queue.
    app = make_app(esc_db)
    async with app.run_test(size=(140, 40)) as pilot:
        await select(pilot, "esc-t-low")
        screen = app.screen
        screen.load_detail("esc-t-high")  # the row the cursor landed on: read on a worker
        screen.load_detail(None)  # the queue emptied before it answered: nothing under the cursor
        assert screen.view is None
        await settle(pilot)
        assert screen.view is None, "a detail shown with nothing under the cursor"
