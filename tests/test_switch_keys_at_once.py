"""Keys typed together with a screen key (2 then d in one burst, as a terminal delivers fast typing or a
paste of keys): each acts on the screen switched to, once it is shown. A dialog a key opens lands on
that screen, never on the screen being left (console/switch_ahead.py, AgentDeck.on_event).

``pilot.press`` waits for the app to be idle after each key, so the first key's switch has begun before
the next key arrives: these tests queue the keys together, as the terminal driver does when they come
in one read.
"""

from __future__ import annotations

from textual import events
from textual.command import CommandPalette

from agentdeck.console.screens.escalations import EscalationsScreen
from agentdeck.console.screens.tasks import TasksScreen
from agentdeck.console.widgets.escalation_table import EscalationTable
from agentdeck.console.widgets.reason_dialog import ReasonDialog
from test_escalations_support import esc_db, settle  # noqa: F401 (esc_db: a fixture)
from test_switch_ahead import back_on_tasks, hold_deck_call, until


async def type_at_once(pilot, *keys: str) -> None:
    """Queue ``keys`` on the app together, as the driver does for keys read in one go; then let them act."""
    app = pilot.app
    for key in keys:
        char = key if len(key) == 1 else None
        app.post_message(events.Key(key, char).set_sender(app))
    await settle(pilot)


def stacks(app) -> dict[str, list[str]]:
    return {mode: [type(s).__name__ for s in stack] for mode, stack in app._screen_stacks.items()}


async def test_deny_typed_with_the_screen_key_opens_its_dialog_on_escalations(esc_db, make_app):
    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        await type_at_once(pilot, "2", "d")
        assert app.current_mode == "escalations", stacks(app)
        dialog = app.screen
        assert isinstance(dialog, ReasonDialog), f"d was lost: {stacks(app)}"
        escalations = app.screen_stack[0]
        assert isinstance(escalations, EscalationsScreen)
        assert (dialog.decision, dialog.escalation_id) == ("deny", escalations.query_one(EscalationTable).selected_id())
        assert stacks(app)["tasks"] == ["TasksScreen"], "a dialog was left behind on Tasks"


async def test_the_palette_opened_with_the_screen_key_is_over_the_screen_switched_to(esc_db, make_app):
    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        await type_at_once(pilot, "2", "ctrl+p")
        assert app.current_mode == "escalations", stacks(app)
        assert isinstance(app.screen, CommandPalette), f"the palette is not shown: {stacks(app)}"
        assert stacks(app)["tasks"] == ["TasksScreen"], "the palette opened on Tasks, hidden by the switch"


async def test_two_screen_keys_at_once_end_on_the_last(esc_db, make_app):
    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        await pilot.press("2")
        await settle(pilot)
        await type_at_once(pilot, "1", "2")
        assert app.current_mode == "escalations" and isinstance(app.screen, EscalationsScreen)
        await type_at_once(pilot, "2", "1")
        assert app.current_mode == "tasks" and isinstance(app.screen, TasksScreen)


async def test_an_approval_checked_after_the_operator_left_opens_no_dialog_elsewhere(esc_db, make_app,
                                                                                        monkeypatch):
    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        await pilot.press("2")
        await settle(pilot)
        checked = hold_deck_call(app, monkeypatch, "approval_refusal")
        try:
            await pilot.press("a", "1")  # approve (its rules are read first), then go to Tasks before they answer
            await until(pilot, lambda: app.current_mode == "tasks" and isinstance(app.screen, TasksScreen))
        finally:
            checked.set()
        await settle(pilot)
        assert isinstance(app.screen, TasksScreen), f"the approval dialog opened over Tasks: {stacks(app)}"
        assert stacks(app) == {"tasks": ["TasksScreen"], "escalations": ["EscalationsScreen"]}
        said = [n.message for n in app._notifications]
        assert any("not opened" in m and "press a again" in m for m in said), said


async def open_refund_on_replay(app, pilot) -> None:
    """On Replay: task-0001 open at its refund (the third decision point), as test_replay_screen does."""
    app.open_replay("task-0001")
    await settle(pilot)
    await pilot.press("right_square_bracket", "right_square_bracket", "right_square_bracket")
    await settle(pilot)


async def test_compensate_typed_with_the_screen_key_opens_its_dialog_on_replay(sample_db, make_app):
    from agentdeck.console.widgets.compensation_dialog import CompensationDialog

    app = make_app(sample_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await open_refund_on_replay(app, pilot)
        await pilot.press("1")
        await settle(pilot)
        await type_at_once(pilot, "4", "c")
        assert app.current_mode == "replay", stacks(app)
        assert isinstance(app.screen, CompensationDialog), f"c was lost: {stacks(app)}"
        assert stacks(app)["tasks"] == ["TasksScreen"]


async def test_a_compensation_prepared_after_the_operator_left_opens_no_dialog_elsewhere(sample_db, make_app,
                                                                                        monkeypatch):
    app = make_app(sample_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await open_refund_on_replay(app, pilot)
        prepared = hold_deck_call(app, monkeypatch, "compensation_prompt")
        try:
            await pilot.press("c", "1")  # compensate (its plan is prepared first), then go to Tasks
            await until(pilot, lambda: app.current_mode == "tasks" and isinstance(app.screen, TasksScreen))
        finally:
            prepared.set()
        await settle(pilot)
        assert isinstance(app.screen, TasksScreen), f"the compensation dialog opened over Tasks: {stacks(app)}"
        assert stacks(app)["replay"] == ["ReplayScreen"] and stacks(app)["tasks"] == ["TasksScreen"]
        said = [n.message for n in app._notifications]
        assert any("Compensation: not opened" in m and "press c again" in m for m in said), said


async def test_keys_typed_with_the_filter_key_go_into_the_filter(esc_db, make_app):
    """/ then 2 in one read (a fast typist, a paste): the 2 is the filter's first character, not a switch to
    Escalations; the same for a key the Tasks screen binds (g) and a letter."""
    from agentdeck.console.widgets.task_filter import FilterInput

    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        await type_at_once(pilot, "slash", "2", "g", "x")
        assert app.current_mode == "tasks" and isinstance(app.screen, TasksScreen), stacks(app)
        box = app.screen.query_one(FilterInput)
        assert app.focused is box
        assert box.value.endswith("2gx"), repr(box.value)


async def test_an_id_typed_with_the_open_key_goes_into_replays_input(sample_db, make_app):
    """On Replay, o then a task id in one read: the id is typed into the open box; its 1 does not go to Tasks
    and its letters do not step or compensate on the timeline."""
    from textual.widgets import Input

    app = make_app(sample_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await open_refund_on_replay(app, pilot)
        for key, char in [("o", "o"), ("t", "t"), ("a", "a"), ("s", "s"), ("k", "k"), ("minus", "-"),
                          ("0", "0"), ("0", "0"), ("0", "0"), ("2", "2")]:
            app.post_message(events.Key(key, char).set_sender(app))
        await settle(pilot)
        assert app.current_mode == "replay", stacks(app)
        assert stacks(app)["replay"] == ["ReplayScreen"], "a key opened a dialog"
        box = app.screen.query_one("#replay-open", Input)
        assert app.focused is box and box.value == "task-0002", repr(box.value)


async def test_keys_typed_with_the_key_that_closes_the_filter_go_to_the_table(esc_db, make_app):
    """Esc then 2 in one read: the filter closes and the 2 switches to Escalations. The 2 went into the filter
    box, still focused as it was routed (its close moved the focus later), and hidden after."""
    from agentdeck.console.widgets.task_filter import FilterInput

    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        await pilot.press("slash", "x")
        await settle(pilot)
        box = app.screen.query_one(FilterInput)
        assert app.focused is box
        await type_at_once(pilot, "escape", "2")
        assert app.current_mode == "escalations", f"the 2 was typed into the filter: {box.value!r}"
        assert box.value == "x"
        await type_at_once(pilot, "1")
        tasks = app.screen
        assert isinstance(tasks, TasksScreen) and not box.display and app.focused is tasks.table
        # Enter reads what was typed with it (the characters before it in the same read are in its filter).
        await type_at_once(pilot, "slash", *"outcome:failed", "enter")
        assert tasks.filt.outcome == "failed" and not box.display, (box.value, tasks.filt)


async def test_keys_typed_with_the_key_that_closes_replays_open_box_go_to_the_timeline(sample_db, make_app):
    """On Replay, o, a few characters, Esc then n in one read: n steps the timeline, not typed into the box."""
    from textual.widgets import Input

    from agentdeck.console.widgets.replay_timeline import ReplayTimeline

    app = make_app(sample_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await open_refund_on_replay(app, pilot)
        timeline = app.screen.query_one(ReplayTimeline)
        at = timeline.cursor
        await type_at_once(pilot, "o", "t", "escape", "n")
        box = app.screen.query_one("#replay-open", Input)
        assert box.value == "t" and app.focused is timeline, (box.value, app.focused)
        assert timeline.cursor == at + 1


async def test_a_slash_typed_in_the_filter_is_a_character(esc_db, make_app):
    """/ inside the filter is text ("path:a/b"), not the key that opens the filter (which emptied the box)."""
    from agentdeck.console.widgets.task_filter import FilterInput

    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        await pilot.press("slash", "a", "slash", "b")
        box = app.screen.query_one(FilterInput)
        assert app.focused is box and box.value.endswith("a/b"), repr(box.value)
        for key, char in (("slash", "/"), ("c", "c")):  # together, as one read of the terminal
            app.post_message(events.Key(key, char).set_sender(app))
        await settle(pilot)
        assert box.value.endswith("a/b/c"), repr(box.value)


async def test_keys_typed_after_enter_in_the_filter_go_to_the_list(esc_db, make_app):
    """/ ok Enter j in one read: the filter 'ok' is applied and j moves in the list, not into the hidden box."""
    from agentdeck.console.widgets.task_filter import FilterInput, describe
    from agentdeck.console.widgets.task_table import TaskTable

    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        screen = app.screen
        for key, char in (("slash", "/"), ("o", "o"), ("k", "k"), ("enter", "\r"), ("2", "2")):
            app.post_message(events.Key(key, char).set_sender(app))
        await settle(pilot)
        box = screen.query_one(FilterInput)
        assert describe(screen.filt) == "ok", describe(screen.filt)
        assert not box.display and "2" not in box.value, repr(box.value)
        assert app.current_mode == "escalations", "the 2 typed after Enter was lost in the hidden filter box"
        await pilot.press("1")
        await settle(pilot)
        assert isinstance(app.focused, TaskTable)


async def test_keys_typed_after_enter_in_replays_open_box_are_not_lost_in_it(sample_db, make_app):
    """On Replay, o task-0002 Enter 2 in one read: task-0002 is opened and the 2 switches to Escalations. The box
    stayed focused until the task had loaded, so the 2 (or j, n, anything typed on) went into it, hidden."""
    from textual.widgets import Input

    from agentdeck.console.widgets.replay_timeline import ReplayTimeline

    app = make_app(sample_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await open_refund_on_replay(app, pilot)
        replay = app.screen
        await type_at_once(pilot, "o", *"task-0002", "enter", "2")
        box = replay.query_one("#replay-open", Input)
        assert app.replay_task == "task-0002"
        assert app.current_mode == "escalations", f"the 2 typed after Enter went into the box: {box.value!r}"
        assert not box.display and box.value == "", repr(box.value)
        await type_at_once(pilot, "4")
        assert app.screen is replay and replay.rec is not None and replay.rec.task_id == "task-0002"
        timeline = replay.query_one(ReplayTimeline)
        assert app.focused is timeline
        await type_at_once(pilot, "j")
        assert timeline.cursor == 1


async def test_keys_typed_before_esc_in_the_filter_are_not_screen_keys(esc_db, make_app):
    """/ 2 Esc in one read: the 2 was typed into the filter, which Esc then cancels; it is not a switch to
    Escalations. (Esc closes the box as its key comes in, before the box has read the 2 queued on it.)"""
    from agentdeck.console.widgets.task_filter import FilterInput

    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        tasks = app.screen
        await type_at_once(pilot, "slash", "2", "escape")
        box = tasks.query_one(FilterInput)
        assert app.current_mode == "tasks", "a key typed into the filter before Esc switched screen"
        assert not box.display and app.focused is tasks.table
        assert tasks.filt.empty
