"""Ingest status in the store and the health check, below the UI (no Pilot)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from agentdeck.console.messages import Ingested
from agentdeck.console.screens.problems import detail_text
from agentdeck.console.widgets.chrome import counters_text
from agentdeck.store import health, ingest_status
from agentdeck.store.db import connect
from agentdeck.store.health import ChildState, Problem
from agentdeck.store.queries import Counters
from agentdeck.store.tailer import Tailer
from agentdeck.store.txn import atomic
from tasks_support import task_lines, write_trace

NOW = 1_800_000_000.0


@pytest.fixture
def conn(tmp_path):
    c = connect(tmp_path / "store.db")
    yield c
    c.close()


def test_a_problem_keeps_its_since_until_it_goes(conn):
    ingest_status.register(conn, "h:1", ["/traces"], NOW)
    ingest_status.beat(conn, "h:1", NOW + 1, {"/traces/a.jsonl": "permission denied: Permission denied"})
    ingest_status.beat(conn, "h:1", NOW + 5, {"/traces/a.jsonl": "permission denied: Permission denied",
                                              "/traces/b.jsonl": "dangling symlink to x: its target does not exist"})
    found = {p.source: p for p in ingest_status.problems(conn, ["h:1"])}
    assert found["/traces/a.jsonl"].since == NOW + 1 and found["/traces/a.jsonl"].seen_at == NOW + 5
    assert found["/traces/b.jsonl"].since == NOW + 5
    ingest_status.beat(conn, "h:1", NOW + 6, {"/traces/b.jsonl": "dangling symlink to x: its target does not exist"})
    assert [p.source for p in ingest_status.problems(conn, ["h:1"])] == ["/traces/b.jsonl"]
    ingest_status.finish(conn, "h:1", NOW + 7, "stopped")
    assert ingest_status.problems(conn, ["h:1"]) == []
    assert ingest_status.ingesters(conn)[0].state == "stopped"


def test_healthy_ingester_is_ok_and_its_problems_are_listed_with_what_to_do(conn):
    ingest_status.register(conn, "h:1", ["/traces"], NOW)
    assert health.check(conn, NOW + 2).level == "ok"
    assert health.check(conn, NOW + 2).ingesters == 1
    ingest_status.beat(conn, "h:1", NOW + 3, {"/traces/x.jsonl": "dangling symlink to /gone: its target does not exist",
                                              "/traces/y.jsonl": "permission denied: Permission denied"})
    h = health.check(conn, NOW + 4)
    assert h.level == "error"
    by_key = {p.key: p for p in h.problems}
    assert by_key["source:/traces/x.jsonl"].level == "warn"
    assert "target" in by_key["source:/traces/x.jsonl"].todo
    assert by_key["source:/traces/y.jsonl"].level == "error"
    assert "chmod" in by_key["source:/traces/y.jsonl"].todo
    assert h.problems[0].level == "error"  # worst first


def test_silent_ingester_is_called_stalled(conn):
    ingest_status.register(conn, "h:1", ["/traces"], NOW)
    assert health.check(conn, NOW + 10, stall_after=30).level == "ok"
    h = health.check(conn, NOW + 45, stall_after=30)
    assert h.level == "error" and "stalled" in h.problems[0].what and "45 s" in h.problems[0].what
    assert h.problems[0].since == NOW


def test_two_live_ingesters_report_one_backlog_not_twice(conn):
    # behind_bytes is the store's backlog, past every source's committed offset, whoever follows it:
    # two ingesters on one store (the console's and a headless one) each report the same bytes.
    for ingester in ("h:1", "h:2"):
        ingest_status.register(conn, ingester, ["/traces"], NOW)
        ingest_status.beat(conn, ingester, NOW + 1, {}, behind_bytes=4096)
    h = health.check(conn, NOW + 2, stall_after=30)
    assert h.ingesters == 2 and h.behind_bytes == 4096


def test_a_restarted_ingester_supersedes_the_one_that_died(conn):
    ingest_status.register(conn, "h:1", ["/traces"], NOW)
    assert ingest_status.mark_gone(conn, "h:1", NOW + 5, "killed by signal 9")
    assert not ingest_status.mark_gone(conn, "h:1", NOW + 5, "again")  # said once
    h = health.check(conn, NOW + 6)
    assert h.level == "error" and "killed by signal 9" in h.problems[0].detail
    ingest_status.register(conn, "h:2", ["/traces"], NOW + 6)
    assert health.check(conn, NOW + 7).level == "ok"


def test_the_consoles_own_stopped_process_shows_its_stderr_and_when_it_restarts(conn):
    child = ChildState(running=False, ingester="h:9", exit_code=-9, stderr_tail=("agentdeck ingest: boom",),
                       restarts=1, stopped_at=NOW, restart_at=NOW + 2, command="agentdeck ingest --follow x")
    h = health.check(conn, NOW + 1, child=child)
    [p] = h.problems
    assert p.level == "error" and p.what == "ingest stopped: killed by signal 9"
    assert "boom" in p.detail and "restarting in 1 s" in p.todo and "agentdeck ingest --follow x" in p.todo
    running_again = ChildState(running=True, ingester="h:10", exit_code=-9, restarts=1, stopped_at=NOW)
    [p] = health.check(conn, NOW + 3, child=running_again).problems
    assert p.level == "warn" and "restarted 1x" in p.what


def test_rejects_failed_deliveries_and_failed_compensations_are_problems(conn, tmp_path):
    traces = tmp_path / "t"
    write_trace(traces / "a.jsonl", task_lines("t1"))
    with open(traces / "a.jsonl", "a") as f:
        f.write("{not json\n")
    Tailer(conn, [traces]).poll()
    now = time.time()
    with atomic(conn):
        conn.execute("""INSERT INTO escalations (escalation_id, task_id, seq, ts, risk, risk_rank, deadline,
                        proposed_action, status, decided_at, delivery, delivery_error)
                        VALUES ('esc-1', 't1', 5, ?, 'high', 3, ?, '{}', 'approved', ?, 'failed', 'connection refused')""",
                     (now, now + 60, now))
        conn.execute("""INSERT INTO compensations (action_id, task_id, attempt, requested_by, requested_at, target, plan,
                        idempotency_key, status, finished_at, error)
                        VALUES ('act-1', 't1', 1, 'ana', ?, 'http://127.0.0.1:9/undo', '{}', 'k', 'failed', ?, 'the system answered 500')""",
                     (now, now))
    h = health.check(conn, now + 1)
    by_key = {p.key: p for p in h.problems}
    assert by_key["rejects"].level == "warn" and "1 trace line rejected" in by_key["rejects"].what
    assert "a.jsonl" in by_key["rejects"].detail
    assert by_key["delivery:esc-1"].level == "error" and "connection refused" in by_key["delivery:esc-1"].detail
    assert "press R to retry" in by_key["delivery:esc-1"].todo
    assert by_key["compensation:act-1"].level == "error" and "500" in by_key["compensation:act-1"].detail
    # A later attempt that worked clears it.
    with atomic(conn):
        conn.execute("""INSERT INTO compensations (action_id, task_id, attempt, requested_by, requested_at, target, plan,
                        idempotency_key, status) VALUES ('act-1', 't1', 2, 'ana', ?, 'x', '{}', 'k', 'ok')""", (now,))
    assert "compensation:act-1" not in {p.key for p in health.check(conn, now + 2).problems}


def test_tailer_names_a_dangling_symlink(tmp_path, conn):
    traces = tmp_path / "t"
    traces.mkdir()
    os.symlink(tmp_path / "gone.jsonl", traces / "agent.jsonl")
    t = Tailer(conn, [traces])
    t.poll()
    assert "dangling symlink" in t.problems[str(traces / "agent.jsonl")]
    write_trace(tmp_path / "gone.jsonl", task_lines("t1"))  # the target appears: read, no problem
    assert t.poll().events == 4 and t.problems == {}


def test_ingested_folds_into_the_message_textual_keeps():
    # Textual drops `older` and handles `newer` when older.can_replace(newer).
    older = Ingested(events=3, rejects=1, tasks={"a"}, escalations=["e1"], committed_at=1.0)
    newer = Ingested(events=2, tasks={"b"}, escalations=["e2"], committed_at=2.0)
    assert older.can_replace(newer)
    assert (newer.events, newer.rejects, newer.tasks, newer.escalations, newer.committed_at) == (
        5, 1, {"a", "b"}, ["e1", "e2"], 2.0)


def _counters(last_event_ts, last_ingest_at):
    return Counters(1.0, 0, 0, 10, 0, last_event_ts, last_ingest_at)


def test_header_age_keeps_counting_and_lag_is_only_for_live_events():
    live = _counters(NOW - 0.4, NOW)
    assert "ingest now" in counters_text(live, NOW, tailing=True).plain
    assert "lag 0.4s" in counters_text(live, NOW, tailing=True).plain
    assert "ingest 5m ago" in counters_text(live, NOW + 300, tailing=True).plain  # nothing new: still counts
    assert "ingest 3h ago" in counters_text(live, NOW + 3 * 3600, tailing=True).plain
    backfill = _counters(NOW - 126 * 3600, NOW)  # days-old sample data ingested now
    assert " lag " not in counters_text(backfill, NOW, tailing=True).plain
    assert "behind 2.0 MB" in counters_text(live, NOW, tailing=True, behind_bytes=2 * 1024 * 1024).plain


def _store_ingesters(db: Path) -> list:
    c = connect(db, readonly=True)
    try:
        return ingest_status.ingesters(c)
    finally:
        c.close()


def _wait(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)  # polling a condition, bounded by the deadline


def test_ingest_process_records_itself_and_stops_cleanly_on_sigterm(tmp_path):
    db, traces = tmp_path / "store.db", tmp_path / "t"
    traces.mkdir()
    connect(db).close()
    proc = subprocess.Popen([sys.executable, "-m", "agentdeck.console.ingest_process", "--db", str(db),
                             "--heartbeat", "0.5", str(traces)], stderr=subprocess.PIPE)
    try:
        _wait(lambda: any(r.state == "running" for r in _store_ingesters(db)))
        write_trace(traces / "a.jsonl", task_lines("t1"))
        _wait(lambda: _store_ingesters(db)[0].events == 4)
        # A subfolder made later is read too, as `agentdeck ingest` reads folders.
        write_trace(traces / "agent-b" / "b.jsonl", task_lines("t2"))
        _wait(lambda: _store_ingesters(db)[0].events == 8)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        proc.wait()
    [row] = _store_ingesters(db)
    assert row.state == "stopped" and row.pid == proc.pid and row.last_commit_at is not None


def test_ingest_process_stops_when_its_parent_is_gone(tmp_path):
    db, traces = tmp_path / "store.db", tmp_path / "t"
    traces.mkdir()
    connect(db).close()
    proc = subprocess.Popen([sys.executable, "-m", "agentdeck.console.ingest_process", "--db", str(db),
                             "--with-parent", str(traces)], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait(lambda: any(r.state == "running" for r in _store_ingesters(db)))
        assert proc.stdin is not None
        proc.stdin.close()  # what the kernel does when the console dies, even by kill -9
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        proc.wait()
    assert _store_ingesters(db)[0].state == "stopped"


def _headless_follow(db: Path, traces: Path) -> subprocess.Popen:
    """`agentdeck ingest --follow` on an empty folder, once its ingester record says running."""
    traces.mkdir()
    connect(db).close()
    proc = subprocess.Popen([sys.executable, "-m", "agentdeck.console.cli", "ingest", "--follow", "--quiet",
                             "--db", str(db), str(traces)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait(lambda: any(r.state == "running" for r in _store_ingesters(db)))
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def test_headless_ingest_follow_is_seen_by_consoles_and_says_when_it_stopped(tmp_path):
    db, traces = tmp_path / "store.db", tmp_path / "t"
    proc = _headless_follow(db, traces)
    try:
        os.symlink(tmp_path / "gone.jsonl", traces / "a.jsonl")
        c = connect(db, readonly=True)
        try:
            _wait(lambda: any("dangling symlink" in p.what for p in health.check(c, time.time()).problems))
        finally:
            c.close()
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(20)
    finally:
        proc.kill()
        proc.wait()
    assert _store_ingesters(db)[0].state == "stopped"


def test_headless_ingest_follow_stopped_by_sigterm_says_it_stopped_with_what_it_read(tmp_path):
    """systemctl stop / kill: a clean stop, as Ctrl-C, not a record left "running" that consoles count as live
    until they call it stalled."""
    db, traces = tmp_path / "store.db", tmp_path / "t"
    proc = _headless_follow(db, traces)
    try:
        write_trace(traces / "a.jsonl", task_lines("t-term"))
        c = connect(db, readonly=True)
        try:
            _wait(lambda: c.execute("SELECT count(*) FROM tasks WHERE task_id = 't-term'").fetchone()[0] == 1)
        finally:
            c.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        proc.wait()
    (row,) = _store_ingesters(db)
    assert row.state == "stopped"


@settings(max_examples=200, deadline=None)
@given(what=st.text(), detail=st.text(), todo=st.text(), since=st.one_of(st.none(), st.floats(0, 4e9)))
def test_problem_text_from_traces_is_shown_literally(what, detail, todo, since):
    """Paths and errors come from traces: no escape sequence or markup reaches the terminal."""
    text = detail_text(Problem("k", "warn", what, detail, since, todo), checked_at=4e9)
    assert "\x1b" not in text.plain and "\x9b" not in text.plain
    assert not text.spans or all(span.style in ("bold", "dim", "") for span in text.spans)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=4), min_size=1, max_size=6))
def test_beats_keep_a_problem_since_it_first_appeared(tmp_path_factory, beats):
    conn = connect(tmp_path_factory.mktemp("beats") / "s.db")
    ingest_status.register(conn, "h:1", ["/t"], NOW)
    first_seen: dict[str, float] = {}
    for i, problems in enumerate(beats):
        at = NOW + i + 1
        ingest_status.beat(conn, "h:1", at, problems)
        first_seen = {k: (first_seen[k] if k in first_seen and beats[i - 1].get(k) == v else at)
                      for k, v in problems.items()}
        stored = {p.source: (p.detail, p.since) for p in ingest_status.problems(conn, ["h:1"])}
        assert stored == {k: (v, first_seen[k]) for k, v in problems.items()}
    conn.close()


def test_supervisor_keeps_the_last_stderr_lines_and_restarts_with_backoff(tmp_path):
    import threading

    from agentdeck.console.ingest_service import IngestSupervisor

    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho 'agentdeck ingest: cannot open the store: boom' >&2\nexit 2\n")
    fake.chmod(0o755)
    connect(tmp_path / "s.db").close()
    sup = IngestSupervisor(tmp_path / "s.db", [tmp_path], python=str(fake), backoff=(0.1, 0.2))
    stop = threading.Event()
    thread = threading.Thread(target=sup.run, args=(stop,), daemon=True)
    thread.start()
    try:
        _wait(lambda: sup.state().restarts >= 3)
        assert sup.state().exit_code == 2  # of the last run that ended
        assert any("cannot open the store: boom" in line for line in sup.state().stderr_tail)
        [p] = [p for p in health.check(connect(tmp_path / "s.db"), time.time(), child=sup.state()).problems
               if p.key.startswith("ingest:")]
        assert "could not open the store" in p.what or "restarted" in p.what
        assert "boom" in p.detail
    finally:
        stop.set()
        sup.close()
        thread.join(10)
    assert not thread.is_alive()
