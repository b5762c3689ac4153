"""The contract gate cannot be dodged by a type: amounts, costs and counts are finite JSON numbers, or rejected."""

from __future__ import annotations

import json
import math

import pytest

from agentdeck.store import contract as ct
from agentdeck.store.db import connect
from agentdeck.store.tailer import Tailer

T0 = "2026-11-24T10:00:00Z"
CONTRACT = """
agent = "pay-bot"
[tools]
allow = []
[actions."payments.refund"]
max_amount = 100
[done]
require_events = []
action_evidence = []
"""


def action(amount_json: str, seq: int = 1, task: str = "t") -> str:
    return (f'{{"v": 1, "kind": "action", "ts": "{T0}", "task_id": "{task}", "seq": {seq}, "action_id": "a{seq}", '
            f'"system": "payments", "operation": "refund", "amount": {amount_json}}}')


def start(task: str = "t") -> str:
    return json.dumps({"v": 1, "kind": "task_start", "ts": T0, "task_id": task, "seq": 0, "request_id": "r",
                       "agent": "pay-bot", "agent_version": {"id": "v1"}})


@pytest.fixture
def ingest(tmp_path):
    folder = tmp_path / "traces"
    (folder / "contracts").mkdir(parents=True)
    (folder / "contracts" / "pay-bot.toml").write_text(CONTRACT)

    def run(*lines: str):
        (folder / "a.jsonl").write_text("".join(line + "\n" for line in lines))
        conn = connect(tmp_path / "s.db")
        Tailer(conn, [folder]).poll()
        return conn

    return run


@pytest.mark.parametrize("amount", ['"100000"', '"NaN"', '"Infinity"', "NaN", "Infinity", "-Infinity", "1e400",
                                    "true", '{"value": 100000}'])
def test_an_amount_that_is_not_a_finite_number_is_rejected_with_a_reason(ingest, amount):
    conn = ingest(start(), action(amount))
    rejects = conn.execute("SELECT offset, error FROM rejects").fetchall()
    assert len(rejects) == 1 and "amount" in rejects[0]["error"], [tuple(r) for r in rejects]
    assert conn.execute("SELECT count(*) FROM actions").fetchone()[0] == 0  # never coerced and stored


def test_a_numeric_amount_above_the_limit_is_a_violation_on_the_stored_value(ingest):
    conn = ingest(start(), action("100000"))
    assert conn.execute("SELECT amount FROM actions").fetchone()[0] == 100000.0
    assert [v["rule"] for v in ct.task_violations(conn, "t")] == [ct.UNAPPROVED_ACTION]


@pytest.mark.parametrize("field,value", [("cost_usd", "Infinity"), ("cost_usd", '"3.5"'), ("cost_usd", "1e400"),
                                         ("tokens_in", '"12"'), ("tokens_in", "1.5"), ("tokens_out", "NaN"),
                                         ("latency_ms", "Infinity")])
def test_a_non_finite_or_non_numeric_cost_or_count_is_rejected(ingest, field, value):
    end = f'{{"v": 1, "kind": "task_end", "ts": "{T0}", "task_id": "t", "seq": 2, "outcome": "success", "{field}": {value}}}'
    conn = ingest(start(), end)
    rejects = conn.execute("SELECT error FROM rejects").fetchall()
    assert len(rejects) == 1 and field in rejects[0][0]
    cost = conn.execute("SELECT cost_usd FROM tasks WHERE task_id = 't'").fetchone()[0]
    assert math.isfinite(cost)  # never "$inf" on screen


def test_old_stores_with_string_amounts_are_still_checked_strictly():
    """A payload written before this rule (amount as a string): needs approval, never skips the limit."""
    contract = ct.Contract(agent="pay-bot", actions={"payments.refund": ct.ActionRule(max_amount=100)},
                           done=ct.Done(require_events=[], action_evidence=[]))
    for amount in ("100000", "NaN", float("nan"), float("inf"), 10**400, True):
        events = [{"kind": "action", "seq": 1, "system": "payments", "operation": "refund", "amount": amount}]
        assert [v.rule for v in ct.check_task(contract, events)] == [ct.UNAPPROVED_ACTION], amount
    # An approval for a NaN amount covers nothing; one for a number covers up to it.
    esc = {"kind": "escalation", "seq": 1, "escalation_id": "e", "proposed_action":
           {"system": "payments", "operation": "refund", "amount": float("nan")}}
    dec = {"kind": "decision", "seq": 2, "escalation_id": "e", "decision": "approve"}
    act = {"kind": "action", "seq": 3, "system": "payments", "operation": "refund", "amount": 500}
    assert [v.rule for v in ct.check_task(contract, [esc, dec, act])] == [ct.UNAPPROVED_ACTION]
    esc["proposed_action"]["amount"] = 500
    assert ct.check_task(contract, [esc, dec, act]) == []
