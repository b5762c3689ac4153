"""Enter on a task shows its detail in one draw of the whole screen: Textual laid the pushed screen out and drew
what moved, then drew it all again in the same frame (both sent to the terminal; DeckScreen._on_timer_update).
Shown before, that one draw is made from the detail's frame kept when it was last shown, with only what changed
rendered again (the header, tabs and footer are not: cropped_compositor.FrameKeepingCompositor)."""

from __future__ import annotations

from textual._compositor import LayoutUpdate

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
        real_full = compositor.render_full_update

        def full(*args, **kwargs):
            draws.append("every widget rendered")
            return real_full(*args, **kwargs)

        compositor.render_full_update = full
        written: list[object] = []  # the updates sent to the terminal while the detail is on top
        inner = app._display

        def display(screen, update):
            if update is not None and screen is detail:
                written.append(update)
            inner(screen, update)

        app._display = display
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == task
        # Drawn whole first (a LayoutUpdate covers the screen), not a part of it and then all of it...
        assert written and isinstance(written[0], LayoutUpdate) and written[0].region == app.size.region
        assert not any(isinstance(update, LayoutUpdate) for update in written[1:])
        # ... from the kept frame: the widgets that did not change are not rendered again.
        assert draws == []
        assert f"task {task}" in screen_text(app)
