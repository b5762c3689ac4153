"""SVG snapshots of the Escalations screen and the reason dialog (fixed size, clock and data)."""

from __future__ import annotations

import pytest

from conftest import FIXED_NOW
from agentdeck.console.service.delivery import DeliverySettings, deliver_one
from agentdeck.store import decisions
from agentdeck.store.db import connect
from test_escalations_support import esc_db, settle  # noqa: F401  (fixture)

SIZE = (140, 40)
NARROW, WIDE = (80, 24), (160, 45)


def steps(*keys: str):
    async def run_before(pilot) -> None:
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


def test_pending_queue_with_high_risk_detail(esc_db, make_app, snap_compare):
    app = make_app(esc_db, allow_hosts=frozenset({"127.0.0.1"}))
    assert snap_compare(app, terminal_size=SIZE, run_before=steps("2", "down"))


def test_hostile_escalation_shown_literally(esc_db, make_app, snap_compare):
    app = make_app(esc_db)
    assert snap_compare(app, terminal_size=SIZE, run_before=steps("2", "down", "down"))


@pytest.mark.parametrize("size", [SIZE, NARROW], ids=["140x40", "80x24"])
def test_decided_view_with_delivery_state(esc_db, make_app, snap_compare, tmp_path, size):
    # Three decisions made through the real paths: delivered to the outbox,
    # blocked (callback host not allowed), failed (expiry; nowhere to deliver).
    conn = connect(esc_db)
    decisions.decide(conn, "esc-t-low", "approve", by="alice", reason="small refund", now=FIXED_NOW - 60)
    decisions.decide(conn, "esc-t-hostile", "deny", by="bob", reason="[bold]no[/bold]", now=FIXED_NOW - 30)
    decisions.expire_due(conn, now=FIXED_NOW, policy="deny")
    assert deliver_one(conn, "esc-t-low", DeliverySettings(tmp_path / "box.jsonl", frozenset())) == "delivered"
    assert deliver_one(conn, "esc-t-hostile", DeliverySettings(tmp_path / "box.jsonl", frozenset())) == "blocked"
    assert deliver_one(conn, "esc-t-expired", DeliverySettings(None, frozenset())) == "failed"
    conn.close()
    app = make_app(esc_db)

    async def run_before(pilot) -> None:
        await steps("2", "h")(pilot)
        table = pilot.app.screen.query_one("#esc-table")
        table.move_cursor(row=table.get_row_index("esc-t-hostile"))
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_reason_dialog_for_a_deny(esc_db, make_app, snap_compare):
    app = make_app(esc_db)
    assert snap_compare(app, terminal_size=SIZE, run_before=steps("2", "down", "d", "enter"))


@pytest.mark.parametrize("size", [NARROW, WIDE], ids=["80x24", "160x45"])
def test_pending_queue_fits_the_terminal(esc_db, make_app, snap_compare, size):
    # At 80 columns the detail sits under the list, which keeps time left, risk, id, action, amount.
    app = make_app(esc_db, allow_hosts=frozenset({"127.0.0.1"}))
    assert snap_compare(app, terminal_size=size, run_before=steps("2", "down"))


async def test_detail_moves_under_the_list_when_narrow_and_back_when_wide(esc_db, make_app):
    app = make_app(esc_db)
    async with app.run_test(size=NARROW) as pilot:
        await steps("2")(pilot)
        screen = app.screen
        table, detail = screen.query_one("#esc-table").region, screen.query_one("#esc-detail").region
        assert detail.y >= table.bottom and table.width >= 78  # below, and the list has the full width
        await pilot.resize_terminal(*WIDE)
        await settle(pilot)
        table, detail = screen.query_one("#esc-table").region, screen.query_one("#esc-detail").region
        assert detail.x >= table.right and detail.y <= table.y  # beside it again
