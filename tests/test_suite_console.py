"""Suite results in the store and the console: recorded per version, summarised beside the canary, replayed from file."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from conftest import FIXED_NOW
from textual.widgets import DataTable, Static

from agentdeck.console.cli import main
from agentdeck.console.screens.base import settled
from agentdeck.console.service.deck import DeckService
from agentdeck.console.service.settings import for_tests
from agentdeck.console.service.views import SuiteSummary
from agentdeck.console.widgets.suite_format import suite_line

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "sample_data" / "suite"
V1 = f"{sys.executable} -m agentdeck.sample_data.suite_agent --version v1"
V2 = f"{sys.executable} -m agentdeck.sample_data.suite_agent --version v2"
V2_FAILS = ["adversarial-01", "adversarial-02", "adversarial-03", "adversarial-06", "adversarial-07", "adversarial-09"]


def _tasks(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [r[0] for r in conn.execute("SELECT task_id FROM tasks ORDER BY task_id")]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def recorded(_sample_db_template, tmp_path_factory):
    """The sample store after `suite run` of the bundled Top 30 with v2 against the v1 baseline (run once)."""
    folder = tmp_path_factory.mktemp("suite")
    db = folder / "agentdeck.db"
    shutil.copy(_sample_db_template, db)
    before = _tasks(db)
    code = main(["suite", "run", str(SUITE), "--agent-cmd", V2, "--baseline-cmd", V1, "--db", str(db),
                 "--out", str(folder / "out"), "-j", "2", "--json"])
    return db, code, before


@pytest.fixture
def suite_db(recorded, tmp_path) -> Path:
    """A copy of the recorded store with the runs' times fixed against the test clock (v2 12 minutes ago)."""
    db = tmp_path / "agentdeck.db"
    shutil.copy(recorded[0], db)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE suite_runs SET started = ? - 60, finished = ? WHERE version = 'v2'",
                 (FIXED_NOW - 720, FIXED_NOW - 720))
    conn.execute("UPDATE suite_runs SET started = ? - 60, finished = ? WHERE version = 'v1'",
                 (FIXED_NOW - 3 * 3600, FIXED_NOW - 3 * 3600))
    conn.commit()
    conn.close()
    return db


# --- recording ---------------------------------------------------------------------------------

def test_a_suite_run_is_recorded_under_the_agent_and_version_its_traces_reported(recorded):
    db, code, before = recorded
    assert code == 1  # v2 fails six adversarial cases (and regressed against v1)
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    runs = {r["version"]: r for r in conn.execute("SELECT * FROM suite_runs")}
    assert set(runs) == {"v1", "v2"}
    v2 = runs["v2"]
    assert (v2["agent"], v2["passed"], v2["cases"], v2["runs"]) == ("approval-agent", 24, 30, 30)
    assert "--version v2" in v2["command"] and v2["finished"] >= v2["started"]
    failing = [r["case_id"] for r in conn.execute(
        "SELECT case_id FROM suite_cases WHERE run_id = ? AND passed = 0 ORDER BY case_id", (v2["id"],))]
    assert failing == V2_FAILS
    row = conn.execute("SELECT * FROM suite_cases WHERE run_id = ? AND case_id = 'adversarial-02'",
                       (v2["id"],)).fetchone()
    assert "must not happen: payments.refund" in row["reason"] and Path(row["trace"]).is_file()
    assert (runs["v1"]["agent"], runs["v1"]["passed"], runs["v1"]["cases"]) == ("approval-agent", 30, 30)
    # The suite's traces never reach the live store: they would count in the live canary.
    assert _tasks(db) == before


def test_no_record_leaves_the_store_alone(tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    shutil.copy(SUITE / "clean-04.json", folder)
    db = tmp_path / "agentdeck.db"
    assert main(["suite", "run", str(folder), "--agent-cmd", V1, "--db", str(db), "--out", str(tmp_path / "o"),
                 "--no-record"]) == 0
    assert not db.exists() or sqlite3.connect(db).execute("SELECT count(*) FROM suite_runs").fetchone()[0] == 0
    assert main(["suite", "run", str(folder), "--agent-cmd", V1, "--db", str(db), "--out", str(tmp_path / "o")]) == 0
    assert sqlite3.connect(db).execute("SELECT agent, version, passed, cases FROM suite_runs").fetchall() == [
        ("approval-agent", "v1", 1, 1)]


def test_a_store_that_cannot_be_written_is_said_and_the_verdict_stands(tmp_path, capsys):
    folder = tmp_path / "cases"
    folder.mkdir()
    shutil.copy(SUITE / "clean-04.json", folder)
    db = tmp_path / "a-folder.db"
    db.mkdir()  # not a store: opening it fails
    assert main(["suite", "--db", str(db), "run", str(folder), "--agent-cmd", V1, "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "results not recorded: cannot use the store" in err and "--no-record" in err


# --- the service, without the Pilot ----------------------------------------------------------------

def test_suite_summary_is_the_latest_run_of_that_version(suite_db):
    deck = DeckService(for_tests(suite_db), clock=lambda: FIXED_NOW)
    v2 = deck.suite_summary("approval-agent", "v2")
    assert v2 is not None
    assert (v2.passed, v2.cases, v2.finished) == (24, 30, FIXED_NOW - 720)
    assert v2.by_flavour == {"clean": (10, 10), "ambiguous": (10, 10), "adversarial": (4, 10)}
    assert [c.case_id for c in v2.failing] == V2_FAILS
    assert all(c.reason and c.trace and Path(c.trace).is_file() for c in v2.failing)
    v1 = deck.suite_summary("approval-agent", "v1")
    assert v1 is not None and (v1.passed, v1.failing) == (30, ())
    assert deck.suite_summary("approval-agent", "v3") is None
    assert deck.suite_summary("records-agent", "v2") is None
    # A newer run of v2 (all passing now) is the one shown.
    conn = sqlite3.connect(suite_db)
    conn.execute("INSERT INTO suite_runs (started, finished, command, agent, version, passed, cases, runs, by_flavour)"
                 " VALUES (?, ?, 'x', 'approval-agent', 'v2', 30, 30, 30, '{}')", (FIXED_NOW - 70, FIXED_NOW - 60))
    conn.commit()
    conn.close()
    newer = DeckService(for_tests(suite_db), clock=lambda: FIXED_NOW).suite_summary("approval-agent", "v2")
    assert newer is not None and (newer.passed, newer.failing, newer.finished) == (30, (), FIXED_NOW - 60)


def test_replay_trace_rebuilds_the_failing_run_without_touching_the_live_store(suite_db):
    deck = DeckService(for_tests(suite_db), clock=lambda: FIXED_NOW)
    case = deck.suite_summary("approval-agent", "v2").failing[0]  # type: ignore[union-attr]
    before = _tasks(suite_db)
    view = deck.replay_trace(case.trace, wanted="suite:adversarial-01")
    assert view is not None and view.source == case.trace and view.wanted == "suite:adversarial-01"
    rec = view.rec
    assert rec is not None and rec.task_id == "suite-adversarial-01-1"
    assert (rec.agent, rec.agent_version.get("id")) == ("approval-agent", "v2")
    assert [(a.system, a.operation) for a in rec.actions] == [("iam", "grant_role")]
    assert rec.contract and any(v["rule"] == "unapproved_action" for v in rec.contract["violations"])
    assert _tasks(suite_db) == before
    assert deck.replay_trace(case.trace, view.key, "suite:adversarial-01") is None  # unchanged: not rebuilt
    with pytest.raises(FileNotFoundError, match="rerun the suite"):
        deck.replay_trace(Path(case.trace).with_name("gone.jsonl"))


def test_the_suite_line_says_how_the_version_did():
    summary = SuiteSummary(7, "approval-agent", "v2", 24, 30,
                           {"clean": (10, 10), "ambiguous": (10, 10), "adversarial": (4, 10)}, FIXED_NOW - 720, "cmd",
                           failing=tuple(_case(i) for i in range(6)))
    assert suite_line("v2", summary, FIXED_NOW).plain == "suite v2: 24/30 passed (adversarial 4/10), 12m ago — 6 failing"
    assert suite_line("v3", None, FIXED_NOW).plain == "suite v3: never run"
    clean = SuiteSummary(8, "a", "v1", 30, 30, {"clean": (30, 30)}, FIXED_NOW - 3 * 3600, "cmd")
    assert suite_line("v1", clean, FIXED_NOW, hint="s lists them").plain == "suite v1: 30/30 passed, 3h ago"
    # A version label from a trace is shown literally.
    assert suite_line("[bold]v9", None, FIXED_NOW).plain == "suite [bold]v9: never run"


def _case(i: int):
    from agentdeck.console.service.views import SuiteCase

    return SuiteCase(f"c{i}", "adversarial", "r", None, flaky=False)


# --- the console ------------------------------------------------------------------------------------

async def _settle(pilot, until=lambda: True, timeout: float = 20.0) -> None:
    """Wait, bounded, until the screen shows what it last asked for and ``until`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        await pilot.app.settled()
        await pilot.pause()
        if settled(pilot.app.screen) and until():
            return
        assert time.monotonic() < deadline, "the console did not settle"
        await asyncio.sleep(0.02)


def _suite_text(app) -> str:
    try:
        return str(app.screen.query_one("#canary-suite", Static).render())
    except Exception:
        return ""


async def test_s_lists_the_failing_cases_and_enter_replays_one(suite_db, make_app):
    app = make_app(suite_db)
    before = _tasks(suite_db)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("3")
        await _settle(pilot, lambda: "suite v2" in _suite_text(app))
        text = _suite_text(app)
        assert "suite v1: 30/30 passed, 3h ago" in text
        assert "suite v2: 24/30 passed (adversarial 4/10), 12m ago — 6 failing" in text
        await pilot.press("s")
        await _settle(pilot, lambda: app.screen.query("#suite-failures"))
        table = app.screen.query_one("#suite-failures", DataTable)
        assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == V2_FAILS
        await pilot.press("down", "enter")  # adversarial-02: a 9000 refund hidden in tool output
        await _settle(pilot, lambda: "suite-adversarial-02-1" in str(
            app.screen.query_one("#replay-info", Static).render()) if app.screen.query("#replay-info") else False)
        info = str(app.screen.query_one("#replay-info", Static).render())
        assert "approval-agent v2" in info and "outcome success" in info
        assert "not in the live store" in str(app.screen.query_one("#replay-status", Static).render())
        await pilot.press("c")  # no undo of what only happened in a suite run
        await pilot.pause()
        assert "nothing in it happened" in str(app.screen.query_one("#replay-status", Static).render())
    assert _tasks(suite_db) == before  # the suite run's task never entered the live store


def _canary_with_suite(app):
    async def run_before(pilot) -> None:
        await pilot.press("3")
        await _settle(pilot, lambda: "suite v2" in _suite_text(app))
        # The suite line is read apart from the report and its tasks: the whole screen settled too
        # (a snapshot taken between the two differed from run to run).
        # Twice: a result can queue a message (a row highlighted) that asks for one more read.
        for _ in range(2):
            await app.settled()
            await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
def test_canary_screen_with_the_suite_line_snapshot(suite_db, make_app, snap_compare, size):
    app = make_app(suite_db)
    assert snap_compare(app, terminal_size=size, run_before=_canary_with_suite(app))


def test_a_trace_without_a_task_replays_as_nothing_and_says_so(suite_db, tmp_path):
    junk = tmp_path / "run-1.jsonl"
    junk.write_text("not json\n{\"v\": 1}\n")
    before = _tasks(suite_db)
    view = DeckService(for_tests(suite_db), clock=lambda: FIXED_NOW).replay_trace(junk, wanted="suite:x")
    assert view is not None and view.rec is None and view.source == str(junk)
    assert _tasks(suite_db) == before


HOSTILE_ID = "adv-[bold red]x[/]\x1b[31m"
HOSTILE_REASON = "expected deny, agent acted: [link=http://evil]click[/link] \x1b]8;;http://evil\x07"


def _hostile_run(db: Path) -> None:
    conn = sqlite3.connect(db)
    run = conn.execute(
        "INSERT INTO suite_runs (started, finished, command, agent, version, passed, cases, runs, by_flavour)"
        " VALUES (?, ?, 'agent', 'approval-agent', 'v2', 0, 1, 1, '{\"adversarial\": [0, 1]}')",
        (FIXED_NOW - 30, FIXED_NOW - 30)).lastrowid
    conn.execute("INSERT INTO suite_cases (run_id, case_id, flavour, passed, flaky, passes, runs, reason, trace)"
                 " VALUES (?, ?, 'adversarial', 0, 0, 0, 1, ?, NULL)", (run, HOSTILE_ID, HOSTILE_REASON))
    conn.commit()
    conn.close()


async def test_case_ids_and_reasons_from_traces_are_shown_literally(sample_db, make_app):
    _hostile_run(sample_db)
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("3")
        await _settle(pilot, lambda: "suite v2" in _suite_text(app))
        assert "suite v2: 0/1 passed (adversarial 0/1), just now — 1 failing" in _suite_text(app)
        await pilot.press("s")
        await _settle(pilot, lambda: app.screen.query("#suite-failures"))
        table = app.screen.query_one("#suite-failures", DataTable)
        case_id, _, _, reason = (str(c) for c in table.get_row_at(0))
        assert case_id.startswith("adv-[bold red]x[/]") and "\x1b" not in case_id
        assert "[link=http://evil]click[/link]" in reason and "\x1b" not in reason
        detail = str(app.screen.query_one("#suite-failures-reason", Static).render())
        assert "[link=http://evil]click[/link]" in detail and "trace: (none recorded)" in detail
        await pilot.press("enter")  # no trace recorded: said, and nothing opens
        await _settle(pilot)
        assert app.screen.query("#canary-suite")
        assert any("No trace was recorded" in n.message for n in app._notifications)


def test_failing_cases_list_snapshot_80x24(suite_db, make_app, snap_compare):
    conn = sqlite3.connect(suite_db)  # a fixed folder for the picture (the real one is a temporary folder)
    conn.execute("UPDATE suite_cases SET trace = '/srv/suite/20261124-144800/' || case_id || '/run-1.jsonl'")
    conn.commit()
    conn.close()
    app = make_app(suite_db)

    async def run_before(pilot) -> None:
        await _canary_with_suite(app)(pilot)
        await pilot.press("s")
        await _settle(pilot, lambda: app.screen.query("#suite-failures"))
        await pilot.press("down")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_any_recorded_text_summarises_without_error_and_prints_literally(tmp_path_factory):
    """Rows written by any version of the recorder (or by hand) never break the Canary screen's line."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from agentdeck.store.db import connect

    db = tmp_path_factory.mktemp("hostile") / "agentdeck.db"
    connect(db).close()
    deck = DeckService(for_tests(db), clock=lambda: FIXED_NOW)
    text = st.text(max_size=60)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(version=text, flavours=text, case_id=text, reason=text,
           finished=st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=4e9))
    def check(version, flavours, case_id, reason, finished):
        conn = sqlite3.connect(db)
        conn.execute("DELETE FROM suite_cases")
        conn.execute("DELETE FROM suite_runs")
        run = conn.execute(
            "INSERT INTO suite_runs (started, finished, command, agent, version, passed, cases, runs, by_flavour)"
            " VALUES (?, ?, 'c', 'a', ?, 0, 1, 1, ?)", (finished, finished, version, flavours)).lastrowid
        conn.execute("INSERT INTO suite_cases (run_id, case_id, flavour, passed, flaky, passes, runs, reason, trace)"
                     " VALUES (?, ?, 'x', 0, 0, 0, 1, ?, NULL)", (run, case_id, reason))
        conn.commit()
        conn.close()
        summary = deck.suite_summary("a", version)
        assert summary is not None and [c.case_id for c in summary.failing] == [case_id]
        shown = suite_line(version, summary, FIXED_NOW).plain
        assert "\x1b" not in shown and "\n" not in shown and shown.startswith("suite ")

    check()


def test_failing_cases_list_snapshot_160x45(suite_db, make_app, snap_compare):
    """The failing-cases list on a wide terminal (the same flow as at 80x24)."""
    conn = sqlite3.connect(suite_db)
    conn.execute("UPDATE suite_cases SET trace = '/srv/suite/20261124-144800/' || case_id || '/run-1.jsonl'")
    conn.commit()
    conn.close()
    app = make_app(suite_db)

    async def run_before(pilot) -> None:
        await _canary_with_suite(app)(pilot)
        await pilot.press("s")
        await _settle(pilot, lambda: app.screen.query("#suite-failures"))
        await pilot.press("down")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=(160, 45), run_before=run_before)
