"""The Tasks screen as an operator uses it: follow, pause, page, filter, open, replay."""

from __future__ import annotations

from agentdeck.console.messages import Ingested
from agentdeck.console.screens.task_detail import TaskDetailScreen
from agentdeck.console.screens.tasks import TasksScreen
from agentdeck.console.widgets.task_table import TaskTable
from agentdeck.store import queries
from agentdeck.store.db import connect
from tasks_support import ingest, ordered_ids, screen_text, settle, task_lines, wait_until, write_trace

SIZE = (140, 40)


def status(app) -> str:
    return str(app.screen.query_one("#tasks-status").render())


async def test_follow_shows_the_newest_task_under_the_cursor(sample_db, make_app):
    ids = ordered_ids(sample_db)
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, TasksScreen)
        table = screen.query_one(TaskTable)
        assert table.shown.keys == ids[-200:]  # one window, never the whole store
        assert table.cursor_task == ids[-1]
        assert "FOLLOW" in status(app)
        assert ids[-1] in screen_text(app)  # newest row scrolled into view


async def test_moving_pauses_new_tasks_are_counted_and_f_resumes(sample_db, make_app, tmp_path):
    ids = ordered_ids(sample_db)
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(TaskTable)
        await pilot.press("k")
        await settle(app, pilot)
        assert table.cursor_task == ids[-2]
        assert "PAUSED" in status(app)

        # Two new tasks arrive while paused: the view stays, the status counts them.
        traces = tmp_path / "more"
        write_trace(traces / "a.jsonl", task_lines("late-1", at=4 * 3600) + task_lines("late-2", at=4 * 3600 + 5))
        ingest(sample_db, traces)
        app.post_message(Ingested(events=8, tasks={"late-1", "late-2"}))
        await settle(app, pilot)
        assert table.cursor_task == ids[-2]
        assert "late-1" not in table.shown.keys
        assert "+2 newer" in status(app)

        await pilot.press("f")
        await settle(app, pilot)
        assert "FOLLOW" in status(app)
        assert table.cursor_task == "late-2"
        assert table.shown.keys[-2:] == ["late-1", "late-2"]


async def test_live_tasks_appear_and_update_as_the_tailer_ingests(sample_db, make_app, tmp_path):
    traces = tmp_path / "live"
    traces.mkdir()
    app = make_app(sample_db, traces=[traces])
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(TaskTable)
        lines = task_lines("live-1", at=5 * 3600, tool="crm.get_record", outcome="success")
        write_trace(traces / "agent.jsonl", lines[:3])  # running: no task_end yet
        await wait_until(pilot, lambda: table.cursor_task == "live-1")
        row = lambda: next((line for line in screen_text(app).splitlines() if "live-1" in line), "")
        await wait_until(pilot, lambda: "running" in row())
        assert "crm.get_record" in row()
        write_trace(traces / "agent.jsonl", lines[3:])
        await wait_until(pilot, lambda: "success" in row())
        assert table.cursor_task == "live-1"
        assert "FOLLOW" in status(app)
        # The header says how long ago something was ingested; these events are
        # days old (a backfill), so no "lag" is made up from their timestamps.
        header = lambda: " ".join(screen_text(app).splitlines()[:2])
        await wait_until(pilot, lambda: "ingest " in header() and app.counters is not None
                         and app.counters.last_event_ts is not None)
        assert " lag " not in header()


async def test_window_pages_through_all_tasks_with_vim_keys(sample_db, make_app, monkeypatch):
    # A small window, so a few keypresses cross several window edges.
    monkeypatch.setattr(TasksScreen, "WINDOW", 40)
    ids = ordered_ids(sample_db)
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(TaskTable)
        assert table.shown.keys == ids[-40:]
        await pilot.press("g")
        await settle(app, pilot)
        assert table.cursor_task == ids[0]
        assert "PAUSED" in status(app)
        half = table._page_rows() // 2
        presses = 100 // half + 1  # past the first two windows
        for _ in range(presses):
            await pilot.press("ctrl+d")
            await settle(app, pilot)
        assert table.cursor_task == ids[presses * half]
        assert table.row_count <= 40
        for _ in range(presses):
            await pilot.press("ctrl+u")
            await settle(app, pilot)
        assert table.cursor_task == ids[0]
        # j/k across window edges without waiting for the next window: no keypress is lost.
        while table.cursor_row < table.row_count - 3:
            await pilot.press("ctrl+d")
            await settle(app, pilot)
        start = ids.index(table.cursor_task)
        await pilot.press(*["j"] * 8)
        await settle(app, pilot)
        assert table.cursor_task == ids[start + 8]
        back = table.cursor_row + 5
        await pilot.press(*["k"] * back)
        await settle(app, pilot)
        assert table.cursor_task == ids[start + 8 - back]
        await pilot.press("G")
        await settle(app, pilot)
        assert table.cursor_task == ids[-1]
        assert "FOLLOW" in status(app)


async def test_filter_typed_shown_and_cleared(sample_db, make_app):
    conn = connect(sample_db)
    failed = [r[0] for r in conn.execute(f"SELECT task_id FROM tasks WHERE outcome = 'failed' ORDER BY {queries.SEEN}, task_id")]
    conn.close()
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(TaskTable)
        await pilot.press("slash", *"outcome:failed", "enter")
        await settle(app, pilot)
        assert table.shown.keys == failed[-200:]
        assert "filter: outcome:failed" in status(app)
        assert app.focused is table

        await pilot.press("slash", "ctrl+u", *"colour:red", "enter")
        await settle(app, pilot)
        assert any("unknown filter 'colour:'" in n.message for n in app._notifications)
        assert table.shown.keys == failed[-200:]  # a bad filter changes nothing
        await pilot.press("escape")  # closes the box
        await pilot.press("escape")  # clears the filter
        await settle(app, pilot)
        assert "filter: none" in status(app)
        assert len(table.shown.keys) == 200


async def test_enter_opens_the_task_events_in_order_and_r_replays(sample_db, make_app):
    conn = connect(sample_db)
    task_id = conn.execute("SELECT task_id FROM tasks WHERE events >= 6 ORDER BY task_id LIMIT 1").fetchone()[0]
    kinds = [r["kind"] for r in queries.task_events(conn, task_id)]
    conn.close()
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *task_id, "enter")
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        detail = app.screen
        assert isinstance(detail, TaskDetailScreen) and detail.task_id == task_id
        table = detail.query_one("#detail-events")
        assert [table.get_row_at(i)[2].plain for i in range(table.row_count)] == kinds
        text = screen_text(app)
        assert '"kind": "task_start"' in text  # the first event's payload, pretty-printed
        await pilot.press("j")
        await pilot.pause()
        assert f'"kind": "{kinds[1]}"' in screen_text(app)
        await pilot.press("k")
        await pilot.pause()
        assert f'"kind": "{kinds[0]}"' in screen_text(app)
        await pilot.press("r")
        await pilot.pause()
        assert app.current_mode == "replay"
        assert app.replay_task == task_id
        await pilot.press("1")
        await pilot.pause()
        assert isinstance(app.screen, TaskDetailScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, TasksScreen)
        # Opened again (the detail screen is one instance, re-pointed): its payload is shown again and
        # moves show each event's.
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == task_id
        assert f'"kind": "{kinds[0]}"' in screen_text(app)
        await pilot.press("j")
        await pilot.pause()
        assert f'"kind": "{kinds[1]}"' in screen_text(app)


async def test_mouse_scroll_pauses_and_live_updates_keep_the_view(sample_db, make_app, tmp_path):
    from textual.events import MouseScrollUp

    ids = ordered_ids(sample_db)
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(TaskTable)
        bottom = table.scroll_y
        for _ in range(3):
            await pilot._post_mouse_events([MouseScrollUp], TaskTable, offset=(20, 10))
        await settle(app, pilot)
        assert "PAUSED" in status(app)
        scrolled = table.scroll_y
        assert scrolled < bottom

        traces = tmp_path / "more"
        write_trace(traces / "a.jsonl", task_lines("late-1", at=4 * 3600))
        ingest(sample_db, traces)
        app.post_message(Ingested(events=4, tasks={"late-1"}))
        await settle(app, pilot)
        assert table.scroll_y == scrolled  # the view is not yanked back to the cursor
        assert table.cursor_task == ids[-1]
        assert "+1 newer" in status(app)


async def test_task_detail_follows_a_running_task(tmp_path, make_app):
    traces = tmp_path / "t"
    lines = task_lines("run-1", outcome="success")
    write_trace(traces / "a.jsonl", lines[:2])
    db = tmp_path / "s.db"
    ingest(db, traces)
    app = make_app(db, abandon_after=0)  # its events are old by the fixed clock: never call it abandoned here
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        detail = app.screen
        assert isinstance(detail, TaskDetailScreen) and detail.task_id == "run-1"
        table = detail.query_one("#detail-events")
        assert table.row_count == 2 and "outcome running" in screen_text(app)
        # Its next events are ingested right away: the open detail shows them.
        write_trace(traces / "a.jsonl", lines[2:])
        ingest(db, traces)
        app.post_message(Ingested(events=2, tasks={"run-1"}))
        await settle(app, pilot)
        assert table.row_count == 4
        assert "outcome success" in screen_text(app)
