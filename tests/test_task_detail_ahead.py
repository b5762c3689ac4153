"""Enter on the Tasks list shows the detail read ahead while the cursor rested on the row
(console/screens/detail_ahead.py): always the task under the cursor, never older than the list beside it."""

from __future__ import annotations

import threading

import pytest

from agentdeck.console.messages import Ingested
from agentdeck.console.screens.task_detail import TaskDetailScreen
from agentdeck.console.screens.tasks import TasksScreen
from agentdeck.console.widgets.task_table import TaskTable
from agentdeck.store import queries
from agentdeck.store.db import connect
from tasks_support import BASE, _ts, ingest, screen_text, settle, task_lines, wait_until, write_trace

SIZE = (140, 40)
SCROLLBAR = set("▁▂▃▄▅▆▇█")  # (a scrollbar's thumb)


class HeldDetails:
    """Counts the service's task detail reads and holds them at their start while ``hold`` is set."""

    def __init__(self, deck) -> None:
        self.hold = threading.Event()
        self.release = threading.Event()
        self.asked: list[str] = []
        inner = deck.task_detail

        def task_detail(task_id):
            self.asked.append(task_id)
            if self.hold.is_set():
                self.release.wait(10)
            return inner(task_id)

        deck.task_detail = task_detail


def shown_details(monkeypatch) -> list[tuple[str, int]]:
    """(task, events) of every detail the detail screen drew, in order."""
    drawn: list[tuple[str, int]] = []
    inner = TaskDetailScreen._show

    def show(self, detail):
        if detail is not None and detail.task_id == self.task_id:
            drawn.append((detail.task_id, len(detail.events)))
        return inner(self, detail)

    monkeypatch.setattr(TaskDetailScreen, "_show", show)
    return drawn


async def rested(pilot, tasks) -> None:
    """The cursor has rested on its row long enough: its detail was read ahead (TasksScreen.AHEAD_REST_S)."""
    await wait_until(pilot, lambda: tasks.detail_ahead.current is not None and tasks.detail_ahead.current.answered
                     and tasks.detail_ahead.current.task_id == tasks.table.cursor_task)


async def drawn_ahead_terminal(app, pilot):
    """The console settled with its detail screen composed and drawn ahead; a Terminal recording its writes."""
    from terminal_support import Terminal

    await settle(app, pilot)
    await wait_until(pilot, lambda: app.is_screen_installed("task-detail")
                     and getattr(app.get_screen("task-detail"), "_drawn_ahead", False))
    return Terminal(app)


async def first_detail_frame_after_enter(app, pilot, terminal) -> list | None:
    """Presses enter and settles; the terminal's grid as the first write drawing the detail screen left it."""
    first: list = []
    inner = app._display
    writes = terminal.writes

    def display(screen, update):
        inner(screen, update)
        if not first and terminal.writes > writes and isinstance(screen, TaskDetailScreen):
            first.append([list(row) for row in terminal.grid])

    app._display = display
    await pilot.press("enter")
    await settle(app, pilot)
    app._display = inner
    return first[0] if first else None


def store_events(db, task_id: str) -> list[int]:
    conn = connect(db, readonly=True)
    try:
        return [r["seq"] for r in queries.task_events(conn, task_id, limit=2000)]
    finally:
        conn.close()


async def test_enter_after_moving_fast_shows_the_task_under_the_cursor(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        tasks = app.screen
        table = tasks.query_one(TaskTable)
        # Keys faster than the reads ahead: each move asks for another task's detail, most still in flight.
        await pilot.press("k", "k", "k", "j", "k", "k")
        target = table.cursor_task
        await pilot.press("enter")
        await settle(app, pilot)
        detail = app.screen
        assert isinstance(detail, TaskDetailScreen) and detail.task_id == target
        assert [e["seq"] for e in detail.events] == store_events(sample_db, target)
        assert f"task {target}" in screen_text(app)
        # And again after going back and moving on.
        await pilot.press("escape", "k", "k", "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == table.cursor_task != target
        # Rested on a row (its detail read ahead), then one move and enter at once: the row moved to.
        await pilot.press("escape", "k")
        await rested(pilot, tasks)
        rested_on = table.cursor_task
        await pilot.press("j", "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == table.cursor_task != rested_on
        assert [e["seq"] for e in app.screen.events] == store_events(sample_db, table.cursor_task)


async def test_enter_on_a_rested_row_shows_its_detail_without_a_read_of_its_own(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(TaskTable)
        held = HeldDetails(app.deck)
        await pilot.press("k")
        await rested(pilot, app.screen)
        target = table.cursor_task
        assert held.asked == [target]
        held.hold.set()  # any read from here on is held: what enter shows must not need one
        await pilot.press("enter")
        await pilot.pause()
        detail = app.screen
        assert isinstance(detail, TaskDetailScreen) and detail.task_id == target and detail.found
        assert held.asked == [target]
        assert f"task {target}" in screen_text(app)
        held.release.set()


async def test_enter_while_the_read_ahead_is_in_flight_waits_for_it(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(TaskTable)
        held = HeldDetails(app.deck)
        held.hold.set()
        await pilot.press("k")
        target = table.cursor_task
        await wait_until(pilot, lambda: held.asked == [target])  # the read ahead, held
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, TasksScreen)  # nothing to show yet, and nothing else shown
        held.release.set()
        await settle(app, pilot)
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == target
        assert held.asked == [target]  # the one read served enter


def running_beside_done(tmp_path):
    """A store with run-1 (two events, still running) beside done-2 (finished earlier); (traces, db)."""
    traces = tmp_path / "t"
    write_trace(traces / "a.jsonl", task_lines("run-1", outcome=None)[:2])
    write_trace(traces / "a.jsonl", task_lines("done-2", at=100))
    db = tmp_path / "s.db"
    ingest(db, traces)
    return traces, db


async def rested_on_running(app, pilot):
    """Tasks settled, the cursor moved up onto run-1 and rested there (its detail read ahead); (screen, table)."""
    await settle(app, pilot)
    tasks = app.screen
    table = tasks.query_one(TaskTable)
    await pilot.press("k")
    await rested(pilot, tasks)
    return tasks, table

async def test_a_changed_task_is_never_shown_from_its_older_read_ahead(tmp_path, make_app, monkeypatch):
    traces, db = running_beside_done(tmp_path)
    drawn = shown_details(monkeypatch)
    app = make_app(db, abandon_after=0)
    async with app.run_test(size=SIZE) as pilot:
        tasks, table = await rested_on_running(app, pilot)
        assert table.cursor_task == "run-1" and tasks.detail_ahead.current.detail is not None
        assert len(tasks.detail_ahead.current.detail.events) == 2
        held = HeldDetails(app.deck)
        held.hold.set()
        # run-1 goes on: the list re-reads and shows its row changed; its new read ahead is held.
        write_trace(traces / "a.jsonl", task_lines("run-1", outcome=None)[2:3])
        ingest(db, traces)
        app.post_message(Ingested(events=1, tasks={"run-1"}))
        await wait_until(pilot, lambda: "run-1" in held.asked)
        await pilot.press("enter")
        await pilot.pause()
        assert not drawn  # the older read ahead was not shown for it
        held.release.set()
        await settle(app, pilot)
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == "run-1"
        assert drawn and all(events == 3 for _, events in drawn)
        assert app.screen.query_one("#detail-events").row_count == 3


async def test_a_change_heard_but_not_yet_listed_is_shown_right_after_the_read_ahead(tmp_path, make_app, monkeypatch):
    # The store changed after the read ahead began, the list has not re-read yet: enter shows what was read
    # ahead (as old as the row beside it) and the task's row is checked behind that frame.
    traces, db = running_beside_done(tmp_path)
    app = make_app(db, abandon_after=0)
    async with app.run_test(size=SIZE) as pilot:
        tasks, table = await rested_on_running(app, pilot)
        assert table.cursor_task == "run-1"
        monkeypatch.setattr(TasksScreen, "PAUSED_REFRESH_S", 60.0)  # the paused list does not re-read meanwhile
        tasks._refreshed_at = 1e12
        write_trace(traces / "a.jsonl", task_lines("run-1", outcome=None)[2:3])
        ingest(db, traces)
        app.post_message(Ingested(events=1, tasks={"run-1"}))
        await wait_until(pilot, lambda: tasks._changes_heard > tasks.detail_ahead.current.heard)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TaskDetailScreen)
                         and app.screen.query_one("#detail-events").row_count == 3)
        assert app.screen.task_id == "run-1" and [e["seq"] for e in app.screen.events] == [0, 1, 2]


async def test_a_read_ahead_older_than_the_row_listed_is_not_shown_even_before_it_is_read_again(
        tmp_path, make_app, monkeypatch):
    # The list showed the task's row changed, and the read ahead for the new row is not asked yet (it is asked
    # after the next frame): enter reads the task itself rather than show the read ahead for the older row.
    traces, db = running_beside_done(tmp_path)
    drawn = shown_details(monkeypatch)
    app = make_app(db, abandon_after=0)
    async with app.run_test(size=SIZE) as pilot:
        tasks, table = await rested_on_running(app, pilot)
        before = table.row_values("run-1")
        assert table.cursor_task == "run-1" and len(tasks.detail_ahead.current.detail.events) == 2
        monkeypatch.setattr(TasksScreen, "_read_detail_soon", lambda self: None)  # (that next frame not yet)
        write_trace(traces / "a.jsonl", task_lines("run-1", outcome=None)[2:3])
        ingest(db, traces)
        app.post_message(Ingested(events=1, tasks={"run-1"}))
        await wait_until(pilot, lambda before=before: table.row_values("run-1") != before)
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == "run-1"
        assert drawn and all(events == 3 for _, events in drawn)


@pytest.mark.parametrize("size", [(80, 24), (140, 40)])
async def test_the_first_frame_after_enter_is_the_detail_as_it_settles(sample_db, make_app, size):
    # The detail is laid out and drawn as its screen's resume is handled (DeckScreen._draw_at_once), not after the
    # widgets' layout messages: that first frame must already be the task's, in its own geometry (payloads and
    # event lists of other lengths than the task shown before), not the last task's sizes redrawn later.
    app = make_app(sample_db, prewarm=True)  # (as the console runs: the detail screen composed and drawn ahead)
    async with app.run_test(size=size) as pilot:
        terminal = await drawn_ahead_terminal(app, pilot)
        table = app.screen.query_one(TaskTable)
        checked = set()
        for moves in (("k",), ("k", "k", "k"), ("k",), ("k", "k"), ("g",), ("j", "j")):
            await pilot.press(*moves)
            await settle(app, pilot)
            first = await first_detail_frame_after_enter(app, pilot, terminal)
            assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == table.cursor_task
            # The detail's lines, as text (the header's clock and counters may tick between the two; a scrollbar
            # that a task's events newly need is drawn by Textual a frame later, as before this change).
            assert first
            text = lambda row: "".join(" " if c in SCROLLBAR else c for c, _ in row)  # noqa: E731
            body = range(2, size[1] - 1)
            changed = [y for y in body if text(first[y]) != text(terminal.grid[y])]
            assert not changed, (f"first frame of {app.screen.task_id} differs from settled on lines {changed}: "
                                 + "\n".join(f"{text(first[y])!r}\n{text(terminal.grid[y])!r}" for y in changed[:3]))
            checked.add((app.screen.task_id, len(app.screen.events)))
            await pilot.press("escape")
            await settle(app, pilot)
        assert len({events for _, events in checked}) > 1  # (tasks of different lengths were opened)


class HeldFor:
    """Holds the service's detail reads of one task at their start until ``release`` is set."""

    def __init__(self, deck, task_id: str) -> None:
        self.release = threading.Event()
        self.asked: list[str] = []
        inner = deck.task_detail

        def task_detail(asked):
            self.asked.append(asked)
            if asked == task_id:
                self.release.wait(10)
            return inner(asked)

        deck.task_detail = task_detail


async def test_the_last_task_opened_stays_shown_when_an_earlier_enters_read_ahead_answers(sample_db, make_app):
    # Enter on A waits for A's read ahead; the operator moves on and opens B (enter, or the palette), which
    # is shown. A's read answering later must not swap A in under them.
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        tasks = app.screen
        table = tasks.query_one(TaskTable)
        # Held before k: its read ahead is asked AHEAD_REST_S after the key, which on a loaded machine came
        # before k's press had returned (emulated with a rest of 1 ms: the read went unheld, and this waited on).
        first = table.shown.keys[table.cursor_row - 1]
        held = HeldFor(app.deck, first)
        await pilot.press("k")
        assert table.cursor_task == first
        await wait_until(pilot, lambda: first in held.asked)  # A's read ahead, held
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, TasksScreen)
        tasks.AHEAD_REST_S = 60.0  # (B is not rested on, however slow the keys: enter reads it itself)
        await pilot.press("k", "enter")
        second = table.cursor_task
        assert second != first
        await wait_until(pilot, lambda: isinstance(app.screen, TaskDetailScreen) and app.screen.found)
        assert app.screen.task_id == second
        held.release.set()
        await wait_until(pilot, lambda: tasks.detail_ahead.current is None or tasks.detail_ahead.current.answered)
        await settle(app, pilot)
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == second
        assert f"task {second}" in screen_text(app)
        # The other way round: B opened by enter's own read, still in flight, and then A shown from its read
        # ahead: B's answer must not replace it.
        await pilot.press("escape")
        await settle(app, pilot)
        await pilot.press("k")
        slow = table.cursor_task
        held2 = HeldFor(app.deck, slow)
        await pilot.press("enter")  # (not rested on: enter reads it, held)
        await wait_until(pilot, lambda: slow in held2.asked)
        assert isinstance(app.screen, TasksScreen)
        del tasks.AHEAD_REST_S
        await pilot.press("k")
        await rested(pilot, tasks)
        rested_on = table.cursor_task
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TaskDetailScreen))
        assert app.screen.task_id == rested_on
        held2.release.set()
        await settle(app, pilot)
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == rested_on


async def test_a_task_written_to_all_the_time_is_not_read_ahead_again_while_its_read_is_in_flight(
        tmp_path, make_app, monkeypatch):
    # Paused on a long task the fleet keeps writing (bench-big: 10,000 events, ~0.3 s to read and mask its
    # first 2,000): each list re-read changes its row. A read ahead per change started read after read, in
    # parallel once they took longer than the changes came, for a detail nobody had asked to see.
    traces = tmp_path / "t"
    lines = task_lines("run-1", outcome=None)
    # (later and later: the list's row shows the newest event's time and kind, not the count)
    more = [dict(lines[1], seq=seq, call_id=f"c{seq}", ts=_ts(seq)) for seq in range(3, 9)]
    write_trace(traces / "a.jsonl", lines)
    write_trace(traces / "a.jsonl", task_lines("done-2", at=100))
    db = tmp_path / "s.db"
    ingest(db, traces)
    app = make_app(db, abandon_after=0)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        tasks = app.screen
        table = tasks.query_one(TaskTable)
        held = HeldFor(app.deck, "run-1")
        await pilot.press("k")
        assert table.cursor_task == "run-1"
        await wait_until(pilot, lambda: held.asked == ["run-1"])  # its read ahead, slow (held)
        for event in more[:3]:  # the task goes on, the paused list shows each change
            before = table.row_values("run-1")
            write_trace(traces / "a.jsonl", [event])
            ingest(db, traces)
            app.post_message(Ingested(events=1, tasks={"run-1"}))
            await wait_until(pilot, lambda before=before: table.row_values("run-1") != before)
            await pilot.pause(tasks.AHEAD_REST_S * 2)  # (rested on it again after the list's change)
        assert held.asked == ["run-1"]  # one read of it at a time
        held.release.set()
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == "run-1"
        assert [e["seq"] for e in app.screen.events] == store_events(db, "run-1") == list(range(6))


async def test_a_task_gone_silent_since_its_read_ahead_shows_as_abandoned(tmp_path, make_app):
    # No store change, only time: the task read ahead while running has since been silent past --abandon-after.
    # Enter shows what a read now says (abandoned), as it did before the read ahead, not the state of the rest.
    from conftest import FIXED_NOW

    traces = tmp_path / "t"
    at = FIXED_NOW - BASE.timestamp() - 10  # its last event 8 s before the clock below
    write_trace(traces / "a.jsonl", task_lines("run-1", at=at, outcome=None))
    write_trace(traces / "a.jsonl", task_lines("done-2", at=at - 500))
    db = tmp_path / "s.db"
    ingest(db, traces)
    now = [FIXED_NOW]
    app = make_app(db, abandon_after=60, clock=lambda: now[0])
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        tasks = app.screen
        table = tasks.query_one(TaskTable)
        await pilot.press("k", "j")
        assert table.cursor_task == "run-1"
        await rested(pilot, tasks)
        assert not tasks.detail_ahead.current.detail.abandoned
        now[0] += 600  # ten minutes on the same row, the fleet quiet
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TaskDetailScreen) and "outcome abandoned" in screen_text(app))


async def test_a_read_ahead_that_fails_leaves_enter_to_read_and_show_its_error(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(app, pilot)
        tasks = app.screen
        table = tasks.query_one(TaskTable)
        inner = app.deck.task_detail
        gate = threading.Event()
        fails = {"left": 10**6}

        def task_detail(task_id):
            gate.wait(10)
            if fails["left"] > 0:
                fails["left"] -= 1
                raise OSError("database is locked")
            return inner(task_id)

        app.deck.task_detail = task_detail
        # Failed before enter: enter reads the task itself, and that read's error is shown to the operator.
        gate.set()
        await pilot.press("k")
        await wait_until(pilot, lambda: tasks.detail_ahead.current is not None and tasks.detail_ahead.current.failed)
        await pilot.press("enter")
        await wait_until(pilot, lambda: any("database is locked" in str(n.message) for n in app._notifications))
        assert isinstance(app.screen, TasksScreen)
        # Failing while enter waits for it: enter reads again, and shows the task when that read works.
        gate.clear()
        fails["left"] = 1
        await pilot.press("k")
        target = table.cursor_task
        await wait_until(pilot, lambda: tasks.detail_ahead.current is not None
                         and tasks.detail_ahead.current.task_id == target)
        await pilot.press("enter")
        gate.set()
        await wait_until(pilot, lambda: isinstance(app.screen, TaskDetailScreen) and app.screen.found)
        assert app.screen.task_id == target
        await settle(app, pilot)  # (the detail's tab bar mounted: closed while it mounts, ScreenTabs.on_mount raises)


@pytest.mark.parametrize("away", ["list", "screen"])
async def test_the_first_frame_after_a_resize_while_the_detail_was_away_has_its_new_layout(sample_db, make_app, away):
    # The terminal widened past 100 columns (-narrow to -wide: the payload beside the events) while the detail was
    # not shown, on the list or another screen. The next enter's first frame was the detail in its former layout,
    # stretched to the new width, and only the frame after it in its own (the classes came with the Resize message
    # handled after the resume had drawn it).
    app = make_app(sample_db, prewarm=True)
    async with app.run_test(size=(80, 24)) as pilot:
        terminal = await drawn_ahead_terminal(app, pilot)
        tasks = app.screen
        await pilot.press("k")
        await rested(pilot, tasks)
        await pilot.press("enter")
        await settle(app, pilot)
        await pilot.press("escape")
        await settle(app, pilot)
        if away == "screen":
            await pilot.press("3")
            await settle(app, pilot)
        await pilot.resize_terminal(110, 30)
        await settle(app, pilot)
        if away == "screen":
            await pilot.press("1")
            await settle(app, pilot)
        await rested(pilot, tasks)
        first = await first_detail_frame_after_enter(app, pilot, terminal)
        assert isinstance(app.screen, TaskDetailScreen) and first
        # (A scrollbar the events no longer need goes a frame later, as Textual draws it: its cells are left out.)
        text = lambda row: "".join(" " if c in SCROLLBAR or c == "…" else c for c, _ in row)  # noqa: E731
        changed = [y for y in range(2, 29) if text(first[y]) != text(terminal.grid[y])]
        assert not changed, "\n".join(f"{text(first[y])!r}\n{text(terminal.grid[y])!r}" for y in changed[:3])
