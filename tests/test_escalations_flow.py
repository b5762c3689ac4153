"""Deciding escalations from the console with the keyboard: approve, deny, expired items, two consoles."""

from __future__ import annotations

from textual.widgets import Input

from conftest import FIXED_NOW
from agentdeck.console.service.deck import DeckService
from agentdeck.console.service.settings import for_tests
from agentdeck.console.widgets.escalation_detail import render
from agentdeck.console.widgets.reason_dialog import ReasonDialog
from agentdeck.store import audit
from agentdeck.store.db import connect
from test_escalations_support import (  # noqa: F401  (fixture)
    HOSTILE_JUSTIFICATION, HOSTILE_PARAM, HOSTILE_REASON, approving, audit_records, esc_db, row_of, settle,
)

# Queue order at FIXED_NOW (soonest deadline first): expired, high, hostile, low.
ORDER = ["esc-t-expired", "esc-t-high", "esc-t-hostile", "esc-t-low"]


async def select(pilot, escalation_id: str) -> None:
    await pilot.press("2")
    await settle(pilot)
    table = pilot.app.screen.query_one("#esc-table")
    await pilot.press("g", *["down"] * ORDER.index(escalation_id))
    await settle(pilot)
    assert table.selected_id() == escalation_id


async def test_queue_is_ordered_by_deadline_then_risk(esc_db, make_app, tmp_path):
    app = make_app(esc_db, outbox=tmp_path / "box.jsonl")  # with an outbox no agent is orphaned (docs/decisions.md)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        table = app.screen.query_one("#esc-table")
        assert [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)] == ORDER
        assert str(table.get_row_at(0)[0]).startswith("EXPIRED")


async def test_approve_low_risk_without_reason(esc_db, make_app, tmp_path):
    app = make_app(esc_db, operator="alice", outbox=tmp_path / "box.jsonl")
    async with app.run_test(size=(140, 40)) as pilot:
        await select(pilot, "esc-t-low")
        await approving(pilot)
        assert isinstance(app.screen, ReasonDialog)
        await pilot.press("enter")
        await settle(pilot)
        assert not isinstance(app.screen, ReasonDialog)
        # Decided: it leaves the pending queue.
        assert "esc-t-low" not in app.screen.rows
    row = row_of(esc_db, "esc-t-low")
    assert (row["status"], row["decided_by"], row["decided_at"]) == ("approved", "alice", FIXED_NOW)
    [rec] = audit_records(esc_db, "esc-t-low")
    assert (rec["actor"], rec["kind"], rec["detail"]["decision"]) == ("alice", "decision", "approve")


async def test_deny_without_reason_is_refused_then_denied_with_reason(esc_db, make_app):
    app = make_app(esc_db)
    async with app.run_test(size=(140, 40)) as pilot:
        await select(pilot, "esc-t-low")
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ReasonDialog), "an empty deny must not be accepted"
        assert "reason is required" in str(app.screen.query_one("#reason-error").render())
        assert row_of(esc_db, "esc-t-low")["status"] == "pending"
        await pilot.press(*"dup")
        await pilot.press("enter")
        await settle(pilot)
        assert not isinstance(app.screen, ReasonDialog)
    row = row_of(esc_db, "esc-t-low")
    assert (row["status"], row["decided_by"], row["decision_reason"]) == ("denied", "tester", "dup")
    [rec] = audit_records(esc_db, "esc-t-low")
    assert rec["detail"]["reason"] == "dup"


async def test_approving_high_risk_needs_a_reason_and_escape_cancels(esc_db, make_app):
    app = make_app(esc_db)
    async with app.run_test(size=(140, 40)) as pilot:
        await select(pilot, "esc-t-high")
        await approving(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ReasonDialog)
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, ReasonDialog)
        assert row_of(esc_db, "esc-t-high")["status"] == "pending"
        assert audit_records(esc_db, "esc-t-high") == []
        await approving(pilot)
        app.screen.query_one(Input).value = "owner confirmed on call"
        await pilot.press("enter")
        await settle(pilot)
    assert row_of(esc_db, "esc-t-high")["decision_reason"] == "owner confirmed on call"


async def test_deciding_an_expired_item_applies_the_policy_and_says_so(esc_db, make_app):
    app = make_app(esc_db)  # default expiry policy: deny
    async with app.run_test(size=(140, 40)) as pilot:
        await select(pilot, "esc-t-expired")
        await approving(pilot)
        assert "expiry policy (deny) will decide it" in str(app.screen.query_one("#reason-note").render())
        await pilot.press("enter")
        await settle(pilot)
        messages = [n.message for n in app._notifications]
    row = row_of(esc_db, "esc-t-expired")
    assert (row["status"], row["decided_by"]) == ("denied", "expiry-policy")
    assert any("passed its deadline" in m and "denied" in m and "you asked to approve" in m for m in messages)
    [rec] = audit_records(esc_db, "esc-t-expired")
    assert rec["detail"]["requested_by"] == "tester"


async def test_keep_policy_leaves_the_expired_item_to_the_human(esc_db, make_app):
    app = make_app(esc_db, on_expiry="keep")
    async with app.run_test(size=(140, 40)) as pilot:
        await select(pilot, "esc-t-expired")
        await approving(pilot)
        await pilot.press("enter")
        await settle(pilot)
    row = row_of(esc_db, "esc-t-expired")
    assert (row["status"], row["decided_by"]) == ("approved", "tester")


async def test_two_consoles_on_one_store_first_decision_wins(esc_db, make_app):
    first = make_app(esc_db, operator="alice")
    second = make_app(esc_db, operator="bob")
    async with first.run_test(size=(140, 40)) as p1, second.run_test(size=(140, 40)) as p2:
        # Both show the escalation as pending.
        await select(p1, "esc-t-low")
        await select(p2, "esc-t-low")
        # Bob's console would notice Alice's commit within milliseconds (PRAGMA
        # data_version) and drop the row; stop its store watcher so his view is
        # stale, the case this test is about.
        second.ingest.close()
        await approving(p1)
        await p1.press("enter")
        await settle(p1)
        # Bob's console still lists it (stale view) and he denies it.
        assert second.screen.rows["esc-t-low"]["status"] == "pending"
        await p2.press("d")
        await p2.pause()
        await p2.press(*"late")
        await p2.press("enter")
        await settle(p2)
        messages = [n.message for n in second._notifications]
    assert any("already approved by alice at 15:00:00" in m and "Nothing changed" in m for m in messages)
    row = row_of(esc_db, "esc-t-low")
    assert (row["status"], row["decided_by"], row["decision_reason"]) == ("approved", "alice", "")
    assert [r["actor"] for r in audit_records(esc_db, "esc-t-low")] == ["alice"]
    assert audit.verify(connect(esc_db))[1] == []


async def test_hostile_trace_strings_are_shown_literally(esc_db, make_app):
    app = make_app(esc_db)
    async with app.run_test(size=(140, 40)) as pilot:
        await select(pilot, "esc-t-hostile")
        # The [@click=app.quit] in the justification did nothing: the app is still here.
        assert app.is_running and app.current_mode == "escalations"
        await pilot.click("#esc-detail-body")
        await settle(pilot)
        assert app.is_running
        shown = str(app.screen.query_one("#esc-detail-body").render())
    assert "[bold]needs a human[/bold]" in shown
    assert "[@click=app.quit]click me[/]" in shown
    assert "\x1b" not in shown and "\x07" not in shown
    assert "␛]8;;http://evil.example/\\x07link" in shown
    assert "[@click=app.quit]x␛[2J" in shown


def test_detail_render_has_no_markup_or_escapes(esc_db):
    view = DeckService(for_tests(esc_db)).escalation("esc-t-hostile")
    text = render(view, FIXED_NOW)
    assert HOSTILE_REASON.replace("\x1b", "␛") in text.plain
    assert "\x1b" not in text.plain
    # No span of the rendered text carries a link or click meta from the trace.
    assert all("@click" not in str(span.style) and "link" not in str(span.style) for span in text.spans)
    assert "blocked: host hooks.example.com:80 is not on the operator's allowlist" in text.plain
    assert HOSTILE_PARAM not in text.plain  # the raw form (with ESC) never appears
    assert HOSTILE_JUSTIFICATION.replace("\x1b", "␛").replace("\x07", "\\x07") in text.plain


async def test_hostile_escalation_id_in_notifications_is_not_markup(esc_db, make_app, tmp_path):
    from test_escalations_support import _task, ingest_events

    hostile_task = "t-[@click=app.quit]x[/]"
    ingest_events(esc_db, _task(hostile_task, raised=FIXED_NOW - 10, deadline=FIXED_NOW + 2400, risk="low",
                                system="crm", operation="update_record", params={}), tmp_path / "more")
    app = make_app(esc_db)
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("G")  # the bottom of the queue
        await settle(pilot)
        assert app.screen.query_one("#esc-table").selected_id() == f"esc-{hostile_task}"
        await approving(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.is_running
        await pilot.pause()
        from textual.widgets._toast import Toast

        shown = [str(toast.render()) for toast in app.screen.query(Toast)]
    # The toast on screen shows the id as typed, not as a (clickable) markup tag.
    assert any(f"esc-{hostile_task}" in text for text in shown), shown
    assert row_of(esc_db, f"esc-{hostile_task}")["status"] == "approved"


async def test_r_opens_the_task_in_replay(esc_db, make_app):
    app = make_app(esc_db)
    async with app.run_test(size=(140, 40)) as pilot:
        await select(pilot, "esc-t-high")
        await pilot.press("r")
        await settle(pilot)
        assert app.current_mode == "replay" and app.replay_task == "t-high"


def test_expired_detail_says_what_the_policy_will_do(esc_db):
    view = DeckService(for_tests(esc_db)).escalation("esc-t-expired")
    assert "the expiry policy (deny) decides it" in render(view, FIXED_NOW, "deny").plain
    assert "your decision still applies" in render(view, FIXED_NOW, "keep").plain
