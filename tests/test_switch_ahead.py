"""Switching screen with 1 / 2: the screen is first drawn with data read after the key, and keys typed
while it reads go to it (console/switch_ahead.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from textual.widgets import Static

from agentdeck.console import switch_ahead
from agentdeck.console.screens.escalations import EscalationsScreen
from agentdeck.console.screens.replay import ReplayScreen
from agentdeck.console.screens.tasks import TasksScreen
from agentdeck.console.widgets.escalation_table import EscalationTable
from agentdeck.console.widgets.task_table import TaskTable
from conftest import FIXED_NOW
from tasks_support import ingest, task_lines, write_trace
from test_escalations_support import _task, esc_db, ingest_events, settle  # noqa: F401 (esc_db: a fixture)


def first_frames(app) -> list[tuple[str, list[str], str]]:
    """From now on, the first frame made of each newly shown screen: (screen, row keys, kind of update).

    Every frame the compositor makes counts, also one Textual holds back from the terminal while it
    masks a switch (App.delay_update): a frame with the last visit's rows is work done for nothing.
    The kind: Textual's LayoutUpdate writes the whole screen; a partial one (ChopsUpdate) only what
    changed since the screen was last shown, leaving the old screen's text around it on the terminal.
    """
    frames: list[tuple[str, list[str], str]] = []
    inner = app._display
    last = [app.screen]

    def display(screen, renderable) -> None:
        inner(screen, renderable)
        if renderable is None or screen is last[0]:
            return
        last[0] = screen
        if isinstance(screen, EscalationsScreen):
            rows = [str(k.value) for k in screen.query_one(EscalationTable).rows]
        elif isinstance(screen, TasksScreen):
            rows = list(screen.query_one(TaskTable).shown.keys)
        elif isinstance(screen, ReplayScreen):
            rows = [screen.rec.task_id] if screen.rec is not None else []
        else:
            rows = []
        frames.append((type(screen).__name__, rows, type(renderable).__name__))

    app._display = display
    return frames


@asynccontextmanager
async def back_on_tasks(app) -> AsyncIterator:
    """The console at 120x40 on Tasks after a first visit to Escalations (which composed that screen):
    what each switch below starts from. Yields the pilot."""
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("1")
        await settle(pilot)
        yield pilot


async def until(pilot, condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.02)


@pytest.fixture
def read_says_when(monkeypatch) -> None:
    """The switch waits for its read however long it takes: the read says when the switch happens.

    For the tests of what the first frame shows once the read answers. A read outlasting WAIT_S's 0.15 s (a
    loaded machine; emulated with a 0.3 s read, each of these tests failed) lets the switch show the last
    visit's rows first, as designed (test_a_slow_read_does_not_hold_the_switch_or_the_keys)."""
    monkeypatch.setattr(switch_ahead, "WAIT_S", 20.0)


async def test_a_screen_switched_to_is_first_drawn_with_what_changed_while_away(esc_db, tmp_path, make_app,
                                                                                 read_says_when):
    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        # An escalation is raised while the operator is on Tasks (the store changes; Escalations hears it).
        n = FIXED_NOW
        ingest_events(esc_db, _task("t-new", raised=n - 10, deadline=n + 300, risk="high", system="iam",
                                    operation="grant_role", params={"user": "zoe", "role": "admin"}), tmp_path / "more")
        app.store_written()
        await settle(pilot)
        frames = first_frames(app)
        await pilot.press("2")
        await settle(pilot)
        assert frames[0][0] == "EscalationsScreen"
        assert "esc-t-new" in frames[0][1], "the first frame of Escalations showed the last visit's rows"
        assert frames[0][2] == "LayoutUpdate", "the switch drew only part of the screen"

        # And back: a task started while the operator was on Escalations is on Tasks' first frame.
        write_trace(tmp_path / "tasks" / "t.jsonl", task_lines("t-switch-new", at=9000))
        ingest(esc_db, tmp_path / "tasks")
        app.store_written()
        await settle(pilot)
        await pilot.press("1")
        await settle(pilot)
        assert frames[1][0] == "TasksScreen"
        assert "t-switch-new" in frames[1][1], "the first frame of Tasks showed the last visit's rows"
        assert frames[1][2] == "LayoutUpdate", "the switch drew only part of the screen"


async def test_a_task_opened_on_replay_is_in_its_first_frame(sample_db, make_app, read_says_when):
    app = make_app(sample_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("4")  # (composes Replay: no task chosen yet)
        await settle(pilot)
        await pilot.press("1")
        await settle(pilot)
        task = app.screen.query_one(TaskTable).cursor_task
        assert task is not None
        frames = first_frames(app)
        await pilot.press("r")  # this task on Replay
        await settle(pilot)
        assert frames[0][:2] == ("ReplayScreen", [task]), "Replay was first drawn without the task asked for"
        assert frames[0][2] == "LayoutUpdate"


def hold_deck_call(app, monkeypatch, name: str) -> threading.Event:
    """The service call ``app.deck.<name>`` waits for the returned gate (at most 20 s): a slow store."""
    gate = threading.Event()
    call = getattr(app.deck, name)

    def slow(*args, **kwargs):
        gate.wait(20)
        return call(*args, **kwargs)

    monkeypatch.setattr(app.deck, name, slow)
    return gate


def hold_queue_reads(app, monkeypatch) -> threading.Event:
    """The Escalations queue read waits for the returned gate (at most 20 s): a slow store."""
    return hold_deck_call(app, monkeypatch, "escalation_queue")


async def test_keys_typed_while_a_switch_reads_go_to_the_screen_switched_to(esc_db, make_app, monkeypatch):
    monkeypatch.setattr(switch_ahead, "WAIT_S", 20.0)  # the read, held below, says when the switch happens
    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        tasks = app.screen
        assert isinstance(tasks, TasksScreen) and tasks.follow
        cursor = tasks.query_one(TaskTable).cursor_task
        gate = hold_queue_reads(app, monkeypatch)
        await pilot.press("2", "k", "h")  # k would pause Tasks; h shows the decided escalations
        assert app.screen is tasks, "switched before the screen's data was read"
        assert tasks.follow and tasks.query_one(TaskTable).cursor_task == cursor, "a key went to the old screen"
        gate.set()
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, EscalationsScreen)
        assert screen.history, "h, typed during the switch, did not reach Escalations"
        assert tasks.follow and tasks.query_one(TaskTable).cursor_task == cursor


async def test_a_slow_read_does_not_hold_the_switch_or_the_keys(esc_db, make_app, monkeypatch):
    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        gate = hold_queue_reads(app, monkeypatch)
        try:
            await pilot.press("2")
            # Past WAIT_S the screen is shown as it was, its read still out; keys reach it at once.
            await until(pilot, lambda: isinstance(app.screen, EscalationsScreen))
            await pilot.press("h")
            screen = app.screen
            assert isinstance(screen, EscalationsScreen) and screen.history
        finally:
            gate.set()
        await settle(pilot)
        assert str(app.screen.query_one("#esc-title", Static).render()).startswith("Decided")


async def test_a_tab_clicked_while_a_switch_reads_wins_over_it(esc_db, make_app, monkeypatch):
    monkeypatch.setattr(switch_ahead, "WAIT_S", 20.0)  # the read, held below, says when the switch happens
    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        gate = hold_queue_reads(app, monkeypatch)
        try:
            await pilot.press("2")
            assert isinstance(app.screen, TasksScreen)
            # The mouse is not held: a tab clicked now is the operator's newer choice.
            await pilot.click("#tab-canary")
            await until(pilot, lambda: app.current_mode == "canary")
        finally:
            gate.set()
        await settle(pilot)
        assert app.current_mode == "canary", "the older switch, still reading, took the console elsewhere"


def hold_task_detail(app, monkeypatch) -> threading.Event:
    """A task's detail is read only once the returned event is set (it answers when the test says)."""
    opened = threading.Event()
    detail = app.deck.task_detail

    def slow_detail(*args, **kwargs):
        opened.wait(20)
        return detail(*args, **kwargs)

    monkeypatch.setattr(app.deck, "task_detail", slow_detail)
    return opened


async def test_a_screen_key_pressed_while_a_task_opens_is_not_dropped_when_the_task_is_shown(esc_db, make_app,
                                                                                               monkeypatch):
    monkeypatch.setattr(switch_ahead, "WAIT_S", 20.0)  # the read, held below, says when the switch happens
    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        opened = hold_task_detail(app, monkeypatch)
        gate = hold_queue_reads(app, monkeypatch)
        try:
            await pilot.press("enter", "2")  # open the task, then (before it is read) go to Escalations
            assert isinstance(app.screen, TasksScreen)
            opened.set()  # the task's detail answers while the switch still reads: shown on Tasks' stack
            await until(pilot, lambda: app.screen_stack[-1] is not app.screen_stack[0])
        finally:
            gate.set()
        await settle(pilot)
        assert app.current_mode == "escalations", "the detail answering dropped the 2 pressed after enter"


async def test_a_task_read_answering_after_a_screen_key_switched_away_does_not_pull_the_console_back(
        esc_db, make_app, monkeypatch):
    app = make_app(esc_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("1")
        await settle(pilot)
        opened = hold_task_detail(app, monkeypatch)
        try:
            await pilot.press("enter", "2")  # open the task, then go to Escalations before it is read
            await until(pilot, lambda: app.current_mode == "escalations")
        finally:
            opened.set()  # the task's detail answers after the switch
        await settle(pilot)
        assert app.current_mode == "escalations", "the task's answer pulled the console back to Tasks"
        assert isinstance(app.screen, EscalationsScreen)


async def test_the_palettes_go_to_screen_shows_escalations_once_with_fresh_rows(esc_db, tmp_path, make_app,
                                                                                  read_says_when):
    # "Escalations screen" from ctrl+p switches as key 2 does: its first frame has what changed while away.
    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        n = FIXED_NOW
        ingest_events(esc_db, _task("t-new", raised=n - 10, deadline=n + 300, risk="high", system="iam",
                                    operation="grant_role", params={"user": "zoe", "role": "admin"}), tmp_path / "more")
        app.store_written()
        await settle(pilot)
        frames = first_frames(app)
        await pilot.press("ctrl+p", *"Escalations screen")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.current_mode == "escalations"
        shown = [frame for frame in frames if frame[0] == "EscalationsScreen"]
        assert "esc-t-new" in shown[0][1], "the first frame of Escalations showed the last visit's rows"
        assert shown[0][2] == "LayoutUpdate", "the switch drew only part of the screen"


async def test_problems_enter_on_a_blocked_delivery_shows_escalations_once_with_fresh_rows(esc_db, tmp_path, make_app,
                                                                                           read_says_when):
    # Enter on a problem fixed on Escalations switches as key 2 does: its first frame has what changed while away.
    from agentdeck.console.service.delivery import DeliverySettings, deliver_one
    from agentdeck.store import decisions
    from agentdeck.store.db import connect

    conn = connect(esc_db)
    decisions.decide(conn, "esc-t-hostile", "deny", by="bob", reason="no", now=FIXED_NOW - 30)
    assert deliver_one(conn, "esc-t-hostile", DeliverySettings(tmp_path / "box.jsonl", frozenset())) == "blocked"
    conn.close()
    app = make_app(esc_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("2")  # (the first visit composes the screen)
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        n = FIXED_NOW
        ingest_events(esc_db, _task("t-new", raised=n - 10, deadline=n + 300, risk="high", system="iam",
                                    operation="grant_role", params={"user": "zoe", "role": "admin"}), tmp_path / "more")
        app.store_written()
        await settle(pilot)
        screen = app.screen
        key = screen._selected_key()
        assert key is not None and screen.problems[key].goto == "escalations", "the blocked delivery is selected"
        frames = first_frames(app)
        await pilot.press("enter")
        await settle(pilot)
        assert app.current_mode == "escalations"
        assert frames[0][0] == "EscalationsScreen"
        assert "esc-t-new" in frames[0][1], "the first frame of Escalations showed the last visit's rows"
        assert frames[0][2] == "LayoutUpdate", "the switch drew only part of the screen"


async def test_canary_switched_to_is_first_drawn_with_the_report_read_after_the_key(sample_db, make_app, monkeypatch):
    # Key 3 as 1/2/4: a canary task written while the operator was away is counted in Canary's first frame.
    from agentdeck.console.screens.canary import CanaryScreen
    from agentdeck.store.db import connect

    # The read says when the switch happens (as in the tests above): under load the report's computation
    # outlasted WAIT_S's 0.15 s, the switch then showed the last visit's report first, as designed, and
    # the test failed on main as on this branch.
    monkeypatch.setattr(switch_ahead, "WAIT_S", 20.0)
    app = make_app(sample_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("3")  # (the first visit composes the screen and computes)
        await until(pilot, lambda: isinstance(app.screen, CanaryScreen) and app.screen.report is not None)
        screen = app.screen
        before = screen.report.n_canary
        await pilot.press("1")
        await settle(pilot)
        conn = connect(sample_db)
        conn.execute("""INSERT INTO tasks (task_id, agent, version, cohort, stage, started)
                        VALUES ('task-new', 'approval-agent', 'v2', 'canary', 'partial', 1795520000)""")
        conn.close()
        app.data_version += 1
        await settle(pilot)
        screen._last_load = 0.0  # (its recompute throttle has passed, as it has after a second away)
        frames: list[tuple[str, int | None, str]] = []
        inner = app._display

        def display(shown, renderable) -> None:
            inner(shown, renderable)
            if renderable is not None and isinstance(shown, CanaryScreen) and not frames:
                frames.append((type(shown).__name__, shown.report.n_canary if shown.report else None,
                               type(renderable).__name__))

        app._display = display
        await pilot.press("3")
        await until(pilot, lambda: bool(frames) and settled_screen(app))
        assert frames[0][1] == before + 1, "Canary's first frame showed the report of the last visit"
        assert frames[0][2] == "LayoutUpdate", "the switch drew only part of the screen"


def settled_screen(app) -> bool:
    from agentdeck.console.screens.base import settled

    return settled(app.screen)


async def test_keys_held_during_a_switch_still_arrive_if_textual_drops_the_hand_on_call(esc_db, make_app, monkeypatch):
    # A screen's call_later is dropped if that screen goes first: the held keys must arrive all the same,
    # or every later key would be held for good.
    monkeypatch.setattr(switch_ahead, "WAIT_S", 20.0)
    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        escalations = app.get_screen("escalations") if app.is_screen_installed("escalations") else None
        gate = hold_queue_reads(app, monkeypatch)
        await pilot.press("2", "h")
        screen = app.switching._screen
        assert isinstance(screen, EscalationsScreen) and escalations in (None, screen)
        keep = screen.call_later

        def dropping_the_hand_on(callback, *args, **kwargs):
            if getattr(callback, "__name__", "") == "_replay":
                return True  # dropped, as when the screen goes first
            return keep(callback, *args, **kwargs)

        screen.call_later = dropping_the_hand_on  # type: ignore[method-assign]
        gate.set()
        await until(pilot, lambda: app.screen is screen and screen.history)
        await pilot.press("j")  # a key typed after the switch is not held either
        await settle(pilot)
        assert not app.switching.held and not app.switching.draining


async def test_a_task_read_answering_after_the_operator_moved_on_is_not_shown(esc_db, make_app, monkeypatch):
    """Enter on a slow store, then the palette (or r then 1) before the task's read answers: the later keys win.
    Only the mode was compared, so the detail was pushed over the palette, or over the list the operator had
    come back to."""
    from textual.command import CommandPalette

    from agentdeck.console.screens.task_detail import TaskDetailScreen

    app = make_app(esc_db)
    async with back_on_tasks(app) as pilot:
        tasks = app.screen
        gate = hold_deck_call(app, monkeypatch, "task_detail")
        await pilot.press("enter")
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        gate.set()
        await settle(pilot)
        assert isinstance(app.screen, CommandPalette), f"the detail was pushed over the palette: {app.screen}"
        assert not any(isinstance(s, TaskDetailScreen) for s in app.screen_stack)
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is tasks

        gate = hold_deck_call(app, monkeypatch, "task_detail")
        await pilot.press("enter", "r", "1")
        await until(pilot, lambda: app.current_mode == "tasks" and app.screen is tasks and app.mode_switches >= 2)
        gate.set()
        await settle(pilot)
        assert app.screen is tasks, f"the detail came back after r then 1: {app.screen}"

        await pilot.press("enter")  # and a read nobody moved away from is shown
        await settle(pilot)
        assert isinstance(app.screen, TaskDetailScreen)
