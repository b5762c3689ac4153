"""Rebuilding a task's decision path from the store."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone, UTC

import pytest

from agentdeck.replay.reconstruct import reconstruct
from agentdeck.sample_data.driver import TaskRun
from agentdeck.sample_data.scenarios import Spec
from agentdeck.store.db import connect
from agentdeck.store.tailer import Tailer


def test_escalated_refund_reads_as_request_to_action(conn):
    r = reconstruct(conn, "task-0001")
    assert [s.kind for s in r.steps] == [
        "task_start", "plan", "tool_call", "tool_result", "reasoning", "policy_check",
        "escalation", "decision", "action", "task_end",
    ]
    assert r.request_id == "req-0001" and r.agent == "approval-agent"
    assert r.agent_version["model"] == "gpt-4.1-2025-04" and r.policy_versions == ["POL-REFUND-3@4"]
    assert r.plan["summary"].startswith("Check the request against policy")
    (call,) = r.tool_calls
    assert call.tool == "payments.lookup_order" and call.input == {"user": "alice"} and call.results[0]["status"] == "ok"
    (esc,) = r.escalations
    assert (esc.status, esc.decided_by, esc.decision_reason) == ("approved", "tom.r", "checked with the requester")
    assert esc.agent_saw["decision"] == "approve"
    (act,) = r.actions
    assert (act.before, act.after) == ({"refunded": 0}, {"refunded": 2390.45})
    assert act.response == {"status": 200, "body": {"ok": True, "id": "act-0001"}}
    assert act.compensation["idempotency_key"] == "undo-act-0001"
    assert r.decision_index == 6 and r.decision_points == [6, 7, 8]
    assert r.gaps == [] and r.outcome == "success"


def test_found_by_request_id(conn):
    assert reconstruct(conn, "req-0001").task_id == "task-0001"
    assert reconstruct(conn, "no-such-thing") is None


def test_agent_compensation_is_part_of_the_path(conn):
    task = conn.execute("SELECT task_id FROM tasks WHERE compensations > 0 ORDER BY task_id LIMIT 1").fetchone()[0]
    r = reconstruct(conn, task)
    assert r.trace_compensations and r.trace_compensations[0]["by"] == "guardrail-bot"
    assert r.actions[0].compensated_by == "guardrail-bot"


def _events(key: str, decision: str = "approve") -> list[dict]:
    run = TaskRun(Spec(kind="refund", flavour="ambiguous", canary=False, seed=7, decision=decision), key)
    ts = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    out = []
    while True:
        e = run.step(ts)
        if e is None and run.waiting is not None:
            e = run.decide(decision, "maria.k", "ok", ts)
        if e is None:
            return out
        out.append(e)
        ts += timedelta(seconds=1)


def _ingest(tmp_path, lines: list[dict]):
    folder = tmp_path / "traces"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    c = connect(tmp_path / "t.db")
    Tailer(c, [folder]).poll()
    return c


def test_out_of_order_arrival_is_shown_in_seq_order(tmp_path):
    events = _events("ooo")
    shuffled = events[:]
    random.Random(3).shuffle(shuffled)
    assert [e["seq"] for e in shuffled] != sorted(e["seq"] for e in shuffled)
    r = reconstruct(_ingest(tmp_path, shuffled), "task-ooo")
    assert [s.seq for s in r.steps] == list(range(len(events)))
    assert [s.kind for s in r.steps] == [e["kind"] for e in events]
    assert r.gaps == []


def test_missing_steps_are_a_gap_not_a_crash(tmp_path):
    events = _events("gap")
    call = next(i for i, e in enumerate(events) if e["kind"] == "tool_call")
    kept = events[:call] + events[call + 1 :]  # the tool call never arrived; its result did
    last = len(events) - 1
    kept = [e for e in kept if e["seq"] not in (last - 2,)]  # and one more later on
    r = reconstruct(_ingest(tmp_path, kept), "task-gap")
    assert r.gaps == [(call, call), (last - 2, last - 2)]
    gap_steps = [s for s in r.steps if s.is_gap]
    assert [s.seq for s in gap_steps] == [call, last - 2]
    assert "never arrived" in gap_steps[0].title
    (exchange,) = r.tool_calls
    assert exchange.input is None and exchange.call_seq is None and len(exchange.results) == 1
    assert [s.index for s in r.steps] == list(range(len(r.steps)))


def test_leading_and_multi_seq_gaps(tmp_path):
    events = _events("lead")
    r = reconstruct(_ingest(tmp_path, events[3:]), "task-lead")
    assert r.gaps == [(0, 2)] and r.steps[0].title == "gap: seqs 0–2 never arrived"
    assert r.request_id is None and r.agent_version == {}  # task_start is in the gap: no crash


def test_hostile_payload_text_is_kept_verbatim_for_safe_display(tmp_path):
    events = _events("hostile")
    events[1]["summary"] = "[@click=app.quit]x[/] \x1b[2J"
    r = reconstruct(_ingest(tmp_path, events), "task-hostile")
    assert r.steps[1].title == "plan: [@click=app.quit]x[/] \x1b[2J"


def test_a_repeated_seq_is_shown_twice_not_hidden(tmp_path):
    events = _events("dup")
    again = dict(events[2], input={"user": "someone-else"})
    r = reconstruct(_ingest(tmp_path, events + [again]), "task-dup")
    assert [s.seq for s in r.steps][:4] == [0, 1, 2, 2] and r.gaps == []
    assert r.steps[3].data["input"] == {"user": "someone-else"}
