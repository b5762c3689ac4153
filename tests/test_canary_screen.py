"""The Canary screen on the fixed sample store: panels, keys, tasks behind a metric, replay."""

from __future__ import annotations

import time

from textual.widgets import Static

from agentdeck.console.widgets.canary_sparks import TrendPanel
from agentdeck.console.widgets.canary_tables import CanaryTaskTable, MetricTable

from tasks_support import wait_until
from test_canary_differences import settled_after


async def _open(app, pilot):
    await pilot.press("3")
    await app.settled()
    await pilot.pause()
    return app.screen


def test_canary_screen_snapshot(sample_db, make_app, snap_compare):
    # The screen opens on window "all", so the fixed clock does not matter.
    assert snap_compare(make_app(sample_db), terminal_size=(140, 40), run_before=settled_after("3"))


def test_canary_screen_records_agent_latency_snapshot(sample_db, make_app, snap_compare):
    assert snap_compare(make_app(sample_db), terminal_size=(140, 40),
                        run_before=settled_after("3", "t", "down", "down", "down", "down", "down"))


async def test_panels_show_the_verdicts(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _open(app, pilot)
        headline = str(screen.query_one("#canary-headline", Static).render())
        assert "approval-agent" in headline and "bounded" in headline and "partial" in headline
        assert "21% canary" in headline
        # The live verdict is sequential: latency is already shown worse; the
        # 86 canary tasks are not yet enough to show the action errors worse,
        # and the verdict line says how many more it needs.
        verdict = str(screen.query_one("#canary-verdict", Static).render())
        assert "HOLD  needs ~" in verdict and "more canary tasks" in verdict and "latency worse" in verdict
        table = screen.query_one("#canary-metrics", MetricTable)
        verdicts = {str(cells[0]): str(cells[1]) for cells in map(table.get_row_at, range(table.row_count))}
        assert verdicts["action errors"] == "hold"
        assert verdicts["latency p50"] == "roll back"
        assert verdicts["tokens p50"] == "promote"
        sparks = screen.query_one(TrendPanel).series("latency")
        assert all(len(s) == 24 and max(s) > 0 for s in sparks)


async def test_keys_switch_agent_and_window(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _open(app, pilot)
        assert screen.report.agent == "approval-agent"
        await pilot.press("t")
        await app.settled()
        await pilot.pause()
        assert screen.report.agent == "records-agent"
        await pilot.press("w")  # all -> 15m: only the last few sample tasks
        await app.settled()
        await pilot.pause()
        assert screen.report.window == "15m"
        assert screen.report.n_canary < 20 and "not enough data" in screen.report.reason
        assert "HOLD" in str(screen.query_one("#canary-verdict", Static).render())
        for _ in range(2):
            await pilot.press("w")
        await app.settled()
        await pilot.pause()
        assert screen.report.window == "24h"
        # The last 24 hours up to the fixed clock: sample tasks started after it are not counted.
        from agentdeck.store.db import connect

        expected = connect(sample_db).execute(
            "SELECT count(*) FROM tasks WHERE agent = 'records-agent' AND version = 'v1' AND started BETWEEN ? AND ?",
            (app.now() - 86400, app.now())).fetchone()[0]
        assert screen.report.n_baseline == expected < 171


async def test_selecting_a_metric_lists_its_tasks_and_enter_opens_the_replay(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _open(app, pilot)
        tasks = screen.query_one("#canary-tasks", CanaryTaskTable)
        assert tasks.row_count == 22  # tasks with a failed, compensated or contract-breaking action
        for _ in range(5):
            await pilot.press("down")  # to latency
        await app.settled()
        await pilot.pause()
        assert screen.metric_key == "latency"
        assert tasks.row_count == 200  # the slowest first, up to a page
        first = tasks.get_row_at(0)
        assert str(first[0]) == "v2"
        await pilot.press("enter")  # metric chosen: focus goes to its tasks
        assert app.focused is tasks
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.current_mode == "replay")  # a busy machine may take more than a pause
        assert app.replay_task == str(first[2])


async def test_a_report_read_for_the_metric_left_does_not_list_its_tasks_under_the_one_highlighted(
        sample_db, make_app):
    # A live reload asked while the operator was on latency (j), landing after k took them back to action
    # errors: its task list is latency's, and it once replaced the 22 action-error tasks under their title.
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _open(app, pilot)
        tasks = screen.query_one("#canary-tasks", CanaryTaskTable)
        assert screen.metric_key != "latency" and tasks.row_count == 22
        late = screen.deck.canary(screen.agent, dict(screen.chosen), screen.window, "latency")
        assert len(late.tasks) == 200  # latency's list: not the one shown
        screen._show_view(late, "latency")  # what the reload's worker hands over (run_off_ui's show)
        assert tasks.row_count == 22, "the highlighted metric's tasks stay listed"
        await app.settled()
        await pilot.pause()
        assert tasks.row_count == 22, "and its list, read again for the new report, is the same metric's"
        title = str(screen.query_one("#canary-tasks-title").render())
        assert "action" in title.lower(), title


async def test_the_screen_follows_new_data(sample_db, make_app):
    from agentdeck.store.db import connect

    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _open(app, pilot)
        before = screen.report.n_canary
        conn = connect(sample_db)
        conn.execute("""INSERT INTO tasks (task_id, agent, version, cohort, stage, started)
                        VALUES ('task-new', 'approval-agent', 'v2', 'canary', 'partial', 1795520000)""")
        app.data_version += 1
        # Reloads on new data are throttled (at most one a second): wait for it.
        deadline = time.monotonic() + 10
        while screen.report.n_canary == before and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert screen.report.n_canary == before + 1


async def test_hostile_names_are_shown_literally(sample_db, make_app):
    from agentdeck.store.db import connect

    evil_agent = "[@click=app.quit]evil\x1b[31m"
    conn = connect(sample_db)
    rows = [(f"evil-{i}", evil_agent, "v1" if i % 2 else "[b]v2\x07", "canary" if i % 2 == 0 else "baseline",
             1795520000 + i) for i in range(10)]
    conn.executemany("INSERT INTO tasks (task_id, agent, version, cohort, started) VALUES (?, ?, ?, ?, ?)", rows)
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _open(app, pilot)
        assert screen.report.agent == evil_agent  # sorts first
        headline = screen.query_one("#canary-headline", Static).render()
        assert "[@click=app.quit]evil␛[31m" in str(headline)
        assert "[b]v2\\x07" in str(headline)
        await pilot.click("#canary-headline")
        assert app.is_running  # the markup-looking name is not a link


async def test_bursts_of_new_data_are_coalesced(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _open(app, pilot)
        loads: list[float] = []
        original = screen._load

        def counted() -> None:
            loads.append(time.monotonic())
            original()

        screen._load = counted  # type: ignore[method-assign]
        started = time.monotonic()
        for _ in range(30):  # a burst: batches commit faster than the screen could redraw
            app.data_version += 1
        await pilot.pause()
        burst = time.monotonic() - started
        deadline = time.monotonic() + 10
        while not loads and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await app.settled()
        # At most one reload a MIN_RELOAD_SECONDS while the burst lasts, plus
        # the trailing one: never one per batch, however slow the machine.
        from agentdeck.console.screens.canary import MIN_RELOAD_SECONDS

        assert 1 <= len(loads) <= 2 + int(burst / MIN_RELOAD_SECONDS)
        assert len(loads) < 30


async def test_a_task_with_violations_shows_them(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _open(app, pilot)
        tasks = screen.query_one("#canary-tasks", CanaryTaskTable)
        row = next(i for i in range(tasks.row_count) if str(tasks.get_row_at(i)[2]) == "task-0304")
        tasks.focus()
        tasks.move_cursor(row=row)
        line = ""
        deadline = time.monotonic() + 10
        while "task-0304" not in line and time.monotonic() < deadline:
            await pilot.pause(0.05)
            line = str(screen.query_one("#canary-task-violations", Static).render())
        assert "task-0304" in line and "seq 6 unapproved_action" in line and "role=org-admin" in line


async def test_versions_can_be_chosen(sample_db, make_app):
    from agentdeck.store.db import connect

    conn = connect(sample_db)  # a third version of the approval agent starts
    conn.executemany("INSERT INTO tasks (task_id, agent, version, cohort, stage, started) VALUES (?, ?, ?, ?, ?, ?)",
                     [(f"v3-{i}", "approval-agent", "v3", "canary", "shadow", 1795533000 + i) for i in range(5)])
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _open(app, pilot)
        assert (screen.report.baseline, screen.report.canary) == ("v1", "v3")  # the latest canary by default
        assert screen.report.stage_canary == "shadow"
        await pilot.press("v")
        await app.settled()
        await pilot.pause()
        assert (screen.report.baseline, screen.report.canary) == ("v1", "v2")
        assert screen.report.verdict == "hold" and screen.report.metric("latency").verdict == "roll back"
        await pilot.press("b")  # the baseline moves on, skipping the canary's version
        await app.settled()
        await pilot.pause()
        assert (screen.report.baseline, screen.report.canary) == ("v3", "v2")


# -- 80x24 (issue 13): the verdict whole, the columns past the edge within reach ------------------------


async def test_the_verdict_is_read_whole_at_80x24(sample_db, make_app):
    from tasks_support import screen_lines

    app = make_app(sample_db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot)
        reason = screen.report.reason
        assert len(reason) > 60  # longer than the room left on the verdict's line at 80 columns
        lines = [line.strip() for line in screen_lines(app)]
        start = next(i for i, line in enumerate(lines) if line.startswith("HOLD"))
        shown = " ".join(lines[start:start + 2])  # wrapped onto a second line
        assert reason in shown and shown.endswith("p<0.001)")
        assert all(len(line) <= 80 for line in screen_lines(app))


async def test_right_and_left_reach_the_columns_past_the_edge_at_80x24(sample_db, make_app):
    from tasks_support import screen_lines

    app = make_app(sample_db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot)
        metrics, tasks = screen.query_one(MetricTable), screen.query_one(CanaryTaskTable)
        assert metrics.column_labels()[-1] != "test" and tasks.column_labels()[-1] != "esc"

        def header(table) -> str:
            return next(line for line in screen_lines(app) if line.startswith(" " + table.column_labels()[0]))

        assert header(metrics).rstrip().endswith("→")  # says there is more to the right
        await pilot.press("right")  # the metrics have focus: their "test" column comes into view
        await pilot.pause()
        assert metrics.column_labels()[0] == "metric" and metrics.column_labels()[-1] == "test"
        assert "←" in header(metrics) and not header(metrics).rstrip().endswith("→")
        await pilot.press("enter")  # to the tasks behind the metric
        assert app.focused is tasks
        first = tasks.cursor_task
        for _ in range(6):
            await pilot.press("right")
        await pilot.pause()
        labels = tasks.column_labels()
        assert labels[:3] == ["ver", "started", "task"] and labels[-1] == "esc"  # which task stays in view
        row = next(line for line in screen_lines(app) if first in line)
        assert len(row) <= 80
        await pilot.press("j")
        assert tasks.column_labels() == labels  # moving down keeps the view
        for _ in range(6):
            await pilot.press("left")
        await pilot.pause()
        assert tasks.column_labels()[:4] == ["ver", "started", "task", "outcome"] and tasks.column_offset == 0
        await pilot.press("k", "r")  # and r still opens the highlighted task
        await pilot.pause()
        assert app.current_mode == "replay" and app.replay_task == first


async def test_all_columns_fit_at_160x45_and_right_changes_nothing(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await _open(app, pilot)
        tasks = screen.query_one(CanaryTaskTable)
        assert tasks.column_labels()[-1] == "esc" and screen.query_one(MetricTable).column_labels()[-1] == "test"
        tasks.focus()
        await pilot.press("right")
        assert tasks.column_labels()[0] == "ver" and tasks.column_offset == 0


def test_canary_tasks_scrolled_right_snapshot_80x24(sample_db, make_app, snap_compare):
    assert snap_compare(make_app(sample_db), terminal_size=(80, 24),
                        run_before=settled_after("3", "enter", "right", "right", "right"))


def test_canary_tasks_scrolled_right_snapshot_160x45(sample_db, make_app, snap_compare):
    assert snap_compare(make_app(sample_db), terminal_size=(160, 45),
                        run_before=settled_after("3", "enter", "right", "right", "right"))


async def test_tasks_read_for_the_agent_left_are_not_listed_under_the_next_agents_report(sample_db, make_app):
    # t (the next agent's report on its way), then j k while it was read: the metric's tasks were asked for the
    # report shown then, the agent left. Landing after the new agent's report, they replaced its list: another
    # agent's tasks under this one's headline (Enter replayed them), until the report changed.
    import threading

    from agentdeck.store.db import connect

    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _open(app, pilot)
        assert screen.report.agent == "approval-agent"
        deck = app.deck
        report_read, tasks_read = threading.Event(), threading.Event()
        canary, canary_tasks = deck.canary, deck.canary_tasks

        def held(gate, read):
            def call(*args):
                gate.wait(20)
                return read(*args)
            return call

        deck.canary, deck.canary_tasks = held(report_read, canary), held(tasks_read, canary_tasks)
        try:
            await pilot.press("t")  # records-agent's report: held on its way
            await pilot.press("j", "k")  # back to action errors: its tasks asked for approval-agent's report
            report_read.set()
            await wait_until(pilot, lambda: screen.report.agent == "records-agent")
            tasks_read.set()
            await app.settled()
            await pilot.pause()
        finally:
            report_read.set()
            tasks_read.set()
        assert screen.metric_key == "action_error_rate"
        table = screen.query_one("#canary-tasks", CanaryTaskTable)
        assert table.task_ids, "records-agent has tasks behind action errors"
        conn = connect(sample_db, readonly=True)
        agents = {a for (a,) in conn.execute(
            f"SELECT DISTINCT agent FROM tasks WHERE task_id IN ({','.join('?' * len(table.task_ids))})",
            table.task_ids)}
        conn.close()
        assert agents == {"records-agent"}, agents


async def test_violations_read_for_a_task_left_do_not_replace_the_highlighted_ones(sample_db, make_app):
    # j then k in the tasks list, row 1's violations still being read: back on the first task, its violations
    # come with the report (no read); row 1's, landing after, replaced them under the first task's cursor.
    import threading

    from agentdeck.store.db import connect

    conn = connect(sample_db)  # the second task behind action errors broke its contract too
    conn.execute("INSERT INTO violations (task_id, seq, rule, detail) VALUES ('task-0560', 3, 'unapproved_action', "
                 "'refund without approval')")
    conn.commit()
    conn.close()
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _open(app, pilot)
        tasks = screen.query_one("#canary-tasks", CanaryTaskTable)
        line = screen.query_one("#canary-task-violations", Static)
        await pilot.press("enter")  # to the tasks behind action errors
        assert app.focused is tasks and tasks.cursor_row == 0 and tasks.task_ids[1] == "task-0560"
        shown = str(line.render())
        assert "task-0560" not in shown
        deck, gate = app.deck, threading.Event()
        violations = deck.violations

        def held(task_id):
            gate.wait(20)
            return violations(task_id)

        deck.violations = held
        try:
            await pilot.press("j", "k")  # row 1's violations held on their way; back on the first task
            gate.set()
            await app.settled()
            await pilot.pause()
        finally:
            gate.set()
        assert tasks.cursor_row == 0
        assert str(line.render()) == shown, "the highlighted task's violations stay"


async def test_a_task_s_violations_read_answering_after_the_cursor_moved_on_are_not_shown(sample_db, make_app):
    # The cursor rests on task-0304 (its violations are read), then goes back up to the first task, whose
    # violations came with the report and are shown at once: 0304's read, answering after that, put its
    # violations under the first task.
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _open(app, pilot)
        tasks = screen.query_one("#canary-tasks", CanaryTaskTable)
        first = tasks.task_ids[0]
        assert first != "task-0304" and "task-0304" in tasks.task_ids
        line = screen.query_one("#canary-task-violations", Static)
        screen.load_violations("task-0304")  # the cursor rested on it: read on a worker
        screen.load_violations(first)  # and back on the first task before that read answered
        shown_at_once = str(line.render())
        await app.settled()
        await pilot.pause()
        assert "task-0304" not in str(line.render()), "another task's violations under the first task"
        assert str(line.render()) == shown_at_once
