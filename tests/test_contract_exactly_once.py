"""Contract violations are derived rows held to the events' bar: committed with them, or queued with them and finished later."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from agentdeck.store import contract as ct
from agentdeck.store.db import connect
from agentdeck.store.ingest import apply_batch
from agentdeck.store.events import parse_event
from agentdeck.store.tailer import Tailer

T0 = "2026-11-24T10:00:00Z"
CONTRACT = """
agent = "pay-bot"
[tools]
allow = ["orders.lookup"]
[actions."payments.refund"]
max_amount = 100
[done]
require_events = []
action_evidence = []
"""


def task(task_id: str, tool: str = "shell.exec") -> list[dict]:
    env = {"v": 1, "ts": T0, "task_id": task_id}
    return [
        {**env, "seq": 0, "kind": "task_start", "request_id": "r", "agent": "pay-bot", "agent_version": {"id": "v1"}},
        {**env, "seq": 1, "kind": "tool_call", "call_id": "c", "tool": tool},
    ]


def folder_with_contract(tmp_path: Path) -> Path:
    folder = tmp_path / "traces"
    (folder / "contracts").mkdir(parents=True)
    (folder / "contracts" / "pay-bot.toml").write_text(CONTRACT)
    return folder


def test_violations_are_visible_the_moment_their_events_are(tmp_path):
    """Another reader (the console) never sees a batch's events without their violations."""
    folder = folder_with_contract(tmp_path)
    (folder / "a.jsonl").write_text("".join(json.dumps(e) + "\n" for t in range(50) for e in task(f"t{t}")))
    db = tmp_path / "s.db"
    conn = connect(db)
    seen: list[tuple[int, int]] = []

    def reader_after_commit(_conn, result) -> None:
        other = sqlite3.connect(db)
        events = other.execute("SELECT count(*) FROM events").fetchone()[0]
        found = other.execute("SELECT count(*) FROM violations").fetchone()[0]
        seen.append((events, found))
        other.close()

    # The reader runs first among the hooks; a ContractCheck must not wait for its turn after the commit.
    Tailer(conn, [folder], post_commit=[reader_after_commit, ct.ContractCheck()]).poll()
    assert seen == [(100, 50)]


def test_a_batch_committed_without_a_check_is_finished_by_the_next_ingester(tmp_path):
    """As the OTLP receiver commits, then dies before its post-commit hook: the next tailer derives what is missing."""
    folder = folder_with_contract(tmp_path)
    conn = connect(tmp_path / "s.db")
    # The store knows the folder (so its contracts apply) and a task arrives by another path.
    (folder / "a.jsonl").write_text("".join(json.dumps(e) + "\n" for e in task("via-file", tool="orders.lookup")))
    Tailer(conn, [folder]).poll()
    items = [(parse_event(json.dumps(e)), json.dumps(e)) for e in task("via-http")]
    apply_batch(conn, None, items, [])  # committed; "killed" before any hook ran
    assert ct.task_violations(conn, "via-http") == []
    conn.close()

    conn = connect(tmp_path / "s.db")  # a restart
    Tailer(conn, [folder]).poll()
    assert [(v["seq"], v["rule"]) for v in ct.task_violations(conn, "via-http")] == [(1, ct.TOOL_NOT_ALLOWED)]
    assert conn.execute("SELECT violations FROM tasks WHERE task_id = 'via-http'").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM contract_pending").fetchone()[0] == 0


def test_a_task_growing_over_batches_is_checked_on_all_its_events(tmp_path):
    """Incremental checks read a task back when it already had events: an approval in a later batch clears it."""
    folder = folder_with_contract(tmp_path)
    env = {"v": 1, "ts": T0, "task_id": "t1"}
    first = [
        {**env, "seq": 0, "kind": "task_start", "request_id": "r", "agent": "pay-bot", "agent_version": {"id": "v1"}},
        {**env, "seq": 1, "kind": "escalation", "escalation_id": "e1", "risk": "high", "reason": "big",
         "deadline": "2026-11-24T11:00:00Z", "proposed_action": {"system": "payments", "operation": "refund",
                                                                  "amount": 500}},
        {**env, "seq": 3, "kind": "action", "action_id": "a1", "system": "payments", "operation": "refund",
         "amount": 500},
    ]
    path = folder / "a.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in first))
    conn = connect(tmp_path / "s.db")
    tailer = Tailer(conn, [folder])
    tailer.poll()
    assert [v["rule"] for v in ct.task_violations(conn, "t1")] == [ct.UNAPPROVED_ACTION]
    with path.open("a") as f:
        f.write(json.dumps({**env, "seq": 2, "kind": "decision", "escalation_id": "e1", "decision": "approve",
                            "decided_by": "ann"}) + "\n")
    tailer.poll()
    assert ct.task_violations(conn, "t1") == []
    assert conn.execute("SELECT violations FROM tasks WHERE task_id = 't1'").fetchone()[0] == 0
