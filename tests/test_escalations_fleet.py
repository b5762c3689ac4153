"""The sample fleet's agents really wait for the console's decision and act on it (the demo loop)."""

from __future__ import annotations

import time

import pytest

from agentdeck.console.service.delivery import DeliverySettings, deliver_one
from agentdeck.sample_data.fleet import Fleet
from agentdeck.store import decisions
from agentdeck.store.db import connect
from agentdeck.store.tailer import Tailer


def run_until_waiting(fleet: Fleet, steps: int = 5000):
    for _ in range(steps):
        fleet.write_one()
        if fleet._waiting:
            return fleet._waiting[0][0]
    raise AssertionError("no escalation within the step budget")


def ingest(conn, folder) -> None:
    Tailer(conn, [folder]).poll()


def kinds_after(conn, task_id: str, seq: int) -> list[str]:
    return [r[0] for r in conn.execute("SELECT kind FROM events WHERE task_id = ? AND seq > ? ORDER BY seq", (task_id, seq))]


@pytest.mark.parametrize("decision,outcome", [("approve", "success"), ("deny", "denied")])
def test_agent_waits_on_the_outbox_then_continues_or_stops(tmp_path, decision, outcome):
    traces = tmp_path / "traces"
    fleet = Fleet(traces, agents=1, concurrency=1, seed=7)
    run = run_until_waiting(fleet)
    esc = run.waiting
    # Nothing decided: the agent writes nothing more for this task (the others carry on).
    written = fleet.written
    for _ in range(10):
        assert fleet.write_one() is True
    assert fleet.written == written + 10

    conn = connect(tmp_path / "store.db")
    ingest(conn, traces)
    assert kinds_after(conn, run.task_id, esc["seq"]) == []
    row = decisions.escalation(conn, esc["escalation_id"])
    assert row["status"] == "pending"
    out = decisions.decide(conn, esc["escalation_id"], decision, by="alice", reason="checked", now=time.time())
    assert out.applied
    assert deliver_one(conn, esc["escalation_id"], DeliverySettings(traces / "outbox" / "decisions.jsonl",
                                                                    frozenset())) == "delivered"
    # The agent reads the outbox, records the decision and carries on (or stops).
    for _ in range(200):
        fleet.write_one()
        if run.done:
            break
    ingest(conn, traces)
    after = kinds_after(conn, run.task_id, esc["seq"])
    assert after[0] == "decision"
    assert ("action" in after) is (decision == "approve")
    task = conn.execute("SELECT outcome FROM tasks WHERE task_id = ?", (run.task_id,)).fetchone()
    assert task["outcome"] == outcome
    # The console's decision stays the record (the agent's echo does not overwrite it).
    assert decisions.escalation(conn, esc["escalation_id"])["decided_by"] == "alice"


def test_agent_hears_the_decision_on_its_local_callback(tmp_path):
    traces = tmp_path / "traces"
    fleet = Fleet(traces, agents=1, concurrency=1, seed=7)
    host = fleet.start_callback()
    try:
        run = run_until_waiting(fleet)
        esc = run.waiting
        assert esc["callback_url"] == fleet.receiver.url
        conn = connect(tmp_path / "store.db")
        ingest(conn, traces)
        decisions.decide(conn, esc["escalation_id"], "approve", by="alice", reason="ok", now=time.time())
        # Outbox off: only the (allowed) callback can reach the agent.
        assert deliver_one(conn, esc["escalation_id"], DeliverySettings(None, frozenset({host}))) == "delivered"
        fleet.write_one()
        ingest(conn, traces)
        assert kinds_after(conn, run.task_id, esc["seq"])[:1] == ["decision"]
    finally:
        fleet.receiver.close()


def test_without_any_decision_the_fleet_keeps_starting_tasks_and_agents_give_up_by_their_deadline(tmp_path):
    """The demo keeps flowing (issue 12): nobody decides, yet new tasks keep arriving and escalations run out."""
    from datetime import UTC, datetime, timedelta

    clock = [datetime(2026, 11, 24, 9, 0, tzinfo=UTC)]
    traces = tmp_path / "traces"
    fleet = Fleet(traces, agents=2, seed=11, wait=30, clock=lambda: clock[0])
    started_per_minute = []
    for _minute in range(20):  # 20 simulated minutes at 8 events/s, the demo's default rate
        before = fleet.started
        for _ in range(480):
            assert fleet.write_one() is True
            clock[0] += timedelta(seconds=1 / 8)
        started_per_minute.append(fleet.started - before)
        assert fleet.waiting <= 8 * 30  # bounded: at most one rate x deadline of escalations open
    # Before the fix the fleet stopped after about a minute; now every minute starts tasks.
    assert min(started_per_minute) > 0, started_per_minute
    assert fleet.gave_up > 0
    conn = connect(tmp_path / "store.db")
    ingest(conn, traces)
    # Every line the fleet writes is a valid trace line, escalations included (a leaked internal
    # field once made every live escalation a reject: the demo showed none, and this test still passed).
    assert conn.execute("SELECT count(*) FROM rejects").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM escalations").fetchone()[0] > 0
    # Every escalation past its deadline has the agent's own timeout record; none is decided by a person.
    now = clock[0].timestamp()
    open_past_deadline = conn.execute(
        """SELECT count(*) FROM events e WHERE e.kind = 'escalation' AND e.task_id NOT IN
           (SELECT task_id FROM events WHERE kind = 'decision')
           AND e.ts < ?""", (now - 31,)).fetchone()[0]
    assert open_past_deadline == 0
    outcomes = dict(conn.execute("SELECT outcome, count(*) FROM tasks GROUP BY outcome").fetchall())
    assert outcomes.get("timeout", 0) > 0


def test_the_demo_callback_keeps_its_port_across_runs_and_moves_only_when_taken(tmp_path):
    """Escalations left waiting by an earlier demo carry its callback URL: the next run listens there again
    (so they are delivered, not refused as a host off the allowlist); a port in use means any free one."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    first = Fleet(tmp_path / "a", agents=1, seed=1)
    assert first.start_callback(free) == f"127.0.0.1:{free}"
    busy = Fleet(tmp_path / "b", agents=1, seed=2)  # while the first still listens
    taken = busy.start_callback(free)
    assert taken != f"127.0.0.1:{free}" and taken.startswith("127.0.0.1:")
    busy.receiver.close()
    first.receiver.close()
    again = Fleet(tmp_path / "c", agents=1, seed=3)
    assert again.start_callback(free) == f"127.0.0.1:{free}"
    again.receiver.close()
