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


async def test_replays_open_box_opened_again_after_enter_keeps_the_keys_typed_into_it(sample_db, make_app):
    """On Replay, o task-0002 Enter o x in one read: task-0002 opens and the box is open again, focused, with
    the x typed into it."""
    from textual.widgets import Input

    from test_switch_keys_at_once import open_refund_on_replay

    app = make_app(sample_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await open_refund_on_replay(app, pilot)
        replay = app.screen
        await type_at_once(pilot, "o", *"task-0002", "enter", "o", "x")
        box = replay.query_one("#replay-open", Input)
        assert app.replay_task == "task-0002"
        assert replay.rec is not None and replay.rec.task_id == "task-0002"
        assert box.display and app.focused is box, (box.display, app.focused, box.value)
        assert box.value == "x", repr(box.value)


async def test_an_enter_cancelled_by_esc_is_not_applied_to_the_filter_opened_again(esc_db, make_app):
    """/ ok Enter Esc / x in one read: the Esc cancels 'ok' (as / ok Enter Esc does), and the / opens the filter
    again for the x. The Enter, still queued on the box as the / opened it again, applied 'ok' and closed the box
    just opened: the x went to the list."""
    from agentdeck.console.widgets.task_filter import FilterInput

    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        tasks = app.screen
        await type_at_once(pilot, "slash", "o", "k", "enter", "escape", "slash", "x")
        box = tasks.query_one(FilterInput)
        assert tasks.filt.empty, f"a cancelled filter was applied: {tasks.filt}"
        assert box.display and app.focused is box, (box.display, app.focused, box.value)
        assert box.value == "x", repr(box.value)


async def test_an_enter_cancelled_by_esc_is_not_applied_to_replays_open_box_opened_again(sample_db, make_app):
    """On Replay with no task shown (Esc leaves the box shown then), o task-0002 Enter Esc o z in one read: the
    Esc cancels the id (as it does with a task shown) and o opens the box again for the z. The Enter applied the
    id to the box just opened and closed it: the z went to the timeline."""
    from textual.widgets import Input

    app = make_app(sample_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await type_at_once(pilot, "4")  # Replay, no task chosen: the box shown, not focused
        replay = app.screen
        box = replay.query_one("#replay-open", Input)
        assert replay.rec is None and box.display
        await type_at_once(pilot, "o", *"task-0002", "enter", "escape", "o", "z")
        assert app.replay_task is None, app.replay_task
        assert box.display and app.focused is box, (box.display, app.focused, box.value)
        assert box.value.endswith("z"), repr(box.value)


async def test_replays_answer_focusing_the_open_box_keeps_the_keys_being_typed_into_it(sample_db, make_app):
    """An id not found answered (the box focused for another id) while an id is being typed in the box, open
    and focused already: the keys routed to the box just before are typed into it, not dropped as an edit
    before."""
    from textual.widgets import Input

    app = make_app(sample_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await type_at_once(pilot, "4", "o")
        replay = app.screen
        box = replay.query_one("#replay-open", Input)
        assert app.focused is box
        for char in "ab":  # routed to the box (focused) by the app, not yet read by it ...
            box.post_message(events.Key(char, char))
        replay._open_input(True, focus=True)  # ... as the answer to an id not found arrives (ReplayScreen._show)
        await settle(pilot)
        assert box.display and app.focused is box and box.value == "ab", repr(box.value)
