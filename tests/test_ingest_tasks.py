"""The tasks summary adds up the same whatever the batch boundaries and arrival order."""

from __future__ import annotations

import json

import pytest

from agentdeck.store.db import connect
from agentdeck.store.ingest import apply_batch
from agentdeck.store.events import parse_event


def ev(seq: int, kind: str, **fields) -> tuple:
    raw = json.dumps({"v": 1, "kind": kind, "ts": f"2026-11-24T09:00:{seq:02d}Z", "task_id": "t", "seq": seq, **fields})
    return parse_event(raw), raw


START = ev(0, "task_start", request_id="r", agent="approval-agent", agent_version={"id": "v1"})
R1 = ev(1, "reasoning", tokens_in=100, tokens_out=10)
R2 = ev(2, "reasoning", tokens_in=200, tokens_out=20)
ESC = ev(3, "escalation", escalation_id="e1", risk="high", reason="big",
         deadline="2026-11-24T10:00:00Z", proposed_action={"system": "iam", "operation": "grant"})
END_TOTAL = ev(4, "task_end", outcome="success", tokens_in=1000, tokens_out=500, latency_ms=1234)
END_BARE = ev(4, "task_end", outcome="success", latency_ms=99)


def ingest(tmp_path, *batches):
    conn = connect(tmp_path / "s.db")
    for batch in batches:
        apply_batch(conn, None, batch, [])
    return conn.execute("SELECT * FROM tasks WHERE task_id = 't'").fetchone(), conn


@pytest.mark.parametrize("batches", [
    [[START, R1, R2, END_BARE]],
    [[START, R1], [R2, END_BARE]],
    [[START], [R1], [R2], [END_BARE]],
    [[END_BARE, R2], [R1, START]],
])
def test_without_a_reported_total_tokens_sum_the_reasoning(tmp_path, batches):
    task, _ = ingest(tmp_path, *batches)
    assert task["tokens"] == 330
    assert task["events"] == 4
    assert task["outcome"] == "success" and task["latency_ms"] == 99
    assert task["last_kind"] == "task_end"


@pytest.mark.parametrize("batches", [
    [[START, R1, R2, END_TOTAL]],
    [[START, R1], [R2, END_TOTAL]],
    [[START, R1, END_TOTAL], [R2]],  # a reasoning event arriving after the end
    [[END_TOTAL], [START, R1, R2]],
])
def test_task_end_total_wins(tmp_path, batches):
    task, _ = ingest(tmp_path, *batches)
    assert task["tokens"] == 1500
    assert task["started"] is not None and task["ended"] is not None and task["started"] < task["ended"]


def test_escalation_gets_its_agent_whichever_arrives_first(tmp_path):
    _, conn = ingest(tmp_path, [ESC], [START])
    assert tuple(conn.execute("SELECT agent, risk_rank FROM escalations").fetchone()) == ("approval-agent", 2)


def test_merged_batches_commit_what_separate_ones_do(tmp_path):
    """The parse pool commits several prepared chunks in one transaction (store.ingest.merge)."""
    from agentdeck.store.ingest import commit, merge, prepare

    batches = [[START, R1], [ESC, R2], [END_TOTAL]]
    separate = connect(tmp_path / "a.db")
    for b in batches:
        commit(separate, None, prepare(b, None), [])
    merged = connect(tmp_path / "b.db")
    commit(merged, None, merge([prepare(b, None) for b in batches]), [])
    skip = {"updated_at"}
    for table, key in (("tasks", "task_id"), ("escalations", "escalation_id"), ("events", "id")):
        rows = [[{k: r[k] for k in r.keys() if k not in skip} for r in c.execute(f"SELECT * FROM {table} ORDER BY {key}")]
                for c in (separate, merged)]
        assert rows[0] == rows[1], table
    assert merged.execute("SELECT tokens, events FROM tasks").fetchone()[:] == (1500, 5)
