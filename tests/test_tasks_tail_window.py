"""Following, the Tasks screen refreshes from the newest rows only (console/service/tail_window.py): the window
it shows must be the one a whole read would give, and a change to an older row must still reach the screen
(the whole window is read again when due, with or without another commit)."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from agentdeck.console.messages import Ingested
from agentdeck.console.screens import tasks as tasks_module
from agentdeck.console.screens.tasks import TasksScreen
from agentdeck.console.service.tail_window import merge_tail, order_key
from agentdeck.console.service.views import TaskPage
from agentdeck.console.widgets.task_table import TaskTable
from tasks_support import _ts, ingest, ordered_ids, settle, task_lines, wait_until, write_trace

SIZE = (140, 40)


def window(state: dict[str, tuple], limit: int) -> TaskPage:
    """What a whole read gives: the newest ``limit`` tasks, oldest first."""
    rows = sorted(({"task_id": t, "seen": seen, "value": value} for t, (seen, value) in state.items()), key=order_key)
    return TaskPage(tuple(rows[-limit:]), len(rows) > limit, 0, None)


def newest(state: dict[str, tuple], n: int) -> list[dict]:
    return list(window(state, n).rows)


seen_values = st.one_of(st.integers(0, 40).map(float), st.none())


@settings(max_examples=300, deadline=None)
@given(
    before=st.dictionaries(st.text("abcdef", min_size=1, max_size=3), st.tuples(seen_values, st.integers(0, 3)),
                           max_size=60),
    added=st.lists(st.tuples(st.integers(41, 60).map(float), st.integers(0, 3)), max_size=8),
    changes=st.lists(st.tuples(st.integers(0, 20), st.integers(0, 3), st.sampled_from((None, "newer", "older"))),
                     max_size=8),
    tail=st.integers(1, 30),
    limit=st.integers(1, 40),
)
def test_newest_rows_and_the_older_ones_held_make_the_window_a_whole_read_makes(before, added, changes, tail, limit):
    held = window(before, limit)
    after = dict(before)
    for n, (seen, value) in enumerate(added):  # new tasks, newer than every task before
        after[f"new-{n}"] = (seen, value)
    # Changes to tasks among the newest `tail` (what a fleet's events touch while the screen follows): a new value,
    # or another place in the list: newer, or older (its task_start arrived late: ``started`` takes the earliest).
    recent = [row["task_id"] for row in newest(after, tail)]
    for index, value, moves in changes:
        if recent:
            task = recent[index % len(recent)]
            seen = after[task][0]
            if moves == "older" and task not in before:
                continue  # (a task new to the window placed before the newest rows: shown by the next whole read)
            after[task] = ({"newer": 61.0 + index, "older": index - 30.0}.get(moves, seen), value)
    fresh = newest(after, tail)
    if tail >= limit:
        return  # (the screen reads the whole window then)
    merged = merge_tail(held, fresh, tail, limit)
    assert merged is None or merged == window(after, limit)  # (None: the screen reads the whole window)
    if len(added) < tail and not any(moves for _, _, moves in changes) and len(held.rows) > tail:
        assert merged is not None  # the common case, a few new tasks and changes to recent ones, needs no more


def test_a_task_that_moved_among_the_newest_is_shown_once():
    held = TaskPage(({"task_id": "a", "seen": 1.0}, {"task_id": "b", "seen": 2.0}, {"task_id": "c", "seen": 3.0}),
                    False, 0, None)
    fresh = [{"task_id": "c", "seen": 3.0}, {"task_id": "a", "seen": 9.0}]  # a's start came late: it moved
    page = merge_tail(held, fresh, tail=2, limit=10)
    assert [r["task_id"] for r in page.rows] == ["b", "c", "a"]


def tool_event(task_id: str, tool: str, at: float) -> dict:
    return {"v": 1, "kind": "tool_call", "ts": _ts(at), "task_id": task_id, "seq": 50, "call_id": "c50",
            "tool": tool, "input": {"user": "ana"}}


async def test_following_reads_the_newest_rows_and_an_older_change_shows_when_the_whole_window_is_due(
        sample_db, make_app, tmp_path, monkeypatch):
    ids = ordered_ids(sample_db)
    now = [0.0]
    monkeypatch.setattr(tasks_module, "_clock", lambda: now[0])
    monkeypatch.setattr(TasksScreen, "TAIL_MIN", 4)
    monkeypatch.setattr(TasksScreen, "TAIL_PAGES", 0)
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(TaskTable)
        assert table.shown.keys == ids[-200:]
        reads: list[int] = []
        real = app.deck.task_page

        def task_page(*args, **kw):
            reads.append(kw.get("tail", 0))
            return real(*args, **kw)

        app.deck.task_page = task_page
        traces = tmp_path / "live"
        # A new task, 0.2 s after the whole window was read: only the newest rows are read, and the window
        # shown is the whole one, newest at the bottom under the cursor.
        now[0] = 0.2
        ingest(sample_db, write_trace(traces / "a.jsonl", task_lines("live-1", at=9 * 3600)))
        app.post_message(Ingested(events=4, tasks={"live-1"}))
        await wait_until(pilot, lambda: table.shown.keys[-1:] == ["live-1"])
        await settle(app, pilot)
        assert reads and set(reads) == {4}  # (the store watcher may hear the commit too: one read or two)
        assert table.shown.keys == ids[-199:] + ["live-1"]
        assert table.cursor_task == "live-1"

        # A late event of an older task, out of view and out of the newest rows, and then no commit at all:
        # the whole window is read when due and the row shows it.
        older = ids[-100]
        ingest(sample_db, write_trace(traces / "b.jsonl", [tool_event(older, "zz.late_tool", 9 * 3600 + 5)]))
        before = len(reads)
        app.post_message(Ingested(events=1, tasks={older}))
        await wait_until(pilot, lambda: len(reads) > before)
        await settle(app, pilot)
        assert set(reads) == {4}  # (still within the second: only the newest rows)
        assert table.shown.cells[older][7].plain != "zz.late_tool"
        now[0] = 1.5  # the whole window is due
        await wait_until(pilot, lambda: table.shown.cells[older][7].plain == "zz.late_tool")
        assert reads[-1] == 0  # read whole
        assert table.shown.keys == ids[-199:] + ["live-1"]
        assert table.cursor_task == "live-1"


# The list is ordered by coalesce(started, last_ts) and ``started`` takes the earliest task_start
# (store/ingest.py): a task first seen by its later events moves *back* when its start arrives. A task that
# leaves the newest rows that way must not vanish from the window until the next whole read. (A task new to
# the window whose start is older than the newest rows read -- a trace file read late -- is off screen while
# following and appears with the next whole read, within TasksScreen.FULL_EVERY: docs/console.md.)
def _whole(state: dict[str, float], limit: int) -> TaskPage:
    rows = sorted(({"task_id": t, "seen": seen} for t, seen in state.items()), key=order_key)
    return TaskPage(tuple(rows[-limit:]), len(rows) > limit, 0, None)


def test_the_newest_task_whose_start_arrives_late_is_not_dropped_from_the_window():
    state = {f"t{i}": float(i) for i in range(10)}
    held = _whole(state, 8)  # t2..t9, t9 newest: under the cursor while following
    state["t9"] = 2.5  # its task_start came: started (2.5) is older than its events' last_ts (9.0)
    fresh = list(_whole(state, 3).rows)  # t6, t7, t8
    merged = merge_tail(held, fresh, 3, 8)
    assert merged is None or [r["task_id"] for r in merged.rows] == [r["task_id"] for r in _whole(state, 8).rows]

