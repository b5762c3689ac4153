"""A live row while following is drawn the moment its read is applied (DeckScreen.draw_now), and drawn right.

What the operator relies on: a new task shows on the frame composed as its read lands, not a few event-loop
trips later; and that frame is the screen Textual's own path would draw (the same text once settled).
"""

from __future__ import annotations

from agentdeck.console.messages import Ingested
from agentdeck.console.screens.base import DeckScreen
from agentdeck.console.screens.tasks import TasksScreen
from agentdeck.console.widgets.task_table import TaskTable
from tasks_support import ingest, screen_text, settle, task_lines, wait_until, write_trace

SIZE = (140, 40)


async def test_a_new_task_while_following_is_on_the_frame_composed_as_its_read_lands(sample_db, make_app, tmp_path):
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, TasksScreen) and screen.follow
        table = screen.query_one(TaskTable)
        drawing = {"now": False}
        first_frame: dict[str, bool] = {}  # task -> whether the frame that first showed it was draw_now's
        inner_display, inner_draw = app._display, DeckScreen.draw_now

        def display(shown_screen, renderable):
            inner_display(shown_screen, renderable)
            if renderable is not None:
                for key in table.shown.keys:
                    first_frame.setdefault(key, drawing["now"])

        def draw_now(self) -> bool:
            drawing["now"] = True
            try:
                return inner_draw(self)
            finally:
                drawing["now"] = False

        app._display = display  # type: ignore[method-assign]
        screen.draw_now = draw_now.__get__(screen)  # type: ignore[method-assign]
        traces = tmp_path / "more"
        write_trace(traces / "a.jsonl", task_lines("late-1", at=4 * 3600))
        ingest(sample_db, traces)
        app.post_message(Ingested(events=4, tasks={"late-1"}))
        await wait_until(pilot, lambda: "late-1" in first_frame)
        assert first_frame["late-1"], "the new row waited for Textual's next update tick"
        drawn_now = screen_text(app)
        await settle(app, pilot)
        assert table.cursor_task == "late-1"
        assert "late-1" in drawn_now
        # Settled (every later refresh Textual's own way), the screen reads as the frame drawn at once, below the
        # header line: its counts (tasks/min, events) come from a read of their own, which may land after that frame.
        screen.refresh()
        await settle(app, pilot)
        assert screen_text(app).splitlines()[1:] == drawn_now.splitlines()[1:]
        assert "tasks/min" in drawn_now.splitlines()[0]  # (the line left out is the header's)


async def test_a_change_needing_a_layout_is_left_to_textual(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, DeckScreen)
        screen.query_one(TaskTable).refresh(layout=True)
        assert screen.draw_now() is False  # (Textual lays it out and draws it on its next tick)
        await settle(app, pilot)
        assert screen.draw_now() is False  # nothing changed: no frame composed for nothing
