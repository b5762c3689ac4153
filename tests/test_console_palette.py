"""The command palette: switch screens, filter presets, open or replay a task by id."""

from __future__ import annotations

from agentdeck.console.screens.task_detail import TaskDetailScreen
from agentdeck.console.screens.tasks import TasksScreen
from agentdeck.console.widgets.task_table import TaskTable
from agentdeck.store.db import connect
from tasks_support import settle

SIZE = (140, 40)


async def run_command(app, pilot, text: str) -> None:
    await pilot.press("ctrl+p", *text)
    await settle(app, pilot)
    await pilot.press("enter")
    await settle(app, pilot)


async def test_switch_screen_from_the_palette(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await run_command(app, pilot, "Escalations screen")
        assert app.current_mode == "escalations"


async def test_filter_presets_apply_and_clear(sample_db, make_app):
    conn = connect(sample_db)
    canary = {r[0] for r in conn.execute("SELECT task_id FROM tasks WHERE cohort = 'canary'")}
    conn.close()
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2")  # presets work from any screen
        await run_command(app, pilot, "canary only")
        assert app.current_mode == "tasks"
        table = app.screen.query_one(TaskTable)
        assert table.shown.keys and set(table.shown.keys) <= canary
        assert app.screen.filt.cohort == "canary"
        await run_command(app, pilot, "Clear task filter")
        assert app.screen.filt.empty


async def test_open_and_replay_a_task_by_id(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await run_command(app, pilot, "task-0042")
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == "task-0042"
        await run_command(app, pilot, "Replay task task-0042")
        assert app.current_mode == "replay" and app.replay_task == "task-0042"
        # And by request id.
        await pilot.press("1")
        await run_command(app, pilot, "req-0043")
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == "task-0043"
        await pilot.press("escape")
        await settle(app, pilot)
        assert isinstance(app.screen, TasksScreen)
