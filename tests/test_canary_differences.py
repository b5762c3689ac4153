"""The Canary screen's differences panel and the two-pane Replay it opens, as an operator uses them;
and where the screen's report comes from (the store's, when current)."""

from __future__ import annotations

import time

from agentdeck.console.screens.canary import CanaryScreen
from agentdeck.console.screens.replay_compare import ReplayCompareScreen
from agentdeck.console.widgets.canary_tables import DiffTable, MetricTable
from agentdeck.console.widgets.replay_timeline import ReplayTimeline

NARROW, WIDE = (80, 24), (160, 45)


async def _settle(app, pilot) -> None:
    """Until no read is pending and the screen shows what it asked for (a superseded read counts as done;
    ``workers.wait_for_complete`` raised on one), then the messages its results posted."""
    for _ in range(2):
        await app.settled()
        await pilot.pause()


async def _canary(app, pilot) -> CanaryScreen:
    await pilot.press("3")
    await _settle(app, pilot)
    assert isinstance(app.screen, CanaryScreen)
    return app.screen


# -- snapshots ----------------------------------------------------------------------------


def settled_after(*keys: str):
    """Press the keys, each time until the screen shows what it asked for (no read in flight): a snapshot
    taken with ``press=`` alone may catch the screen before its report arrives on a busy machine."""
    async def run_before(pilot) -> None:
        for key in keys:
            await pilot.press(key)
            await _settle(pilot.app, pilot)  # raises TimeoutError rather than snapshot an unsettled screen

    return run_before


def test_canary_with_differences_snapshot_wide(sample_db, make_app, snap_compare):
    app = make_app(sample_db)
    assert snap_compare(app, terminal_size=WIDE, run_before=settled_after("3"))


def test_canary_snapshot_narrow(sample_db, make_app, snap_compare):
    app = make_app(sample_db)
    assert snap_compare(app, terminal_size=NARROW, run_before=settled_after("3"))


def test_canary_differences_shown_snapshot_narrow(sample_db, make_app, snap_compare):
    app = make_app(sample_db)
    assert snap_compare(app, terminal_size=NARROW, run_before=settled_after("3", "x"))


def test_compare_snapshot_wide(sample_db, make_app, snap_compare):
    app = make_app(sample_db)
    assert snap_compare(app, terminal_size=WIDE, run_before=settled_after("3", "x", "enter"))


def test_compare_snapshot_narrow(sample_db, make_app, snap_compare):
    app = make_app(sample_db)
    assert snap_compare(app, terminal_size=NARROW, run_before=settled_after("3", "x", "enter"))


# -- keys ---------------------------------------------------------------------------------


async def test_the_panel_lists_the_largest_differences_first_with_examples(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=WIDE) as pilot:
        screen = await _canary(app, pilot)
        table = screen.query_one("#canary-diff", DiffTable)
        diff = screen.view.differences
        assert table.row_count == len(diff.differences) > 5
        deltas = [abs(d.delta) for d in diff.differences]
        assert deltas == sorted(deltas, reverse=True)
        first = [str(c) for c in table.get_row_at(0)]
        d = diff.differences[0]
        assert first[1] == d.feature and f"{d.baseline_example} | {d.canary_example}" == first[6]
        # Tall enough: the tasks behind the metric stay on screen beside it.
        assert screen.query_one("#canary-tasks").display and screen.query_one("#canary-diff-box").display


async def test_x_shows_the_differences_in_place_of_the_tasks_on_80x24_and_back(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=NARROW) as pilot:
        screen = await _canary(app, pilot)
        box, tasks = screen.query_one("#canary-diff-box"), screen.query_one("#canary-tasks")
        assert not box.display and tasks.display
        await pilot.press("x")
        await pilot.pause()
        assert box.display and not tasks.display
        assert app.focused is screen.query_one("#canary-diff", DiffTable)
        assert screen.query_one("#canary-diff", DiffTable).row_count > 0
        await pilot.press("x")
        await pilot.pause()
        assert not box.display and tasks.display
        assert app.focused is screen.query_one("#canary-metrics", MetricTable)


async def _compare_open(app, pilot) -> ReplayCompareScreen:
    await _settle(app, pilot)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        s = app.screen
        if isinstance(s, ReplayCompareScreen) and all(s.recs.get(side) for side in ("baseline", "canary")):
            return s
        await pilot.pause(0.05)
    raise AssertionError("the compare view did not load both tasks")


async def test_enter_on_a_difference_opens_both_examples_side_by_side(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=WIDE) as pilot:
        screen = await _canary(app, pilot)
        await pilot.press("x", "down")
        d = screen.view.differences.differences[1]
        await pilot.press("enter")
        compare = await _compare_open(app, pilot)
        assert compare.recs["baseline"].task_id == d.baseline_example
        assert compare.recs["canary"].task_id == d.canary_example
        assert compare.recs["baseline"].agent_version["id"] == "v1"
        assert compare.recs["canary"].agent_version["id"] == "v2"
        left = compare.query_one("#compare-baseline-timeline", ReplayTimeline)
        right = compare.query_one("#compare-canary-timeline", ReplayTimeline)
        assert app.focused is left and len(left.steps) and len(right.steps)
        # Side by side when wide: the canary pane starts right of the baseline pane, on the same row.
        lr, rr = compare.query_one("#compare-baseline").region, compare.query_one("#compare-canary").region
        assert rr.x >= lr.right and rr.y == lr.y
        await pilot.press("n", "n")
        assert (left.cursor, right.cursor) == (2, 2)  # n steps both
        await pilot.press("tab", "j")
        assert app.focused is right and (left.cursor, right.cursor) == (2, 3)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and app.current_mode == "canary"


async def test_stacked_on_80x24_and_enter_opens_the_focused_task_alone_on_replay(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=NARROW) as pilot:
        screen = await _canary(app, pilot)
        await pilot.press("x")
        d = screen.view.differences.differences[0]
        await pilot.press("r")  # r on the differences: the same as Enter
        compare = await _compare_open(app, pilot)
        lr, rr = compare.query_one("#compare-baseline").region, compare.query_one("#compare-canary").region
        assert rr.y >= lr.bottom and rr.width == lr.width  # stacked, each the full width
        await pilot.press("tab", "enter")
        await _settle(app, pilot)
        assert app.current_mode == "replay" and app.replay_task == d.canary_example


# -- where the report comes from ---------------------------------------------------------------


def _service(db, clock):
    from agentdeck.console.service.deck import DeckService
    from agentdeck.console.service.settings import for_tests

    return DeckService(for_tests(db, None, operator="t", tick=0, follow=False), clock=clock)


def test_the_service_reads_a_current_stored_report_and_recomputes_a_stale_one(sample_db, fixed_clock):
    from agentdeck.store import canary
    from agentdeck.store import canary_reports as cr
    from agentdeck.store.contract import ContractCheck
    from agentdeck.store.db import connect

    deck = _service(sample_db, fixed_clock)
    first = deck.canary(None, {}, "all", "action_error_rate")
    assert first.computed_here  # nothing stored yet: computed, and stored for the next look
    again = deck.canary(None, {}, "all", "action_error_rate")
    assert not again.computed_here and again.report == first.report and again.differences == first.differences
    # New data, no analyst: the stored report is stale, so it is computed again (and says the new count).
    conn = connect(sample_db)
    conn.execute("""INSERT INTO tasks (task_id, agent, version, cohort, stage, started)
                    VALUES ('task-new', 'approval-agent', 'v2', 'canary', 'partial', 1795520000)""")
    third = deck.canary(None, {}, "all", "action_error_rate")
    assert third.computed_here and third.report.n_canary == first.report.n_canary + 1
    # With an analyst keeping the reports (alive), its stored report is used as it is.
    ro = connect(sample_db, readonly=True)
    cr.refresh(ro, conn, fixed_clock(), contracts=ContractCheck())
    conn.execute("""INSERT INTO tasks (task_id, agent, version, cohort, stage, started)
                    VALUES ('task-new2', 'approval-agent', 'v2', 'canary', 'partial', 1795520001)""")
    fourth = deck.canary(None, {}, "all", "action_error_rate")
    # (task-new2 arrived after the round: the analyst's next round counts it; the screen shows the age.)
    assert not fourth.computed_here and fourth.analyst and fourth.report == third.report
    assert fourth.computed_at == fixed_clock()
    # Without an analyst alive that report is stale again, and computed here with the new task.
    conn.execute("UPDATE canary_state SET alive_at = alive_at - 3600")
    fifth = deck.canary(None, {}, "all", "action_error_rate")
    assert fifth.computed_here and fifth.report.n_canary == third.report.n_canary + 1
    book = ContractCheck().book(ro)
    assert fifth.report == canary.analyse(ro, "approval-agent", "v1", "v2", window="all", now=fixed_clock(),
                                          contract=book.get("approval-agent"))


async def test_hostile_tool_names_in_the_differences_are_shown_literally(sample_db, make_app):
    import json

    from agentdeck.store.db import connect
    from agentdeck.store.ingest import apply_batch, decode_chunk

    evil = "[@click=app.quit]evil\x1b[31m"
    lines = []
    for i in range(30):  # a tool only the canary calls, in many of its tasks: a large difference
        tid = f"evil-{i}"
        env = {"v": 1, "task_id": tid, "ts": "2026-11-24T14:50:00Z"}
        lines += [dict(env, kind="task_start", seq=0, request_id=f"r-{tid}", agent="approval-agent",
                       agent_version={"id": "v2"}, cohort="canary", stage="partial", request="x"),
                  dict(env, kind="tool_call", seq=1, call_id="c1", tool=evil, input={})]
    parsed, rejects, _ = decode_chunk(b"".join(json.dumps(x).encode() + b"\n" for x in lines), 0)
    apply_batch(connect(sample_db), None, parsed, rejects)
    app = make_app(sample_db)
    async with app.run_test(size=WIDE) as pilot:
        screen = await _canary(app, pilot)
        table = screen.query_one("#canary-diff", DiffTable)
        cells = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        assert "[@click=app.quit]evil␛[31m" in cells  # the escape made visible, the markup not interpreted
        await pilot.click("#canary-diff")
        assert app.is_running


def _count_analyses(monkeypatch) -> list[str]:
    """Record the agent of every canary analysis run in this process from now on."""
    from agentdeck.store import canary

    calls: list[str] = []
    real = canary.analyse

    def counted(*a, **k):
        calls.append(a[1])
        return real(*a, **k)

    monkeypatch.setattr(canary, "analyse", counted)
    return calls


def test_the_release_tick_uses_the_analysts_current_report(sample_db, fixed_clock, monkeypatch):
    from agentdeck.store import canary_reports as cr
    from agentdeck.store.contract import ContractCheck
    from agentdeck.store.db import connect

    ro, rw = connect(sample_db, readonly=True), connect(sample_db)
    cr.refresh(ro, rw, fixed_clock(), contracts=ContractCheck())
    deck = _service(sample_db, fixed_clock)
    calls = _count_analyses(monkeypatch)
    deck.release_tick()
    assert calls == []  # every pair's "all" report was current in the store: no analysis in this process
    rw.execute("""INSERT INTO tasks (task_id, agent, version, cohort, stage, started)
                  VALUES ('task-new', 'approval-agent', 'v2', 'canary', 'partial', 1795520000)""")
    rw.execute("UPDATE canary_state SET alive_at = alive_at - 3600")  # and no analyst to catch up
    deck.release_tick()
    assert "approval-agent" in calls  # stale: analysed here, as before


async def test_a_failing_analyst_is_said_on_the_screen_and_the_screen_computes_meanwhile(sample_db, make_app,
                                                                                       monkeypatch):
    import threading

    from textual.widgets import Static

    from agentdeck.store import canary_reports as cr

    def broken(*a, **k):
        raise RuntimeError("contract file unreadable")

    monkeypatch.setattr(cr, "refresh", broken)
    stop = threading.Event()
    analyst = cr.CanaryAnalyst(str(sample_db), tick=0.02)
    thread = threading.Thread(target=analyst.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while analyst.error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert analyst.error and "contract file unreadable" in analyst.error
    finally:
        stop.set()
        thread.join(5)
    from agentdeck.console.service.deck import DeckService

    views = []
    real = DeckService.canary

    def spy(self, *a, **k):
        views.append(real(self, *a, **k))
        return views[-1]

    monkeypatch.setattr(DeckService, "canary", spy)
    app = make_app(sample_db)
    async with app.run_test(size=WIDE) as pilot:
        screen = await _canary(app, pilot)
        # Nothing from the failing analyst is trusted: the first look computes here (and stores it: a later
        # reload, after that write, may read this console's own report back).
        assert views and views[0].computed_here and not any(v.analyst for v in views)
        headline = str(screen.query_one("#canary-headline", Static).render())
        assert "canary analyst failing: RuntimeError: contract file unreadable" in headline
        assert screen.report.n_canary == 86  # and the report is there all the same


def test_an_unreadable_cache_of_reports_only_costs_the_computation(sample_db, fixed_clock):
    from agentdeck.store.db import connect

    conn = connect(sample_db)
    conn.execute("DROP TABLE canary_state")
    conn.execute("CREATE TABLE canary_state (id INTEGER)")  # damaged: none of the columns read
    view = _service(sample_db, fixed_clock).canary(None, {}, "all", "action_error_rate")
    assert view.computed_here and view.report is not None and view.report.n_canary == 86


def test_a_following_console_leaves_verdicts_to_its_analysts_first_round(sample_db, fixed_clock, monkeypatch,
                                                                         tmp_path):
    """At start-up the console's ingest process runs the canary analyst: the release tick does not run the
    same analysis on the console's process meanwhile, uses the analyst's reports once stored, and analyses
    here again when the analyst failed or never came."""
    import time

    from agentdeck.console.service.deck import DeckService
    from agentdeck.console.service.settings import for_tests
    from agentdeck.store import canary_reports as cr
    from agentdeck.store.contract import ContractCheck
    from agentdeck.store.db import connect

    deck = DeckService(for_tests(sample_db, [tmp_path], operator="t", tick=0, follow=True), clock=fixed_clock)
    deck.expect_analyst()  # what the console does when it starts its ingest process
    calls = _count_analyses(monkeypatch)
    ro, rw = connect(sample_db, readonly=True), connect(sample_db)
    deck.release_tick()
    deck.release_tick()  # nothing ingested since, but the verdicts are still owed: looked at again
    assert calls == [] and deck.release_error is None

    cr.refresh(ro, rw, time.time(), contracts=ContractCheck())  # the analyst's first round is in
    calls.clear()
    deck.release_tick()
    assert calls == [] and deck.release_error is None  # the verdicts, from the stored reports

    # A console started after that round, whose analyst then failed: analysed here at once.
    late = DeckService(for_tests(sample_db, [tmp_path], operator="t", tick=0, follow=True), clock=fixed_clock)
    late.expect_analyst()
    cr.record_error(rw, "RuntimeError: contract file unreadable")
    rw.execute("""INSERT INTO tasks (task_id, agent, version, cohort, stage, started)
                  VALUES ('task-new', 'approval-agent', 'v2', 'canary', 'partial', 1795520000)""")
    calls.clear()
    late.release_tick()
    assert "approval-agent" in calls
    # A service no console has started an ingest process for (a command, a test) analyses here at once.
    plain = DeckService(for_tests(sample_db, [tmp_path], operator="t", tick=0, follow=True), clock=fixed_clock)
    calls.clear()
    rw.execute("DELETE FROM canary_reports")
    plain.release_tick()
    assert "approval-agent" in calls
