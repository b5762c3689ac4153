"""Who decided, and who may: OS user and SSH client recorded, approver rules, the two-person rule."""

from __future__ import annotations

import pytest

from conftest import FIXED_NOW
from agentdeck.store import audit, decisions
from agentdeck.store.approvers import ApproverRule, ApproverRules
from agentdeck.store.db import connect
from agentdeck.store.origin import Origin, ssh_client
from test_escalations_support import _task, audit_records, esc_db, ingest_events, row_of  # noqa: F401

ALICE = Origin(os_user="alice", ssh_client="10.0.0.5")
BOB = Origin(os_user="bob", ssh_client="10.0.0.6")
TWO_PERSON = ApproverRules(two_person=["critical"])


@pytest.fixture
def crit_db(esc_db, tmp_path):
    """The escalation store plus one pending critical-risk escalation on iam."""
    n = FIXED_NOW
    ingest_events(esc_db, _task("t-crit", raised=n - 30, deadline=n + 900, risk="critical", system="iam",
                                operation="grant_role", params={"user": "mallory", "role": "root"}),
                  tmp_path / "crit-traces")
    return esc_db


def test_os_user_and_ssh_client_are_recorded_in_the_row_and_the_audit_record(esc_db):
    conn = connect(esc_db)
    origin = Origin.current({"SSH_CONNECTION": "203.0.113.9 52144 10.0.0.1 22"})
    assert origin.ssh_client == "203.0.113.9" and origin.os_user  # the uid's account, not $USER
    decisions.decide(conn, "esc-t-low", "approve", by="alice", now=FIXED_NOW, origin=origin)
    row = row_of(esc_db, "esc-t-low")
    assert (row["decided_os_user"], row["decided_ssh_client"]) == (origin.os_user, "203.0.113.9")
    [rec] = audit_records(esc_db, "esc-t-low")
    assert (rec["detail"]["os_user"], rec["detail"]["ssh_client"]) == (origin.os_user, "203.0.113.9")


def test_default_origin_is_this_process_and_no_ssh_outside_ssh(esc_db, monkeypatch):
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    monkeypatch.setenv("USER", "someone-else")  # a name anyone can set is not the OS account
    conn = connect(esc_db)
    decisions.decide(conn, "esc-t-low", "approve", by="alice", now=FIXED_NOW)
    row = row_of(esc_db, "esc-t-low")
    import os
    import pwd

    assert row["decided_os_user"] == pwd.getpwuid(os.getuid()).pw_name
    assert row["decided_ssh_client"] is None


@pytest.mark.parametrize("value,expected", [
    ("203.0.113.9 52144 10.0.0.1 22", "203.0.113.9"),
    ("2001:db8::1 52144 2001:db8::2 22", "2001:db8::1"),
    ("fe80::1%eth0 1 fe80::2%eth0 22", "fe80::1"),
    ("$(rm -rf /) 1 2 3", None),
    ("", None),
])
def test_ssh_client_is_the_first_field_when_it_is_an_address(value, expected):
    assert ssh_client({"SSH_CONNECTION": value}) == expected


RULES = ApproverRules(rules=[
    ApproverRule(name="payments on-call", users=["alice"], risks=["low", "medium"], systems=["payments"]),
    ApproverRule(name="iam admins", users=["bob"], risks=["low", "medium", "high", "critical"], systems=["iam"]),
])


def test_a_non_approver_is_refused_with_the_rule_and_nothing_changes(esc_db):
    conn = connect(esc_db)
    head = audit.head(conn)
    with pytest.raises(decisions.NotAllowed) as refused:
        decisions.decide(conn, "esc-t-high", "approve", by="alice", reason="ok", now=FIXED_NOW, rules=RULES,
                         origin=ALICE)
    assert "alice may not approve high risk on iam" in str(refused.value)
    assert decisions.approval_refusal(conn, "esc-t-high", by="alice", rules=RULES, origin=ALICE) == str(refused.value)
    assert "rule 'payments on-call' allows low, medium risk on payments" in str(refused.value)
    assert row_of(esc_db, "esc-t-high")["status"] == "pending"
    assert audit.head(conn) == head
    with pytest.raises(decisions.NotAllowed, match="no approver rule names carol"):
        decisions.decide(conn, "esc-t-low", "approve", by="carol", now=FIXED_NOW, rules=RULES, origin=ALICE)
    with pytest.raises(decisions.NotAllowed):  # told they may not, before being asked for a reason
        decisions.decide(conn, "esc-t-high", "approve", by="alice", reason="", now=FIXED_NOW, rules=RULES,
                         origin=ALICE)
    # Allowed combinations take effect; a deny is never restricted.
    assert decisions.decide(conn, "esc-t-low", "approve", by="alice", now=FIXED_NOW, rules=RULES, origin=ALICE).applied
    out = decisions.decide(conn, "esc-t-high", "deny", by="carol", reason="no", now=FIXED_NOW, rules=RULES, origin=BOB)
    assert out.applied and out.status == "denied"


def test_rules_can_match_the_os_account_instead_of_the_chosen_name(esc_db):
    rules = RULES.model_copy(update={"match": "os_user"})
    conn = connect(esc_db)
    with pytest.raises(decisions.NotAllowed, match="alice may not approve high risk"):
        decisions.decide(conn, "esc-t-high", "approve", by="bob", reason="ok", now=FIXED_NOW, rules=rules,
                         origin=ALICE)  # calls itself bob, is OS user alice
    assert decisions.decide(conn, "esc-t-high", "approve", by="whoever", reason="ok", now=FIXED_NOW, rules=rules,
                            origin=BOB).applied


def test_critical_approval_takes_two_distinct_users(crit_db):
    conn = connect(crit_db)
    first = decisions.decide(conn, "esc-t-crit", "approve", by="alice", reason="verified", now=FIXED_NOW,
                             rules=TWO_PERSON, origin=ALICE)
    assert first.applied and first.awaiting_second and first.status == "pending"
    row = row_of(crit_db, "esc-t-crit")
    assert (row["status"], row["delivery"], row["first_approved_by"], row["first_approved_ssh_client"]) == \
        ("pending", None, "alice", "10.0.0.5")
    [rec] = audit_records(crit_db, "esc-t-crit")
    assert rec["kind"] == "decision-first-approval" and rec["actor"] == "alice"

    # alice again (same name, or a new name from the same OS account): nothing happens.
    again = decisions.decide(conn, "esc-t-crit", "approve", by="alice", reason="really", now=FIXED_NOW + 1,
                             rules=TWO_PERSON, origin=ALICE)
    assert not again.applied and again.awaiting_second and "second, different approver" in again.note
    disguised = decisions.decide(conn, "esc-t-crit", "approve", by="not-alice", reason="x", now=FIXED_NOW + 2,
                                 rules=TWO_PERSON, origin=ALICE)
    assert not disguised.applied
    assert row_of(crit_db, "esc-t-crit")["status"] == "pending"
    assert len(audit_records(crit_db, "esc-t-crit")) == 1

    assert "already approved" in decisions.approval_refusal(conn, "esc-t-crit", by="alice", rules=TWO_PERSON,
                                                            origin=ALICE)
    assert decisions.approval_refusal(conn, "esc-t-crit", by="bob", rules=TWO_PERSON, origin=BOB) is None
    second = decisions.decide(conn, "esc-t-crit", "approve", by="bob", reason="confirmed", now=FIXED_NOW + 3,
                              rules=TWO_PERSON, origin=BOB)
    assert second.applied and second.status == "approved" and second.first_approved_by == "alice"
    row = row_of(crit_db, "esc-t-crit")
    assert (row["status"], row["decided_by"], row["decided_os_user"], row["delivery"]) == \
        ("approved", "bob", "bob", "pending")
    recs = audit_records(crit_db, "esc-t-crit")
    assert [r["kind"] for r in recs] == ["decision-first-approval", "decision"]
    assert recs[1]["detail"]["first_approval"]["by"] == "alice"
    assert audit.verify(conn)[1] == []


def test_a_deny_after_one_approval_decides_at_once(crit_db):
    conn = connect(crit_db)
    decisions.decide(conn, "esc-t-crit", "approve", by="alice", reason="ok", now=FIXED_NOW, rules=TWO_PERSON,
                     origin=ALICE)
    out = decisions.decide(conn, "esc-t-crit", "deny", by="alice", reason="changed my mind", now=FIXED_NOW + 1,
                           rules=TWO_PERSON, origin=ALICE)
    assert out.applied and out.status == "denied"


def test_without_rules_a_critical_approval_takes_effect_at_once(crit_db):
    conn = connect(crit_db)  # existing callers pass no rules: unchanged behaviour
    out = decisions.decide(conn, "esc-t-crit", "approve", by="alice", reason="ok", now=FIXED_NOW)
    assert out.applied and out.status == "approved" and not out.awaiting_second


def test_the_second_approver_must_be_allowed_too(crit_db):
    rules = ApproverRules(two_person=["critical"], rules=[
        ApproverRule(name="iam admins", users=["alice", "bob"], risks=["critical"], systems=["iam"])])
    conn = connect(crit_db)
    decisions.decide(conn, "esc-t-crit", "approve", by="alice", reason="ok", now=FIXED_NOW, rules=rules, origin=ALICE)
    with pytest.raises(decisions.NotAllowed, match="no approver rule names carol"):
        decisions.decide(conn, "esc-t-crit", "approve", by="carol", reason="ok", now=FIXED_NOW, rules=rules,
                         origin=Origin("carol"))
    assert decisions.decide(conn, "esc-t-crit", "approve", by="bob", reason="ok", now=FIXED_NOW, rules=rules,
                            origin=BOB).status == "approved"


def test_approver_rules_reject_unknown_keys_and_risks():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ApproverRules.model_validate({"two_person": ["severe"]})
    with pytest.raises(ValidationError):
        ApproverRules.model_validate({"rules": [{"users": ["a"], "risk": ["low"]}]})


def test_a_delivery_retry_records_who_and_from_where(esc_db):
    conn = connect(esc_db)
    decisions.decide(conn, "esc-t-low", "approve", by="alice", now=FIXED_NOW, origin=ALICE)
    conn.execute("UPDATE escalations SET delivery = 'failed' WHERE escalation_id = 'esc-t-low'")
    assert decisions.request_retry(conn, "esc-t-low", by="bob", now=FIXED_NOW + 1, origin=BOB)
    rec = audit_records(esc_db, "esc-t-low")[-1]
    assert (rec["kind"], rec["actor"], rec["detail"]["os_user"], rec["detail"]["ssh_client"]) == \
        ("delivery-retry", "bob", "bob", "10.0.0.6")
