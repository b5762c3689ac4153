"""Keys typed after Enter closed a prompt box and a key that opens it again, all in one read (a fast typist,
a paste of keys): the box opened again keeps what was typed into it."""

from __future__ import annotations

from textual import events

from agentdeck.console.screens.tasks import TasksScreen
from test_escalations_support import esc_db, settle  # noqa: F401 (esc_db: a fixture)
from test_switch_ahead import back_on_tasks


async def type_at_once(pilot, *keys: str) -> None:
    app = pilot.app
    for key in keys:
        char = {"slash": "/", "enter": "\r", "space": " "}.get(key, key if len(key) == 1 else None)
        app.post_message(events.Key(key, char).set_sender(app))
    await settle(pilot)


async def test_the_filter_opened_again_after_enter_keeps_the_keys_typed_into_it(esc_db, make_app):
    """/ ok Enter / x in one read: 'ok' is applied and the filter is open again, focused, with the x in it. The
    screen's handler of the Enter's Applied message ran after the / had opened the box again: it hid the box again
    and queued a focus of the table, so the box stayed shown with the x, and the keys typed on went to the list."""
    from agentdeck.console.widgets.task_filter import FilterInput, describe

    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        tasks = app.screen
        assert isinstance(tasks, TasksScreen)
        await type_at_once(pilot, "slash", "o", "k", "enter", "slash", "x")
        box = tasks.query_one(FilterInput)
        assert describe(tasks.filt) == "ok", describe(tasks.filt)
        assert box.display and app.focused is box, (box.display, app.focused, box.value)
        # The box opens with its text selected (as / alone does): the x replaces it, and Enter applies it.
        assert box.value == "x", repr(box.value)
        await type_at_once(pilot, "enter")
        assert describe(tasks.filt) == "x" and not box.display and app.focused is tasks.table


async def test_the_filter_opened_again_after_esc_is_focused(esc_db, make_app):
    """/ a Esc / y in one read: the filter is open again and focused (the Esc's Cancelled message, handled after
    the / had opened it again, hid it again and queued a focus of the table)."""
    from agentdeck.console.widgets.task_filter import FilterInput

    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        tasks = app.screen
        await type_at_once(pilot, "slash", "a", "escape", "slash", "y")
        box = tasks.query_one(FilterInput)
        assert tasks.filt.empty
        assert box.display and app.focused is box, (box.display, app.focused, box.value)
        assert box.value.endswith("y"), repr(box.value)
