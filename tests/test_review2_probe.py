from __future__ import annotations

import pytest

from test_escalations_support import esc_db, settle  # noqa: F401
from test_switch_ahead import back_on_tasks
from test_switch_keys_at_once import stacks, type_at_once


@pytest.mark.parametrize("old", [False, True])
async def test_probe_deny_then_digits(esc_db, make_app, old):
    app = make_app(esc_db)
    if old:
        app._switch_key = lambda key: None
    async with back_on_tasks(app) as pilot:
        await pilot.press("2")
        await settle(pilot)
        await type_at_once(pilot, "d", "2", "x")
        print(old, stacks(app), app.current_mode, app.focused, getattr(app.focused, "value", None))
        print([n.message for n in app._notifications])
        assert app.current_mode == "escalations"
