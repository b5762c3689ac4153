"""store/decisions.py: first decision wins, reasons, expiry policy, audit in the same transaction."""

from __future__ import annotations

import threading

import pytest

from conftest import FIXED_NOW
from agentdeck.store import audit, decisions
from agentdeck.store.db import connect
from test_escalations_support import audit_records, esc_db, row_of  # noqa: F401  (fixture)


def test_decision_is_recorded_with_its_audit_record(esc_db):
    conn = connect(esc_db)
    out = decisions.decide(conn, "esc-t-low", "approve", by="alice", reason="", now=FIXED_NOW)
    assert out.applied and out.status == "approved" and not out.expired
    row = row_of(esc_db, "esc-t-low")
    assert (row["status"], row["decided_by"], row["decided_at"], row["delivery"]) == ("approved", "alice", FIXED_NOW, "pending")
    assert row["idempotency_key"] == out.idempotency_key and row["idempotency_key"].startswith("agentdeck-dec-")
    [rec] = audit_records(esc_db, "esc-t-low")
    assert (rec["actor"], rec["kind"], rec["ts"]) == ("alice", "decision", FIXED_NOW)
    assert rec["detail"]["decision"] == "approve" and rec["detail"]["task_id"] == "t-low"
    assert audit.verify(conn) == (1, [])


@pytest.mark.parametrize("escalation_id,decision", [("esc-t-low", "deny"), ("esc-t-high", "approve")])
def test_reason_required_to_deny_and_to_approve_high_risk(esc_db, escalation_id, decision):
    conn = connect(esc_db)
    with pytest.raises(decisions.ReasonRequired):
        decisions.decide(conn, escalation_id, decision, by="alice", reason="   ", now=FIXED_NOW)
    assert row_of(esc_db, escalation_id)["status"] == "pending"
    assert audit_records(esc_db, escalation_id) == []
    out = decisions.decide(conn, escalation_id, decision, by="alice", reason="checked with the owner", now=FIXED_NOW)
    assert out.applied and row_of(esc_db, escalation_id)["decision_reason"] == "checked with the owner"


def test_second_decision_is_told_who_decided_and_changes_nothing(esc_db):
    a, b = connect(esc_db), connect(esc_db)
    decisions.decide(a, "esc-t-low", "approve", by="alice", now=FIXED_NOW)
    out = decisions.decide(b, "esc-t-low", "deny", by="bob", reason="no", now=FIXED_NOW + 5)
    assert not out.applied
    assert (out.status, out.decided_by, out.decided_at) == ("approved", "alice", FIXED_NOW)
    row = row_of(esc_db, "esc-t-low")
    assert (row["status"], row["decided_by"], row["decision_reason"]) == ("approved", "alice", "")
    assert len(audit_records(esc_db, "esc-t-low")) == 1


def test_concurrent_deciders_on_separate_connections_one_wins(esc_db):
    n = 8
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def decide(i: int) -> None:
        conn = connect(esc_db)
        barrier.wait()
        results[i] = decisions.decide(conn, "esc-t-high", "approve" if i % 2 else "deny", by=f"op{i}",
                                      reason=f"r{i}", now=FIXED_NOW)
        conn.close()

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r.applied]
    assert len(winners) == 1
    row = row_of(esc_db, "esc-t-high")
    assert row["decided_by"] == winners[0].decided_by
    assert all(r.decided_by == winners[0].decided_by for r in results)
    assert len(audit_records(esc_db, "esc-t-high")) == 1


def test_deciding_past_the_deadline_applies_the_expiry_policy(esc_db):
    conn = connect(esc_db)
    out = decisions.decide(conn, "esc-t-expired", "approve", by="alice", now=FIXED_NOW, on_expiry="deny")
    assert out.applied and out.expired and out.status == "denied" and out.requested == "approve"
    row = row_of(esc_db, "esc-t-expired")
    assert (row["status"], row["decided_by"]) == ("denied", "expiry-policy")
    [rec] = audit_records(esc_db, "esc-t-expired")
    assert rec["actor"] == "expiry-policy"
    assert rec["detail"]["requested_by"] == "alice" and rec["detail"]["requested"] == "approve"


def test_keep_policy_lets_a_human_decide_after_the_deadline(esc_db):
    conn = connect(esc_db)
    assert decisions.expire_due(conn, now=FIXED_NOW, policy="keep") == []
    out = decisions.decide(conn, "esc-t-expired", "approve", by="alice", now=FIXED_NOW, on_expiry="keep")
    assert out.applied and not out.expired
    assert row_of(esc_db, "esc-t-expired")["decided_by"] == "alice"


@pytest.mark.parametrize("policy,status", [("deny", "denied"), ("approve", "approved")])
def test_expiry_sweep_decides_only_what_is_past_its_deadline(esc_db, policy, status):
    conn = connect(esc_db)
    outcomes = decisions.expire_due(conn, now=FIXED_NOW, policy=policy)
    assert [o.escalation_id for o in outcomes] == ["esc-t-expired"]
    row = row_of(esc_db, "esc-t-expired")
    assert (row["status"], row["decided_by"], row["delivery"]) == (status, "expiry-policy", "pending")
    assert row_of(esc_db, "esc-t-high")["status"] == "pending"
    assert audit_records(esc_db, "esc-t-expired")[0]["actor"] == "expiry-policy"
    assert decisions.expire_due(conn, now=FIXED_NOW, policy=policy) == []  # nothing twice


def test_unknown_escalation_is_a_clear_error(esc_db):
    with pytest.raises(decisions.UnknownEscalation, match="no escalation"):
        decisions.decide(connect(esc_db), "esc-nope", "approve", by="alice", now=FIXED_NOW)


def test_on_expiry_policy_from_cli_or_environment(monkeypatch):
    monkeypatch.delenv(decisions.ENV_ON_EXPIRY, raising=False)
    assert decisions.on_expiry_policy() == "deny"
    monkeypatch.setenv(decisions.ENV_ON_EXPIRY, "keep")
    assert decisions.on_expiry_policy() == "keep"
    assert decisions.on_expiry_policy("approve") == "approve"
    with pytest.raises(ValueError, match="deny, approve, keep"):
        decisions.on_expiry_policy("maybe")
