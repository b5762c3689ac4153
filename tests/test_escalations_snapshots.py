"""SVG snapshots of the Escalations screen and the reason dialog (fixed size, clock and data)."""

from __future__ import annotations

from test_escalations_support import esc_db, settle  # noqa: F401  (fixture)

SIZE = (140, 40)


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


def test_decided_view_with_delivery_state(esc_db, make_app, snap_compare):
    app = make_app(esc_db)
    assert snap_compare(app, terminal_size=SIZE, run_before=steps("2", "h"))


def test_reason_dialog_for_a_deny(esc_db, make_app, snap_compare):
    app = make_app(esc_db)
    assert snap_compare(app, terminal_size=SIZE, run_before=steps("2", "down", "d", "enter"))
