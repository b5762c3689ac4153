"""Enter on a task shows its detail in one draw of the whole screen: Textual laid the pushed screen out and drew
what moved, then drew it all again in the same frame (both sent to the terminal; DeckScreen._on_timer_update)."""

from __future__ import annotations

from agentdeck.console.screens.task_detail import TaskDetailScreen
from agentdeck.console.widgets.task_table import TaskTable
from tasks_support import screen_text, settle

SIZE = (140, 40)


async def test_enter_draws_the_tasks_detail_once_whole(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("enter")  # (the detail screen composed, once)
        await settle(app, pilot)
        await pilot.press("escape", "k")
        await settle(app, pilot)
        task = app.screen.query_one(TaskTable).cursor_task
        detail = app.get_screen("task-detail")
        compositor = detail._compositor
        draws: list[str] = []
        for name in ("render_full_update", "render_partial_update"):
            real = getattr(compositor, name)

            def counted(*args, _real=real, _name=name, **kwargs):
                update = _real(*args, **kwargs)
                if update is not None:
                    draws.append(_name)
                return update

            setattr(compositor, name, counted)
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == task
        assert draws[:1] == ["render_full_update"]  # drawn whole first, not a part of it and then all of it
        assert f"task {task}" in screen_text(app)
