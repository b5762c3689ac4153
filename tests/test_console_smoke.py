"""The console opens on the sample store and every screen is reachable by its number key."""

from __future__ import annotations

from agentdeck.console.widgets.task_table import TaskTable


async def test_number_keys_switch_screens(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        assert app.current_mode == "tasks"
        for key, mode in (("2", "escalations"), ("3", "canary"), ("4", "replay"), ("1", "tasks")):
            await pilot.press(key)
            assert app.current_mode == mode
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen.query_one(TaskTable).row_count > 0
