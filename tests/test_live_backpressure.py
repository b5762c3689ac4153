"""Live refresh without the app's coalescing timer (``[ingest] refresh_every = 0``): each commit heard is told
to the screens at once, and the screen's own backpressure keeps one read at a time: a change heard while a
read is in flight does not supersede it (a stream would starve the screen), the changes heard meanwhile are
read once, after it (issue 9: append -> row visible)."""

from __future__ import annotations

import threading

from agentdeck.console.messages import Ingested
from agentdeck.console.service.ingest_settings import IngestSettings
from agentdeck.console.widgets.task_table import TaskTable
from tasks_support import ingest, settle, task_lines, wait_until, write_trace

SIZE = (140, 40)


async def test_commits_heard_during_a_read_are_read_once_after_it_and_both_rows_show(sample_db, make_app, tmp_path,
                                                                                    monkeypatch):
    from agentdeck.console.screens.tasks import TasksScreen

    # The reads counted are those the commits cause: the once-a-second whole read of a window followed from its
    # newest rows (TasksScreen.FULL_EVERY) would add one whenever this test runs past a second on a busy machine.
    monkeypatch.setattr(TasksScreen, "FULL_EVERY", 3600.0)
    app = make_app(sample_db, ingest=IngestSettings(refresh_every=0))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        # The commits below are told to the screen by this test's own messages only. The store watcher, left
        # running, tells each again whenever its thread gets to look: on a loaded machine that look came after
        # the second read began (emulated with a watcher looking 0.2 s late: 3 reads), a change heard during a
        # read, which is read once more after it, as designed.
        app.ingest.stop.set()
        app.ingest.watcher.wake()
        await wait_until(pilot, lambda: not any(t.name == "store-watch" and t.is_alive() for t in threading.enumerate()))
        table = app.screen.query_one(TaskTable)
        deck, real = app.deck, app.deck.task_page
        gate = threading.Event()
        calls: list[int] = []

        def task_page(*args, **kw):
            calls.append(1)
            if len(calls) == 1:
                gate.wait(10)  # the first read is slow: the commits below come while it is in flight
            return real(*args, **kw)

        deck.task_page = task_page
        traces = tmp_path / "live.jsonl"
        ingest(sample_db, write_trace(traces, task_lines("live-1", at=9 * 3600)))
        app.post_message(Ingested(events=4, tasks={"live-1"}))
        await wait_until(pilot, lambda: len(calls) == 1)
        for n in range(2, 7):  # a stream of commits while that read is in flight
            ingest(sample_db, write_trace(traces, task_lines(f"live-{n}", at=9 * 3600 + n)))
            version = app.data_version
            app.post_message(Ingested(events=4, tasks={f"live-{n}"}))
            await pilot.pause()
            assert app.data_version > version  # told to the screens at once: no timer in between
        # None supersedes the read in flight (each would start over, and a stream starve the screen).
        assert len(calls) == 1
        gate.set()
        await wait_until(pilot, lambda: "live-6" in table.shown.keys)
        await settle(app, pilot)
        assert {f"live-{n}" for n in range(1, 7)} <= set(table.shown.keys)
        assert table.cursor_task == "live-6"  # followed to the newest
        assert len(calls) == 2  # the slow read's answer, then one read for every change heard meanwhile
