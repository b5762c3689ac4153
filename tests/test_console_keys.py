"""One key map for the whole console, as an operator presses it: `?` toggles the key panel."""

from __future__ import annotations

from tasks_support import screen_lines, settle
from test_escalations_support import esc_db  # noqa: F401  (fixture)

WIDE = (160, 45)


def help_open(app) -> bool:
    return bool(app.screen.query("HelpPanel"))


async def test_escape_closes_the_key_panel_then_means_what_it_means_on_the_screen(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=WIDE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"outcome:failed", "enter")
        await settle(app, pilot)
        assert not app.screen.filt.empty
        await pilot.press("question_mark")
        await pilot.press("escape")
        assert not help_open(app)
        assert not app.screen.filt.empty, "the first Esc closes the panel only"
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.screen.filt.empty


async def test_the_header_stays_on_one_line_with_the_key_panel_open(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=WIDE) as pilot:
        await settle(app, pilot)
        before = screen_lines(app)[:2]
        await pilot.press("question_mark")
        await pilot.pause()
        assert screen_lines(app)[:2] == before, "the panel must not squeeze the header"
        assert "events" in before[0]


# --- one key, one meaning -------------------------------------------------------

# Keys whose meaning is "the obvious thing for what has focus" (a kind, not one
# action): Esc backs out (clear filter, back, close input, cancel); Enter opens or
# applies; Tab moves between panes.
CONTEXT_KEYS = {"escape", "enter", "tab"}


def _bound_classes():
    from agentdeck.console.app import AgentDeck
    from agentdeck.console.screens.canary import CanaryScreen
    from agentdeck.console.screens.escalations import EscalationsScreen
    from agentdeck.console.screens.problems import ProblemsScreen
    from agentdeck.console.screens.replay import ReplayScreen
    from agentdeck.console.screens.replay_compare import ReplayCompareScreen
    from agentdeck.console.screens.task_detail import TaskDetailScreen
    from agentdeck.console.screens.tasks import TasksScreen
    from agentdeck.console.widgets.escalation_table import EscalationTable
    from agentdeck.console.widgets.replay_timeline import ReplayTimeline
    from agentdeck.console.widgets.task_events import EventTable
    from agentdeck.console.widgets.payload_scroll import PayloadScroll
    from agentdeck.console.widgets.compensation_dialog import CompensationDialog
    from agentdeck.console.widgets.reason_dialog import ReasonDialog
    from agentdeck.console.widgets.suite_failures import SuiteFailures
    from agentdeck.console.widgets.task_filter import FilterInput
    from agentdeck.console.widgets.task_table import TaskTable
    from agentdeck.console.widgets.vim_table import VimTable
    from agentdeck.console.widgets.canary_tables import CanaryTaskTable, DiffTable, MetricTable

    return [AgentDeck, TasksScreen, TaskDetailScreen, EscalationsScreen, CanaryScreen, ReplayScreen, ProblemsScreen,
            ReplayCompareScreen, TaskTable, VimTable, MetricTable, DiffTable, CanaryTaskTable, EventTable, EscalationTable, ReplayTimeline, SuiteFailures, ReasonDialog,
            CompensationDialog, FilterInput, PayloadScroll]


def test_every_key_means_one_thing_on_every_screen():
    from agentdeck.console.keymap import KEY_MAP

    meanings: dict[str, set[tuple[str, str]]] = {}
    for cls in _bound_classes():
        for binding in cls.__dict__.get("BINDINGS", []):
            for key in binding.key.split(","):
                meanings.setdefault(key.strip(), set()).add((cls.__name__, binding.description))
    for key, where in meanings.items():
        if key in CONTEXT_KEYS or key == "ctrl+c":
            continue
        assert key in KEY_MAP, f"{key} is bound ({where}) but not in the key map"
        descriptions = {d for _, d in where}
        assert descriptions == {KEY_MAP[key]}, f"{key} means {where}; the key map says {KEY_MAP[key]!r}"


async def test_r_replays_the_selected_task_on_tasks_and_escalations(esc_db, make_app):
    from test_escalations_support import settle as esc_settle

    app = make_app(esc_db)
    async with app.run_test(size=WIDE) as pilot:
        await settle(app, pilot)
        wanted = app.screen.table.cursor_task
        await pilot.press("r")
        await settle(app, pilot)
        assert (app.current_mode, app.replay_task) == ("replay", wanted)
        await pilot.press("2")
        await esc_settle(pilot)
        row = app.screen._selected()
        assert row is not None
        await pilot.press("r")
        await esc_settle(pilot)
        assert (app.current_mode, app.replay_task) == ("replay", row["task_id"])


async def test_r_replays_a_task_behind_a_canary_metric(sample_db, make_app):
    from agentdeck.console.widgets.canary_tables import CanaryTaskTable
    from test_escalations_support import settle as esc_settle

    app = make_app(sample_db)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("3")
        await esc_settle(pilot, rounds=8)
        tasks = app.screen.query_one("#canary-tasks", CanaryTaskTable)
        assert tasks.row_count
        wanted = tasks.cursor_task
        await pilot.press("r")
        await esc_settle(pilot)
        assert (app.current_mode, app.replay_task) == ("replay", wanted)


async def test_square_brackets_walk_the_decision_points_both_ways(sample_db, make_app):
    from agentdeck.console.widgets.replay_timeline import ReplayTimeline
    from test_escalations_support import settle as esc_settle

    app = make_app(sample_db)
    async with app.run_test(size=WIDE) as pilot:
        app.open_replay("task-0001")
        await pilot.press("4")
        await esc_settle(pilot)
        timeline = app.screen.query_one(ReplayTimeline)
        points = app.screen.rec.decision_points
        assert points
        await pilot.press("right_square_bracket")
        assert timeline.cursor == points[0]
        await pilot.press("left_square_bracket")
        assert timeline.cursor == points[-1], "wraps around backwards"
        await pilot.press("d")
        assert timeline.cursor == points[-1], "d is Deny (Escalations only): nothing here"


# --- the same movement keys on every list ------------------------------------------

async def _walk(pilot, position, size: int) -> None:
    """j/k, G/g, End/Home and the page keys move ``position()`` over a list of ``size`` rows."""
    assert size >= 3, "a list to move in"
    for keys, expected in ((("G",), size - 1), (("g",), 0), (("j",), 1), (("down",), 2), (("k",), 1),
                           (("end",), size - 1), (("home",), 0), (("pagedown",), None), (("pageup",), 0)):
        await pilot.press(*keys)
        await pilot.pause()
        if expected is None:
            assert position() > 1, f"{keys} moves more than a row"
        else:
            assert position() == expected, f"{keys} -> {position()}, expected {expected}"


async def test_list_keys_on_the_escalation_queue_and_the_decided_list(esc_db, make_app):
    from test_escalations_support import settle as esc_settle

    app = make_app(esc_db)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("2")
        await esc_settle(pilot)
        table = app.screen.query_one("#esc-table")
        await _walk(pilot, lambda: table.cursor_row, table.row_count)
        await pilot.press("h")
        await esc_settle(pilot)
        assert table.history and table.row_count >= 3
        await pilot.press("G")
        await pilot.press("home")
        assert table.cursor_row == 0, "Home reaches the top of the decided list"
        await _walk(pilot, lambda: table.cursor_row, table.row_count)


async def test_list_keys_on_the_canary_tasks_behind_a_metric(sample_db, make_app):
    from test_escalations_support import settle as esc_settle

    app = make_app(sample_db)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("3")
        await esc_settle(pilot, rounds=8)
        metrics = app.screen.query_one("#canary-metrics")
        await pilot.press("j")
        await esc_settle(pilot)
        assert metrics.cursor_row == 1, "j moves on the metrics too"
        await pilot.press("k")  # back to action errors: 22 tasks behind it
        await esc_settle(pilot)
        await pilot.press("enter")  # to the tasks behind it
        await esc_settle(pilot)
        tasks = app.screen.query_one("#canary-tasks")
        assert app.focused is tasks
        await _walk(pilot, lambda: tasks.cursor_row, tasks.row_count)


async def test_list_keys_on_the_replay_timeline(sample_db, make_app):
    from agentdeck.console.widgets.replay_timeline import ReplayTimeline
    from test_escalations_support import settle as esc_settle

    app = make_app(sample_db)
    async with app.run_test(size=WIDE) as pilot:
        app.open_replay("task-0001")
        await pilot.press("4")
        await esc_settle(pilot)
        timeline = app.screen.query_one(ReplayTimeline)
        await _walk(pilot, lambda: timeline.cursor, len(timeline.steps))


async def test_list_keys_on_problems(sample_db, make_app):
    from agentdeck.store.health import Health, Problem
    from test_escalations_support import settle as esc_settle

    app = make_app(sample_db)
    app.ingest.watcher.health_every = 3600  # only the health set below is shown
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("5")
        await esc_settle(pilot)
        app.health = Health("warn", tuple(Problem(f"p{i}", "warn", f"problem {i}", "", None, "wait")
                                          for i in range(30)), checked_at=0.0)
        await pilot.pause()
        table = app.screen.query_one("#problems-table")
        await _walk(pilot, lambda: table.cursor_row, table.row_count)


async def test_after_a_decision_the_cursor_stays_at_the_same_position(esc_db, make_app):
    from test_escalations_support import settle as esc_settle

    app = make_app(esc_db)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("2")
        await esc_settle(pilot)
        table = app.screen.query_one("#esc-table")
        order = [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]
        await pilot.press("j")
        await esc_settle(pilot)
        assert table.selected_id() == order[1]
        await pilot.press("d", *"dup", "enter")
        await esc_settle(pilot)
        assert order[1] not in app.screen.rows, "denied: it left the queue"
        assert (table.cursor_row, table.selected_id()) == (1, order[2]), "the next one moved under the cursor"
        # The last row decided: the cursor stays on the (new) last row.
        await pilot.press("G", "d", *"dup", "enter")
        await esc_settle(pilot)
        assert table.cursor_row == table.row_count - 1 == 1


# --- what a row says: a date whenever a time is not today ------------------------------

def test_a_time_not_today_carries_its_date():
    from conftest import FIXED_NOW  # 2026-11-24 15:00 UTC
    from agentdeck.console.widgets.chrome import format_clock

    five_days_ago = FIXED_NOW - 5 * 86400
    assert format_clock(FIXED_NOW - 60, FIXED_NOW) == "14:59:00"
    assert format_clock(five_days_ago, FIXED_NOW) == "Nov 19 15:00:00"
    assert format_clock(five_days_ago, FIXED_NOW, short=True) == "Nov 19"
    assert format_clock(FIXED_NOW - 400 * 86400, FIXED_NOW, short=True) == "Oct 2025"
    assert format_clock(FIXED_NOW - 400 * 86400, FIXED_NOW) == "2025-10-20 15:00:00"


async def test_tasks_from_five_days_ago_show_their_date_beside_todays(tmp_path, make_app):
    from tasks_support import ingest, screen_text, task_lines, write_trace

    traces = tmp_path / "traces"
    write_trace(traces / "a.jsonl", task_lines("t-old", at=-5 * 86400) + task_lines("t-today", at=0))
    db = tmp_path / "a.db"
    ingest(db, traces)
    app = make_app(db)
    async with app.run_test(size=WIDE) as pilot:
        await settle(app, pilot)
        lines = screen_text(app).splitlines()
        old = next(line for line in lines if "t-old" in line)
        today = next(line for line in lines if "t-today" in line)
        assert old.split()[0:2] == ["Nov", "19"]
        assert today.split()[0] == "14:00:00"


async def test_question_mark_toggles_the_key_panel_on_every_screen(esc_db, make_app):
    from test_escalations_support import settle as esc_settle

    app = make_app(esc_db)
    async with app.run_test(size=WIDE) as pilot:
        for screen_key in ("1", "2", "3", "4", "5"):
            await pilot.press(screen_key)
            await esc_settle(pilot)
            await pilot.press("question_mark")
            assert help_open(app), screen_key
            await pilot.press("question_mark")
            assert not help_open(app), screen_key
            await pilot.press("question_mark", "escape")
            assert not help_open(app), screen_key


async def test_the_key_panel_lists_each_list_move_once_on_every_screen(esc_db, make_app):  # noqa: F811
    """`?` on a list: g/Home is "Top"; the table's own Page Left / ctrl+home are not listed beside it."""
    from test_escalations_support import settle as esc_settle

    app = make_app(esc_db)
    async with app.run_test(size=WIDE) as pilot:
        for screen_key in ("1", "2", "3", "5"):
            await pilot.press(screen_key)
            await esc_settle(pilot)
            await pilot.press("question_mark")
            await pilot.pause()
            panel = "\n".join(screen_lines(app))
            assert "Page Left" not in panel and "Page Right" not in panel, screen_key
            assert panel.count(" Top") == 1 and panel.count(" Bottom") == 1, screen_key
            await pilot.press("question_mark")
