"""A bulk import (parse processes, the contract hook reading only the fields it needs)
stores the same verdicts as checking every task over its fully decoded events."""

from __future__ import annotations

import json
import shutil

import pytest

from agentdeck.store import contract as ct
from agentdeck.store.db import connect
from agentdeck.store.parallel import ParsePool
from agentdeck.store.tailer import Tailer
from tests.conftest import SAMPLE_TRACES


@pytest.fixture(scope="module")
def pool():
    p = ParsePool(1)
    yield p
    p.close()


def task_with_tools(task_id: str, tools: list[str]) -> list[dict]:
    start = {"v": 1, "ts": "2026-11-24T09:00:00Z", "task_id": task_id, "seq": 0, "kind": "task_start",
             "request_id": f"r-{task_id}", "agent": "approval-agent", "agent_version": {"id": "v1"}}
    return [start] + [{"v": 1, "ts": "2026-11-24T09:00:01Z", "task_id": task_id, "seq": 1 + i, "kind": "tool_call",
                       "call_id": f"c{i}", "tool": tool, "input": {"q": "x" * 40}} for i, tool in enumerate(tools)]


def test_bulk_import_verdicts_match_a_full_check(tmp_path, pool):
    traces = tmp_path / "traces"
    shutil.copytree(SAMPLE_TRACES, traces)
    # Tool calls the contract allows, forbids and does not know, added to sample tasks.
    with open(traces / "extra.jsonl", "w") as f:
        for e in task_with_tools("extra-1", ["iam.lookup_user", "shell.exec", "search_users"]):
            f.write(json.dumps(e) + "\n")
    conn = connect(tmp_path / "store.db")
    # Small batches so the backlog goes through the parse processes in several transactions.
    tailer = Tailer(conn, [traces], parse_pool=pool, batch_bytes=64 * 1024)
    stats = tailer.poll()
    assert stats.events > 5000 and tailer.problems == {}

    book = ct.book_for_store(conn)
    approved: dict[str, set] = {}
    for task_id, esc in conn.execute("SELECT task_id, escalation_id FROM escalations WHERE status = 'approved'"):
        approved.setdefault(task_id, set()).add(esc)
    expected, stored = {}, {}
    tasks = conn.execute("SELECT task_id, agent, version, stage FROM tasks").fetchall()
    for task_id, agent, version, stage in tasks:
        contract = book.get(agent)
        if contract is None:
            continue
        events = [json.loads(p) for (p,) in conn.execute(
            "SELECT payload FROM events WHERE task_id = ? ORDER BY seq, id", (task_id,))]
        found = ct.check_task(contract, events, version=version, stage=stage, approved=approved.get(task_id, ()))
        expected[task_id] = [(v.seq, v.rule, v.detail) for v in found]
        stored[task_id] = [tuple(r) for r in conn.execute(
            "SELECT seq, rule, detail FROM violations WHERE task_id = ? ORDER BY seq, rule", (task_id,))]
    assert stored == expected
    # The data has violations of the kinds the hook reads fields for, and approvals that prevent some.
    rules = {rule for vs in stored.values() for _, rule, _ in vs}
    assert {ct.UNAPPROVED_ACTION, ct.FORBIDDEN, ct.TOOL_NOT_ALLOWED} <= rules
    assert [r for _, r, _ in stored["extra-1"]] == [ct.FORBIDDEN, ct.TOOL_NOT_ALLOWED]
    assert any(approved.values())
    assert sum(len(v) for v in stored.values()) == conn.execute("SELECT sum(violations) FROM tasks").fetchone()[0]
