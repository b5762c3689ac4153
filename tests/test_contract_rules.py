"""Each contract rule: a compliant task passes, and breaking the rule is caught at the right step."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from agentdeck.store import contract as ct

BUNDLED = Path(__file__).resolve().parents[1] / "sample_data" / "contracts"


@pytest.fixture(scope="module")
def approval() -> ct.Contract:
    return ct.load_contract(BUNDLED / "approval-agent.toml")


def good_task(amount: float = 120.0) -> list[dict]:
    """A refund within limits that satisfies the approval agent's contract."""
    return [
        {"kind": "task_start", "seq": 0, "agent": "approval-agent", "stage": "bounded"},
        {"kind": "plan", "seq": 1, "summary": "refund"},
        {"kind": "tool_call", "seq": 2, "call_id": "c1", "tool": "payments.lookup_order"},
        {"kind": "tool_result", "seq": 3, "call_id": "c1", "tool": "payments.lookup_order", "status": "ok"},
        {"kind": "policy_check", "seq": 4, "verdict": "allow", "policy_id": "P", "policy_version": "1"},
        {"kind": "action", "seq": 5, "action_id": "a1", "system": "payments", "operation": "refund",
         "amount": amount, "params": {"user": "bob"}, "status": "ok", "justification": "within policy",
         "before": {"refunded": 0}, "after": {"refunded": amount},
         "compensation": {"type": "http", "url": "http://127.0.0.1:8765/compensate", "idempotency_key": "k"}},
        {"kind": "task_end", "seq": 6, "outcome": "success"},
    ]


def escalated_task(amount: float, decision: str | None, proposed: float | None = None) -> list[dict]:
    events = good_task(amount)
    action = events[5]
    esc = {"kind": "escalation", "seq": 5, "escalation_id": "e1", "risk": "high",
           "proposed_action": {"system": "payments", "operation": "refund", "amount": proposed or amount}}
    tail = [esc]
    if decision:
        tail.append({"kind": "decision", "seq": 6, "escalation_id": "e1", "decision": decision, "decided_by": "ann"})
    action = dict(action, seq=5 + len(tail))
    end = dict(events[6], seq=6 + len(tail))
    return events[:5] + tail + [action, end]


def rules(vs):
    return [(v.seq, v.rule) for v in vs]


def test_compliant_task_has_no_violations(approval):
    assert ct.check_task(approval, good_task(), version="v1", stage="bounded") == []


def test_tool_not_allowed(approval):
    events = good_task()
    events[2]["tool"] = "payments.issue_voucher"
    assert rules(ct.check_task(approval, events, version="v1")) == [(2, ct.TOOL_NOT_ALLOWED)]


def test_forbidden_tool_and_action(approval):
    events = good_task()
    events[2]["tool"] = "shell.exec"
    events[5].update(system="payments", operation="transfer")
    assert rules(ct.check_task(approval, events, version="v1")) == [(2, ct.FORBIDDEN), (5, ct.FORBIDDEN)]


def test_action_not_in_contract(approval):
    events = good_task()
    events[5]["operation"] = "chargeback"
    assert rules(ct.check_task(approval, events, version="v1")) == [(5, ct.ACTION_NOT_ALLOWED)]


def test_amount_above_threshold_without_approval(approval):
    assert rules(ct.check_task(approval, good_task(500.0), version="v1")) == []
    vs = ct.check_task(approval, good_task(500.01), version="v1")
    assert rules(vs) == [(5, ct.UNAPPROVED_ACTION)]
    assert "above 500" in vs[0].detail


@pytest.mark.parametrize("decision", [None, "deny", "expire"])
def test_escalated_but_not_approved_is_a_violation(approval, decision):
    events = escalated_task(900.0, decision)
    action_seq = next(e["seq"] for e in events if e["kind"] == "action")
    assert rules(ct.check_task(approval, events, version="v1")) == [(action_seq, ct.UNAPPROVED_ACTION)]


def test_approved_escalation_allows_the_action(approval):
    assert ct.check_task(approval, escalated_task(900.0, "approve"), version="v1") == []


def test_approval_given_in_the_console_counts(approval):
    events = escalated_task(900.0, None)
    assert ct.check_task(approval, events, version="v1", approved={"e1"}) == []


def test_approval_for_a_smaller_amount_does_not_cover_a_bigger_action(approval):
    vs = ct.check_task(approval, escalated_task(900.0, "approve", proposed=600.0), version="v1")
    assert [v.rule for v in vs] == [ct.UNAPPROVED_ACTION]


def test_parameter_that_needs_approval(approval):
    events = good_task()
    events[2]["tool"] = "iam.lookup_user"
    events[5].update(system="iam", operation="grant_role", amount=None, params={"user": "bob", "role": "org-admin"})
    assert rules(ct.check_task(approval, events, version="v1")) == [(5, ct.UNAPPROVED_ACTION)]
    events[5]["params"]["role"] = "viewer"
    assert ct.check_task(approval, events, version="v1") == []


def test_risk_threshold(approval):
    risky = approval.model_copy(update={"actions": {"payments.refund": ct.ActionRule(risk="critical")}})
    assert rules(ct.check_task(risky, good_task(1.0), version="v1")) == [(5, ct.UNAPPROVED_ACTION)]
    assert ct.check_task(risky, escalated_task(1.0, "approve"), version="v1") == []


def test_action_in_shadow_mode(approval):
    assert rules(ct.check_task(approval, good_task(), version="v1", stage="shadow")) == [(5, ct.SHADOW_ACTION)]
    shadowed = approval.model_copy(update={"versions": {"v1": "shadow"}})
    assert rules(ct.check_task(shadowed, good_task(), version="v1", stage="bounded")) == [(5, ct.SHADOW_ACTION)]
    # A shadow task that only reads is fine.
    reads_only = [e for e in good_task() if e["kind"] != "action"]
    assert ct.check_task(shadowed, reads_only, version="v1") == []


def test_endpoint_not_allowed(approval):
    events = good_task()
    events[5]["compensation"]["url"] = "https://evil.example.com/undo"
    vs = ct.check_task(approval, events, version="v1")
    assert rules(vs) == [(5, ct.ENDPOINT_NOT_ALLOWED)]
    assert "evil.example.com" in vs[0].detail


def test_ended_without_required_events(approval):
    events = [e for e in good_task() if e["kind"] != "policy_check"]
    vs = ct.check_task(approval, events, version="v1")
    assert rules(vs) == [(6, ct.MISSING_EVIDENCE)]
    assert "policy_check" in vs[0].detail
    # Still running: not done yet, so not judged on it.
    assert ct.check_task(approval, events[:-1], version="v1") == []


@pytest.mark.parametrize("field", ["justification", "before", "after", "compensation"])
def test_action_without_evidence(approval, field):
    events = copy.deepcopy(good_task())
    events[5][field] = "" if field == "justification" else None
    vs = ct.check_task(approval, events, version="v1")
    assert rules(vs) == [(5, ct.MISSING_EVIDENCE)]
    assert field in vs[0].detail


def test_failed_action_needs_no_compensation(approval):
    events = good_task()
    events[5].update(status="failed", compensation=None)
    assert ct.check_task(approval, events, version="v1") == []


def test_bad_contract_files_get_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('agent = "x"\n[actions."a.b"]\nmax_amount = "lots"\n')
    with pytest.raises(ct.ContractError, match=r"bad.toml: actions\.a\.b\.max_amount"):
        ct.load_contract(bad)
    bad.write_text("agent = \n")
    with pytest.raises(ct.ContractError, match="bad TOML"):
        ct.load_contract(bad)
    book = ct.load_book([tmp_path, BUNDLED])
    assert len(book.problems) == 1 and "approval-agent" in book.contracts


def test_first_folder_wins(tmp_path, monkeypatch):
    (tmp_path / "mine.toml").write_text('agent = "approval-agent"\n[versions]\nv1 = "shadow"\n')
    monkeypatch.setenv(ct.ENV_CONTRACTS, str(tmp_path))
    book = ct.load_book(ct.contract_dirs())
    assert book.get("approval-agent").versions == {"v1": "shadow"}
    assert book.get("records-agent") is not None  # still from the bundled folder


def test_acting_before_the_approval_arrived_is_unapproved(approval):
    events = escalated_task(900.0, "approve")
    decision = next(e for e in events if e["kind"] == "decision")
    action = next(e for e in events if e["kind"] == "action")
    decision["seq"], action["seq"] = action["seq"], decision["seq"]
    events.sort(key=lambda e: e["seq"])
    assert rules(ct.check_task(approval, events, version="v1")) == [(action["seq"], ct.UNAPPROVED_ACTION)]
