"""Keys on the Tasks list that answer from what the screen already holds: g and G jump to the ends of the
list before any read lands, and escape from a task's detail comes back to the list as it was left."""

from __future__ import annotations

import threading

from agentdeck.console.screens.task_detail import TaskDetailScreen
from agentdeck.console.screens.base import settled
from agentdeck.console.screens.tasks import TasksScreen
from agentdeck.console.widgets.task_table import TaskTable
from agentdeck.store import queries
from agentdeck.store.db import connect
from tasks_support import ingest, ordered_ids, screen_text, settle, task_lines, wait_until, write_trace

SIZE = (140, 40)


def status(app) -> str:
    return str(app.screen_stack[0].query_one("#tasks-status").render())


class HeldReads:
    """Holds every Tasks window read at its start until released: what a key shows meanwhile came from memory."""

    def __init__(self, deck) -> None:
        self.release = threading.Event()
        self.waiting = 0
        inner = deck.task_page

        def task_page(*args, **kw):
            self.waiting += 1
            self.release.wait(10)
            return inner(*args, **kw)

        deck.task_page = task_page


async def test_g_shows_the_oldest_tasks_before_any_read_lands_and_G_the_newest(sample_db, make_app, monkeypatch):
    monkeypatch.setattr(TasksScreen, "WINDOW", 40)  # the oldest tasks are not in the first window
    ids = ordered_ids(sample_db)
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)  # (the oldest window is read ahead, after the first one is shown)
        screen = app.screen
        table = screen.query_one(TaskTable)
        assert table.cursor_task == ids[-1]
        held = HeldReads(app.deck)
        await pilot.press("g")
        await pilot.pause()
        assert table.cursor_task == ids[0]  # on screen with no read answered
        assert ids[0] in screen_text(app)
        assert "PAUSED" in status(app)
        await pilot.press("G")
        await pilot.pause()
        assert table.cursor_task == ids[-1] and screen.follow
        assert ids[-1] in screen_text(app)
        held.release.set()
        await settle(app, pilot)
        assert held.waiting >= 1  # each end is still re-read behind what was shown
        assert table.cursor_task == ids[-1] and table.shown.keys == ids[-40:]


async def test_g_is_not_undone_by_a_read_of_the_newest_tasks_asked_before_it(sample_db, make_app, monkeypatch):
    # Following a busy fleet, a read of the newest window is nearly always in flight: g shows the oldest
    # window at once, and that read's answer, landing after, must not put the newest window back.
    monkeypatch.setattr(TasksScreen, "WINDOW", 40)
    ids = ordered_ids(sample_db)
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        screen = app.screen
        table = screen.query_one(TaskTable)
        held = HeldReads(app.deck)
        screen.reload()  # (a store change heard while following: the newest window is re-read)
        await wait_until(pilot, lambda: held.waiting == 1)
        # g's re-read of the oldest window is asked once its frame is drawn: here, when the test says, so that
        # the newest window's answer surely lands between g and that re-read (under load it often does).
        after_frame: list = []
        with monkeypatch.context() as frames:
            frames.setattr(screen, "after_next_frame", lambda key, then: after_frame.append(then))
            await pilot.press("g")
            assert table.cursor_task == ids[0]
            held.release.set()
            await wait_until(pilot, lambda: "tasks-page" not in screen.deck_waiting)  # (its answer has landed)
            await pilot.pause()
            assert table.cursor_task == ids[0] and table.shown.keys == ids[:40]
        for then in after_frame:
            then()
        await settle(app, pilot)
        assert table.cursor_task == ids[0] and table.shown.keys == ids[:40]
        assert not screen.follow and "PAUSED" in status(app)


async def test_the_oldest_window_read_ahead_follows_the_filter(sample_db, make_app, monkeypatch):
    monkeypatch.setattr(TasksScreen, "WINDOW", 5)
    conn = connect(sample_db)
    failed = [r[0] for r in conn.execute(
        f"SELECT task_id FROM tasks WHERE outcome = 'failed' ORDER BY {queries.SEEN}, task_id")]
    conn.close()
    assert len(failed) > 5
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"outcome:failed", "enter")
        await settle(app, pilot)
        table = app.screen.query_one(TaskTable)
        held = HeldReads(app.deck)
        await pilot.press("g")
        await pilot.pause()
        assert table.cursor_task == failed[0]  # the oldest failed task, not the oldest of all
        held.release.set()
        await settle(app, pilot)
        assert table.cursor_task == failed[0]


async def test_escape_from_a_task_comes_back_to_the_same_row_without_a_read_when_nothing_changed(sample_db, make_app):
    ids = ordered_ids(sample_db)
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        screen = app.screen
        table = screen.query_one(TaskTable)
        await pilot.press("k", "k", "k")
        await settle(app, pilot)
        chosen = table.cursor_task
        assert chosen == ids[-4]
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == chosen
        held = HeldReads(app.deck)
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.screen is screen and table.cursor_task == chosen
        assert chosen in screen_text(app)
        assert held.waiting == 0  # nothing changed while the detail was open: nothing read again
        held.release.set()


async def test_escape_from_a_task_shows_what_changed_meanwhile(sample_db, make_app, tmp_path):
    traces = tmp_path / "later"
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        screen = app.screen
        table = screen.query_one(TaskTable)
        chosen = table.cursor_task
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, TaskDetailScreen)
        assert "+1 newer" not in status(app)
        write_trace(traces / "agent.jsonl", task_lines("late-1", at=9 * 3600))
        ingest(sample_db, traces)
        app.store_written()  # (what the store watcher does when a commit is noticed)
        await settle(app, pilot)
        await pilot.press("escape")
        await wait_until(pilot, lambda: "+1 newer" in status(app))  # (opening a task paused the list)
        assert app.screen is screen and table.cursor_task == chosen


async def test_a_window_landing_just_after_k_in_follow_mode_does_not_undo_the_move(sample_db, make_app):
    ids = ordered_ids(sample_db)
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        screen = app.screen
        table = screen.query_one(TaskTable)
        assert screen.follow and table.cursor_task == ids[-1]
        # k, and a follow read's answer handled before the screen hears of the move (a busy fleet: it can be)
        table.go_row(table.cursor_row - 1)
        screen._show(screen.page, None)
        assert table.cursor_task == ids[-2]
        await pilot.pause()
        assert table.cursor_task == ids[-2] and not screen.follow
        assert "PAUSED" in status(app)


async def test_a_re_read_after_the_frame_still_runs_if_textual_drops_the_after_refresh_call(sample_db, make_app):
    # Textual runs an after-refresh callback on the screen on top when it is handed over and drops it if
    # that screen goes first (enter, escape, enter, escape typed fast). The re-read must still run, or
    # the list would never count as settled, and a screen not settled defers every refresh: it would
    # silently stop following the store.
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        screen = app.screen
        ran: list[str] = []
        screen.call_after_refresh = lambda *args, **kwargs: True  # type: ignore[method-assign]  # dropped
        screen.after_next_frame("after-frame:test", lambda: ran.append("re-read"))
        assert not settled(screen)
        await wait_until(pilot, lambda: ran == ["re-read"] and settled(screen))
