"""Promotion and roll back items on the Escalations screen, as a person uses it: keys, the reason dialog, the detail."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import Static

from test_escalations_support import approving, settle
from test_release_queue import _release_template, autonomy, deck_for, items, published_stage, rel  # noqa: F401
from agentdeck.console.widgets.reason_dialog import ReasonDialog

NARROW, WIDE = (80, 24), (160, 45)


def app_for(folder, make_app, **kw):
    deck_for(folder).release_tick()  # the console's tick raised the items (fixed clock: fixed ids)
    kw.setdefault("outbox", folder / "traces" / "outbox" / "decisions.jsonl")
    return make_app(folder / "store.db", [folder / "traces"], follow=False, **kw)


def promotion(folder) -> str:
    return next(r["escalation_id"] for r in items(folder / "store.db") if r["action"] == "promote")


async def select(pilot, escalation_id: str) -> None:
    await pilot.press("2")
    await settle(pilot)
    table = pilot.app.screen.query_one("#esc-table")
    table.move_cursor(row=table.get_row_index(escalation_id))
    await settle(pilot)
    assert table.selected_id() == escalation_id


def detail_text(app) -> str:
    """The pane as a person reads it: its parts shown, top to bottom."""
    parts = (app.screen.query_one(f"#esc-detail-{name}", Static) for name in ("top", "head", "body"))
    return "\n".join(str(p.render()) for p in parts if p.display)


async def test_promotion_item_detail_then_approve_with_a_reason(rel, make_app):
    app = app_for(rel, make_app)
    item = promotion(rel)
    async with app.run_test(size=WIDE) as pilot:
        await select(pilot, item)
        shown = detail_text(app)
        assert "promote records-agent v2 from partial to bounded" in shown
        assert "Verdict PROMOTE" in shown and "action errors" in shown and "1000 tasks" in shown
        assert "no suite run recorded for v2" in shown
        assert "Stage now     partial (contract)" in shown
        await approving(pilot)
        assert isinstance(app.screen, ReasonDialog)
        await pilot.press("enter")  # high risk: an approval needs a reason, as for any escalation
        await settle(pilot)
        assert isinstance(app.screen, ReasonDialog)
        await pilot.press(*"metrics held")
        await pilot.press("enter")
        await settle(pilot)
        assert not isinstance(app.screen, ReasonDialog)
        assert item not in app.screen.rows  # decided: it left the pending queue
        assert published_stage(rel, "records-agent", "v2") == "bounded"
        last = autonomy(rel)[-1]
        assert (last["cause"], last["by"], last["escalation_id"]) == ("promoted", "tester", item)
        # The decided list shows what it did: the decision, and the stage change it published.
        await pilot.press("h")
        await settle(pilot)
        table = app.screen.query_one("#esc-table")
        table.move_cursor(row=table.get_row_index(item))
        await settle(pilot)
        shown = detail_text(app)
        assert "approved by tester" in shown and "metrics held" in shown
        assert "partial → bounded  promoted by tester" in shown and "autonomy.jsonl written" in shown
        assert "Stage now     bounded (promoted by tester)" in shown


async def test_deny_a_roll_back_from_the_queue_lifts_the_demotion(rel, make_app):
    app = app_for(rel, make_app)
    item = next(r["escalation_id"] for r in items(rel / "store.db") if r["action"] == "roll back")
    async with app.run_test(size=WIDE) as pilot:
        await select(pilot, item)
        assert "Stage now     assisted (demoted by verdict)" in detail_text(app)
        await pilot.press("d")
        await pilot.pause()
        await pilot.press(*"downstream outage")
        await pilot.press("enter")
        await settle(pilot)
    assert published_stage(rel, "approval-agent", "v2") == "partial"


@pytest.mark.parametrize("size", [NARROW, WIDE], ids=["80x24", "160x45"])
def test_promotion_item_detail_snapshot(rel, make_app, snap_compare, size):
    # A fixed outbox path (nothing is decided here, so nothing is written): the picture names no temp folder.
    app = app_for(rel, make_app, outbox=Path("/srv/agentdeck/traces/outbox/decisions.jsonl"))
    item = promotion(rel)

    async def run_before(pilot) -> None:
        await select(pilot, item)
        if size == NARROW:  # the detail sits under the list: bring it into view as a person would (tab, scroll)
            app.screen.query_one("#esc-detail").scroll_to(y=0, animate=False)
            await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)



async def test_replay_key_on_a_release_item_says_where_its_evidence_is(rel, make_app):
    app = app_for(rel, make_app)
    async with app.run_test(size=WIDE) as pilot:
        await select(pilot, promotion(rel))
        await pilot.press("r")
        await settle(pilot)
        assert app.screen.query_one("#esc-table")  # still on Escalations: there is no task to replay
        assert any("no task to replay" in str(n.message) for n in app._notifications)


async def test_a_ticking_console_raises_items_without_the_canary_screen_open(rel, make_app):
    app = make_app(rel / "store.db", [rel / "traces"], follow=False, tick=1,
                   outbox=rel / "traces" / "outbox" / "decisions.jsonl")
    async with app.run_test(size=WIDE) as pilot:  # on Tasks; nobody opens Canary
        until = time.monotonic() + 30  # the first tick comes 2 s after start-up
        while len(items(rel / "store.db")) < 2 and time.monotonic() < until:
            await pilot.pause(0.1)
            await settle(pilot, 1)
        assert {r["title"] for r in items(rel / "store.db")} == {
            "roll back approval-agent v2", "promote records-agent v2 from partial to bounded"}
        assert published_stage(rel, "approval-agent", "v2") == "assisted"


async def test_a_failing_release_tick_is_listed_on_problems_until_a_tick_succeeds(rel, make_app, monkeypatch):  # noqa: F811
    from agentdeck.console.service.deck import DeckService

    real = DeckService._release_tick

    def broken(self):
        raise ValueError("contract approval-agent.toml: bad stage 'boundedd'")

    monkeypatch.setattr(DeckService, "_release_tick", broken)
    app = app_for(rel, make_app)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        app.release_tick()
        await app.settled()
        await pilot.pause()
        problem = next(p for p in app.health.problems if p.key == "release")
        assert "Release tick failed" in problem.what and "bad stage 'boundedd'" in problem.detail
        assert app.health.level == "error"
        await pilot.press("5")
        await settle(pilot)
        assert any("Release tick failed" in line for line in pilot.app.screen.query_one("DataTable").get_column_at(1))
        monkeypatch.setattr(DeckService, "_release_tick", real)
        app.release_tick()
        await app.settled()
        await pilot.pause()
        assert all(p.key != "release" for p in app.health.problems), "cleared once a tick succeeds"


async def test_a_second_passing_redraws_only_the_release_items_clock_lines(rel, make_app, fixed_clock):
    # Raised ... ago and the time to the deadline move every second; the verdict table, suite and stage
    # changes (long, re-wrapped whenever set) are set again only when they change. The pane reads as one text.
    from agentdeck.console.widgets.escalation_detail import render

    now = [fixed_clock()]
    app = app_for(rel, make_app, clock=lambda: now[0])
    item = promotion(rel)
    async with app.run_test(size=WIDE) as pilot:
        await select(pilot, item)
        top, head, body = (app.screen.query_one(f"#esc-detail-{part}", Static) for part in ("top", "head", "body"))
        assert top.display and head.display
        assert detail_text(app) == str(render(app.screen.view, now[0], app.screen.deck.on_expiry))
        before = {w.id: w.content for w in (top, head, body)}
        now[0] += 1
        app.screen.reload()
        await settle(pilot)
        assert head.content is not before["esc-detail-head"], "the age and deadline moved"
        assert top.content is before["esc-detail-top"] and body.content is before["esc-detail-body"], \
            "nothing else changed: not set again"
        assert detail_text(app) == str(render(app.screen.view, now[0], app.screen.deck.on_expiry))
        moved = head.content
        app.screen.reload()  # the same second again (a store change heard): nothing is set again
        await settle(pilot)
        assert head.content is moved and body.content is before["esc-detail-body"]
