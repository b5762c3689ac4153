"""Compensation against the real local system of record (replay/sor.py on an ephemeral port)."""

from __future__ import annotations

import json

import httpx
import pytest

from agentdeck.replay import compensate, handlers
from agentdeck.replay.compensate import Outcome, Plan, Refusal
from agentdeck.replay.sor import SorService
from agentdeck.store import audit
from agentdeck.store.db import connect
from conftest import HTTP, point_hook_at

from pathlib import Path

SAMPLE_TRACES = Path(__file__).resolve().parents[1] / "sample_data" / "traces"

ACTION = "act-0001"  # task-0001: escalated refund, approved, applied, undoable


@pytest.fixture
def conn(sample_db, sor):
    c = connect(sample_db)
    point_hook_at(c, sor.url, ACTION)
    yield c
    c.close()


def _state(sor: SorService, action_id: str) -> dict:
    return HTTP.get(f"{sor.url}/actions/{action_id}").json()


def test_prepare_shows_exactly_what_will_run_and_runs_nothing(conn, sor):
    plan = compensate.prepare(conn, ACTION, {sor.allow_entry})
    assert isinstance(plan, Plan)
    assert plan.method == "POST" and plan.url == f"{sor.url}/compensate"
    assert plan.body == {"action_id": ACTION, "system": "payments", "operation": "refund",
                         "params": {"user": "alice", "amount": 2390.45}}
    assert plan.headers["Idempotency-Key"] == "undo-act-0001"
    assert plan.system == "payments" and "high" in plan.risk
    assert _state(sor, ACTION)["state"] == "applied"
    assert conn.execute("SELECT count(*) FROM compensations").fetchone()[0] == 0


def test_success_is_recorded_before_and_after_and_really_undoes(conn, sor):
    plan = compensate.prepare(conn, ACTION, {sor.allow_entry})
    out = compensate.commit(conn, plan, operator="alice.ops", now=1000.0, allow_hosts={sor.allow_entry})
    assert isinstance(out, Outcome) and out.ok and out.status == 200
    assert _state(sor, ACTION)["state"] == "compensated"
    row = conn.execute("SELECT * FROM actions WHERE action_id = ?", (ACTION,)).fetchone()
    assert (row["compensated_by"], row["compensated_at"], row["compensation_status"]) == ("alice.ops", 1000.0, "ok")
    attempts = conn.execute("SELECT attempt, status, response_status FROM compensations").fetchall()
    assert [tuple(a) for a in attempts] == [(1, "ok", 200)]
    kinds = [r[0] for r in conn.execute("SELECT kind FROM audit WHERE subject = ? ORDER BY id", (ACTION,))]
    assert kinds == ["compensation.requested", "compensation.result"]
    assert audit.verify(conn)[1] == []


def test_failure_is_shown_and_a_retry_succeeds_with_the_same_key(conn, sor):
    sor.sor.fail_next = 1
    plan = compensate.prepare(conn, ACTION, {sor.allow_entry})
    first = compensate.commit(conn, plan, operator="ops", now=1000.0, allow_hosts={sor.allow_entry})
    assert isinstance(first, Outcome) and not first.ok and first.status == 503
    assert _state(sor, ACTION)["state"] == "applied"
    row = conn.execute("SELECT compensated_at, compensation_status FROM actions WHERE action_id = ?", (ACTION,)).fetchone()
    assert tuple(row) == (None, "failed")

    again = compensate.prepare(conn, ACTION, {sor.allow_entry})
    assert isinstance(again, Plan) and again.idempotency_key == plan.idempotency_key
    second = compensate.commit(conn, again, operator="ops", now=1001.0, allow_hosts={sor.allow_entry})
    assert isinstance(second, Outcome) and second.ok and second.attempt == 2
    assert _state(sor, ACTION)["undo_count"] == 1
    statuses = [tuple(r) for r in conn.execute("SELECT attempt, status FROM compensations ORDER BY attempt")]
    assert statuses == [(1, "failed"), (2, "ok")]


def test_second_compensation_is_refused_with_who_and_when(conn, sor):
    plan = compensate.prepare(conn, ACTION, {sor.allow_entry})
    compensate.commit(conn, plan, operator="alice.ops", now=1795600000.0, allow_hosts={sor.allow_entry})
    refused = compensate.prepare(conn, ACTION, {sor.allow_entry})
    assert isinstance(refused, Refusal)
    assert "alice.ops" in refused.reason and "2026-11-25 09:46:40Z" in refused.reason
    # Even a stale plan (prepared before the first one committed) cannot run again.
    stale = compensate.commit(conn, plan, operator="bob", now=1795600001.0, allow_hosts={sor.allow_entry})
    assert isinstance(stale, Refusal) and "alice.ops" in stale.reason
    assert _state(sor, ACTION)["undo_count"] == 1


def test_a_crashed_attempt_retried_never_undoes_twice(conn, sor):
    """The system applied the undo but the console never heard back: the retry replays, it does not undo again."""
    plan = compensate.prepare(conn, ACTION, {sor.allow_entry})
    HTTP.post(plan.url, json=plan.body, headers=plan.headers)  # the lost first call
    out = compensate.commit(conn, plan, operator="ops", now=1.0, allow_hosts={sor.allow_entry})
    assert isinstance(out, Outcome) and out.ok and out.replayed
    assert _state(sor, ACTION)["undo_count"] == 1


def test_host_not_on_the_allowlist_is_refused_and_never_called(conn, sor):
    refused = compensate.prepare(conn, ACTION, {"example.org"})
    assert isinstance(refused, Refusal) and "not on the operator's allowlist" in refused.reason
    plan = compensate.prepare(conn, ACTION, {sor.allow_entry})
    # The allowlist is checked again when running: a plan cannot outlive the operator's setting.
    out = compensate.commit(conn, plan, operator="ops", now=1.0, allow_hosts=frozenset())
    assert isinstance(out, Outcome) and not out.ok and "allowlist" in out.error
    assert _state(sor, ACTION)["state"] == "applied"


def test_trace_cannot_point_the_console_elsewhere(conn, sor):
    hook = {"type": "http", "url": "http://169.254.169.254/latest/meta-data", "idempotency_key": "k"}
    conn.execute("UPDATE actions SET compensation = ? WHERE action_id = ?", (json.dumps(hook), ACTION))
    refused = compensate.prepare(conn, ACTION, {sor.allow_entry})
    assert isinstance(refused, Refusal) and "169.254.169.254:80" in refused.reason


def test_no_hook_and_unknown_handler_are_clear_refusals(conn):
    failed = conn.execute("SELECT action_id FROM actions WHERE compensation IS NULL LIMIT 1").fetchone()[0]
    assert "no compensation hook" in compensate.prepare(conn, failed, set()).reason
    hook = {"type": "handler", "handler": "nope.undo", "idempotency_key": "k1"}
    conn.execute("UPDATE actions SET compensation = ? WHERE action_id = ?", (json.dumps(hook), ACTION))
    refused = compensate.prepare(conn, ACTION, set())
    assert isinstance(refused, Refusal) and "nope.undo" in refused.reason


def test_registered_handler_runs_with_the_idempotency_key(conn):
    calls = []

    @handlers.register("test.restore", system="payments")
    def restore(args, key):
        calls.append((args, key))
        return {"status": 200, "body": {"restored": True}}

    try:
        hook = {"type": "handler", "handler": "test.restore", "args": {"order": 7}, "idempotency_key": "undo-h"}
        conn.execute("UPDATE actions SET compensation = ? WHERE action_id = ?", (json.dumps(hook), ACTION))
        plan = compensate.prepare(conn, ACTION, set())
        assert isinstance(plan, Plan) and plan.target == "handler test.restore"
        out = compensate.commit(conn, plan, operator="ops", now=5.0, allow_hosts=set())
        assert out.ok and calls == [({"order": 7}, "undo-h")]
    finally:
        handlers.unregister("test.restore")


def test_action_already_undone_by_the_agent_is_refused(conn):
    row = conn.execute("SELECT action_id, compensated_by FROM actions WHERE compensated_at IS NOT NULL LIMIT 1").fetchone()
    refused = compensate.prepare(conn, row[0], {"127.0.0.1"})
    assert isinstance(refused, Refusal) and row[1] in refused.reason


def test_an_attempt_in_flight_blocks_a_second_one_until_it_is_stale(conn, sor):
    plan = compensate.prepare(conn, ACTION, {sor.allow_entry})
    conn.execute(
        """INSERT INTO compensations (action_id, task_id, attempt, requested_by, requested_at, target, plan,
           idempotency_key, status) VALUES (?, 'task-0001', 1, 'bob', 1000.0, 't', '{}', 'undo-act-0001', 'running')""",
        (ACTION,),
    )
    busy = compensate.commit(conn, plan, operator="alice", now=1005.0, allow_hosts={sor.allow_entry})
    assert isinstance(busy, Refusal) and "already running" in busy.reason and "bob" in busy.reason
    later = compensate.commit(conn, plan, operator="alice", now=1100.0, allow_hosts={sor.allow_entry})
    assert isinstance(later, Outcome) and later.ok and later.attempt == 2
