"""Stored canary reports (store/canary_reports.py): what the Canary screen reads is what `agentdeck canary` says.

The analyst recomputes after batches and stores the reports; whatever the
order and split of the batches, the stored report equals the full
computation on the same data and clock, field for field.
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentdeck.store import canary, canary_diff
from agentdeck.store import canary_reports as cr
from agentdeck.store.contract import ContractCheck
from agentdeck.store.db import connect
from agentdeck.store.ingest import apply_batch, decode_chunk

NOW = datetime(2026, 11, 24, 15, 0, 0, tzinfo=UTC).timestamp()
TOOLS = ("iam.lookup_user", "payments.lookup_order", "payments.refund", "search")
REASONS = ("above the autonomous limit", "unclear request")


def _no_contracts() -> ContractCheck:
    return ContractCheck(dirs=[])


def _expected(conn, pair: canary.Pair, window: str, now: float, contract=None):
    report = canary.analyse(conn, pair.agent, pair.baseline, pair.canary, window=window, now=now, contract=contract)
    diff = canary_diff.differences(conn, pair.agent, pair.baseline, pair.canary, since=report.since,
                                   until=report.until, top=cr.DIFF_TOP)
    return report, diff


# -- serialising ----------------------------------------------------------------------


def test_reports_of_the_sample_store_survive_the_store_unchanged(sample_db, fixed_clock):
    conn = connect(sample_db)
    for pair in canary.pairs(conn):
        for window in canary.WINDOWS:
            for method in canary.METHODS:
                report = canary.analyse(conn, pair.agent, pair.baseline, pair.canary, window=window,
                                        now=fixed_clock(), method=method)
                assert cr.report_from_json(cr.report_to_json(report)) == report


def test_an_infinite_change_and_missing_values_survive():
    # A baseline median of 0 against a canary's 3: +inf %, which JSON proper cannot hold.
    m = canary.MetricResult("tool_calls", "tool calls", "dist", "lower", 0.25, 0.5, False, 40, 40, 0.0, 3.0,
                            delta=math.inf, interval=(-0.5, math.inf), p=None)
    report = canary.CanaryReport("a", "v1", "v2", "all", None, None, 40, 40, 0.5, None, "partial", [m],
                                 canary.HOLD, "why", None, {"alpha": 0.05}, {"tool_calls": ([0.0, 1.0], [2.0, 3.0])})
    back = cr.report_from_json(cr.report_to_json(report))
    assert back == report and back.metrics[0].delta == math.inf and back.metrics[0].interval == (-0.5, math.inf)


# -- the analyst's rounds against the full computation ------------------------------------------


def test_a_round_stores_what_agentdeck_canary_computes(sample_db, fixed_clock, capsys):
    ro, rw = connect(sample_db, readonly=True), connect(sample_db)
    check = ContractCheck()
    r = cr.refresh(ro, rw, fixed_clock(), contracts=check)
    pairs = canary.pairs(ro)
    assert r.reports == len(pairs) * len(canary.WINDOWS)
    assert cr.state(ro).pairs == pairs
    book = check.book(ro)
    for pair in pairs:
        for window in canary.WINDOWS:
            stored = cr.load(ro, pair.agent, pair.baseline, pair.canary, window)
            assert stored is not None and stored.computed_at == fixed_clock()
            report, diff = _expected(ro, pair, window, fixed_clock(), book.get(pair.agent))
            assert stored.report == report
            assert stored.differences == diff
    # And the release gate's own JSON says the same (its sparklines aside: the CLI skips them).
    pair = pairs[0]
    stored = cr.load(ro, pair.agent, pair.baseline, pair.canary, "all")
    code = _run_cli(sample_db, pair, fixed_clock())
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == stored.report.verdict and code == canary.EXIT_CODES[stored.report.verdict]
    mine = stored.report.to_json()
    for key in ("metrics", "reason", "score", "n_baseline", "n_canary", "more_canary", "agreement"):
        assert out[key] == mine[key], key


def test_a_round_that_cannot_record_its_state_leaves_the_previous_rounds_reports(sample_db, fixed_clock):
    """A round's reports and the state naming their stamp commit together: never new reports beside the
    previous round's state (or the reverse), whichever write of the round fails."""
    import sqlite3

    import pytest

    ro, rw = connect(sample_db, readonly=True), connect(sample_db)
    check = ContractCheck()
    cr.refresh(ro, rw, fixed_clock(), contracts=check)
    before = rw.execute("SELECT agent, win, computed_at, report FROM canary_reports ORDER BY 1, 2").fetchall()
    state = cr.state(ro)
    rw.execute("CREATE TEMP TRIGGER no_state BEFORE UPDATE ON canary_state BEGIN "
               "SELECT RAISE(ABORT, 'state write refused'); END")
    with pytest.raises(sqlite3.Error, match="state write refused"):
        cr.refresh(ro, rw, fixed_clock() + 60, contracts=check)
    assert rw.execute("SELECT agent, win, computed_at, report FROM canary_reports ORDER BY 1, 2").fetchall() == before
    assert cr.state(ro) == state
    assert not rw.in_transaction


def _run_cli(db: Path, pair: canary.Pair, now: float) -> int:
    from agentdeck.console.cli import main

    stamp = datetime.fromtimestamp(now, UTC).isoformat()
    try:
        return main(["canary", "--db", str(db), "--agent", pair.agent, "--baseline", pair.baseline,
                     "--canary", pair.canary, "--json", "--now", stamp])
    except SystemExit as exc:
        return int(exc.code or 0)


def _task_lines(i: int, t: dict) -> list[dict]:
    tid = f"t{i:04d}"
    ts = NOW - t["ago"]

    def at(seq: int) -> str:
        return datetime.fromtimestamp(ts + seq, UTC).isoformat().replace("+00:00", "Z")

    base = {"v": 1, "task_id": tid}
    out = [dict(base, kind="task_start", ts=at(0), seq=0, request_id=f"r{i}", agent=t["agent"],
                agent_version={"id": t["version"]}, cohort="canary" if t["version"] == "v2" else "baseline",
                stage="partial", request="do it")]
    seq = 1
    for tool, retry in t["tools"]:
        out.append(dict(base, kind="tool_call", ts=at(seq), seq=seq, call_id=f"c{seq}", tool=tool, input={}))
        out.append(dict(base, kind="tool_result", ts=at(seq + 1), seq=seq + 1, call_id=f"c{seq}", tool=tool,
                        output={}, status="ok" if not retry else "error", latency_ms=10.0, retry=retry))
        seq += 2
    if t["policy"] is not None:
        out.append(dict(base, kind="policy_check", ts=at(seq), seq=seq, policy_id="POL-1", policy_version="1",
                        verdict=t["policy"], reason="r", subject="s"))
        seq += 1
    if t["escalation"] is not None:
        out.append(dict(base, kind="escalation", ts=at(seq), seq=seq, escalation_id=f"e{i}",
                        proposed_action={"system": "iam", "operation": "grant", "params": {}, "amount": None},
                        risk="high", reason=t["escalation"], policy_id="POL-1", justification="j",
                        deadline=at(seq + 900)))
        seq += 1
    if t["action"] is not None:
        out.append(dict(base, kind="action", ts=at(seq), seq=seq, action_id=f"a{i}", system="iam",
                        operation="grant", params={}, amount=None, status=t["action"], justification="j"))
        seq += 1
    if t["end"] is not None:
        latency, cost, tokens, outcome = t["end"]
        out.append(dict(base, kind="task_end", ts=at(seq), seq=seq, outcome=outcome, tokens_in=tokens,
                        tokens_out=0, cost_usd=cost, latency_ms=latency))
    return out


TASK = st.fixed_dictionaries({
    "agent": st.sampled_from(["a", "a", "b"]),
    "version": st.sampled_from(["v1", "v1", "v2"]),
    "ago": st.floats(0, 3 * 3600),
    "tools": st.lists(st.tuples(st.sampled_from(TOOLS), st.integers(0, 1)), max_size=4),
    "policy": st.none() | st.sampled_from(["allow", "deny", "escalate"]),
    "escalation": st.none() | st.sampled_from(REASONS),
    "action": st.none() | st.sampled_from(["ok", "failed"]),
    "end": st.none() | st.tuples(st.floats(0, 20000), st.floats(0, 0.05), st.integers(0, 5000),
                                 st.sampled_from(["success", "failed"])),
})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tasks=st.lists(TASK, min_size=1, max_size=40), cuts=st.lists(st.integers(1, 400), max_size=6),
       shuffle=st.randoms(use_true_random=False))
def test_after_any_split_into_batches_the_stored_reports_equal_the_full_computation(tasks, cuts, shuffle):
    lines = [line for i, t in enumerate(tasks) for line in _task_lines(i, t)]
    shuffle.shuffle(lines)  # tasks interleave and arrive out of order, across batches
    blob = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "s.db"
        rw, check = connect(db), _no_contracts()
        ro = connect(db, readonly=True)
        chunks = [line + b"\n" for line in blob.split(b"\n")[:-1]]
        bounds = sorted({min(c, len(chunks)) for c in cuts} | {len(chunks)})
        start = 0
        for end in bounds:
            parsed, rejects, _ = decode_chunk(b"".join(chunks[start:end]), 0)
            assert not rejects
            apply_batch(rw, None, parsed, rejects)
            cr.refresh(ro, rw, NOW, contracts=check)  # the analyst, after a commit
            start = end
        for pair in canary.pairs(ro):
            for window in canary.WINDOWS:
                stored = cr.load(ro, pair.agent, pair.baseline, pair.canary, window)
                assert stored is not None
                report, diff = _expected(ro, pair, window, NOW)
                assert stored.report == report
                assert stored.differences == diff
                assert stored.stamp == cr.stamp(ro)
        rw.close()
        ro.close()


def test_the_analyst_thread_catches_up_with_each_commit_and_stays_quiet_without_one(sample_db):
    stop = threading.Event()
    analyst = cr.CanaryAnalyst(str(sample_db), tick=0.05, min_interval=0.0)
    thread = threading.Thread(target=analyst.run, args=(stop,), daemon=True)
    thread.start()
    ro = connect(sample_db, readonly=True)
    try:
        newest = cr.stamp(ro)
        assert _wait(lambda: (s := cr.state(ro)) is not None and s.stamp == newest)
        rounds = analyst.rounds
        time.sleep(0.5)  # nothing committed: its own writes must not set off another round
        assert analyst.rounds == rounds
        rw = connect(sample_db)
        lines = _task_lines(9999, {"agent": "approval-agent", "version": "v2", "ago": 60.0, "tools": [],
                                   "policy": None, "escalation": None, "action": "failed",
                                   "end": (5000.0, 0.01, 100, "failed")})
        parsed, rejects, _ = decode_chunk(b"".join(json.dumps(x).encode() + b"\n" for x in lines), 0)
        apply_batch(rw, None, parsed, rejects)
        newest = cr.stamp(ro)
        assert _wait(lambda: (s := cr.state(ro)) is not None and s.stamp == newest)
        stored = cr.load(ro, "approval-agent", "v1", "v2", "all")
        assert stored is not None and stored.stamp == newest and stored.report.n_canary == 87
        assert analyst.error is None
    finally:
        stop.set()
        thread.join(5)


def _wait(check, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


# -- kill -9 ------------------------------------------------------------------------------------


def test_kill_9_of_the_ingest_process_mid_round_loses_nothing_and_the_reports_converge(sample_db, tmp_path):
    """The reports are a cache: a round cut short leaves the previous round's rows whole, and the next
    ingest process rebuilds them until they equal the full computation on the data as it is."""
    import os
    import random
    import shutil
    import signal
    import subprocess
    import sys

    from conftest import SAMPLE_TRACES

    folder = tmp_path / "traces"
    shutil.copytree(SAMPLE_TRACES, folder)
    db = tmp_path / "store.db"
    rng = random.Random(5)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    extra = folder / "more.jsonl"

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "agentdeck.console.ingest_process", "--db", str(db),
                                 "--heartbeat", "0.5", str(folder)], env=env, stderr=subprocess.DEVNULL)

    conn = None
    for round_ in range(4):
        proc = start()
        try:
            if round_ == 0:
                assert _wait(lambda: db.exists() and _has_state(db), 60), "no analyst round"
            # More canary tasks arrive; the process is killed at some moment of what follows.
            with extra.open("a") as f:
                for i in range(5):
                    lines = _task_lines(1000 * round_ + i, {
                        "agent": "approval-agent", "version": "v2", "ago": 300.0,
                        "tools": [("payments.refund", i % 2)], "policy": None, "escalation": None,
                        "action": "failed" if i % 2 else "ok", "end": (3000.0 + i, 0.01, 900, "success")})
                    f.writelines(json.dumps(x) + "\n" for x in lines)
            time.sleep(rng.uniform(0.2, 3.5))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    proc = start()
    try:
        conn = connect(db, readonly=True)

        def caught_up() -> bool:
            st = cr.state(conn)
            return st is not None and st.stamp == cr.stamp(conn) and \
                conn.execute("SELECT count(*) FROM tasks WHERE task_id GLOB 't[0-9]*'").fetchone()[0] == 20
        assert _wait(caught_up, 90), "the reports never caught up with the store"
        book = ContractCheck().book(conn)
        for pair in canary.pairs(conn):
            for window in canary.WINDOWS:
                stored = cr.load(conn, pair.agent, pair.baseline, pair.canary, window)
                assert stored is not None
                report, diff = _expected(conn, pair, window, stored.computed_at, book.get(pair.agent))
                assert stored.report == report and stored.differences == diff
        # Nothing twice: each extra task's events once.
        assert conn.execute("SELECT count(*) FROM events WHERE task_id GLOB 't[0-9]*'").fetchone()[0] == \
            sum(1 for _ in extra.open())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        if conn is not None:
            conn.close()


def _has_state(db: Path) -> bool:
    try:
        conn = connect(db, readonly=True)
        try:
            return cr.state(conn) is not None
        finally:
            conn.close()
    except Exception:  # noqa: BLE001 - not created yet
        return False


def test_a_dead_analyst_is_a_problem_of_the_ingest_process_and_is_started_again(sample_db, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from conftest import SAMPLE_TRACES

    proc = subprocess.Popen([sys.executable, "-m", "agentdeck.console.ingest_process", "--db", str(sample_db),
                             "--heartbeat", "0.5", str(SAMPLE_TRACES)], stderr=subprocess.DEVNULL)

    def analysts() -> list[int]:
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            return []
        return [int(c) for c in children if b"canary_reports" in Path(f"/proc/{c}/cmdline").read_bytes()]

    conn = connect(sample_db, readonly=True)
    try:
        assert _wait(lambda: len(analysts()) == 1, 30)
        first = analysts()[0]
        os.kill(first, signal.SIGKILL)
        assert _wait(lambda: conn.execute(
            "SELECT count(*) FROM ingest_problems WHERE source = '(canary)'").fetchone()[0] == 1, 30)
        detail = conn.execute("SELECT detail FROM ingest_problems WHERE source = '(canary)'").fetchone()[0]
        assert "canary analyst stopped (exit -9)" in detail
        assert _wait(lambda: analysts() and analysts()[0] != first, 30), "no new analyst"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        conn.close()
    assert not analysts()


def test_the_analyst_runs_in_a_session_of_its_own_and_ends_with_a_killed_ingest_process(sample_db):
    """Its own session: the kernel shares the CPU between sessions first, so the analyst's rounds do not use
    up the tailer's share (console/ingest_process.py). Not tied to the session: it ends when the ingest
    process that started it is gone, even by kill -9 (no orphan left computing)."""
    import os
    import signal
    import subprocess
    import sys

    from conftest import SAMPLE_TRACES

    proc = subprocess.Popen([sys.executable, "-m", "agentdeck.console.ingest_process", "--db", str(sample_db),
                             "--heartbeat", "0.5", str(SAMPLE_TRACES)], stderr=subprocess.DEVNULL)

    def analysts() -> list[int]:
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            return [int(c) for c in children if b"canary_reports" in Path(f"/proc/{c}/cmdline").read_bytes()]
        except OSError:
            return []

    try:
        assert _wait(lambda: len(analysts()) == 1, 30)
        analyst = analysts()[0]
        assert os.getsid(analyst) == analyst != os.getsid(proc.pid)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(20)

    def gone() -> bool:
        try:
            os.kill(analyst, 0)
        except ProcessLookupError:
            return True
        # A zombie (no parent reaping it yet) has ended too.
        return Path(f"/proc/{analyst}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"

    assert _wait(gone, 30), "the analyst outlived its ingest process"
