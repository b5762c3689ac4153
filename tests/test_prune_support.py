"""Trace lines for retention tests: tasks at chosen times, plain or carrying an escalation/action."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

DAY = 86_400.0


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def task_lines(task_id: str, start: float, *, escalation: str | None = None, action: bool = False,
               steps: int = 3, agent: str = "test-agent") -> list[str]:
    """A task's events starting at ``start`` (epoch seconds); ``escalation``: 'approve'/'deny' relayed, or 'pending'.

    The default agent has no contract (no violations); ``approval-agent`` is checked against the bundled one.
    """
    t0 = datetime.fromtimestamp(start, UTC)
    seq = 0
    out = []

    def add(kind: str, **fields) -> None:
        nonlocal seq
        out.append(json.dumps({"v": 1, "kind": kind, "ts": _iso(t0 + timedelta(seconds=seq)), "task_id": task_id,
                               "seq": seq, **fields}, separators=(",", ":")))
        seq += 1

    add("task_start", request_id=f"req-{task_id}", agent=agent, agent_version={"id": "v1"},
        request=f"do the thing for {task_id}")
    add("plan", summary="look, then act", steps=["look", "act"])
    for i in range(steps):
        add("tool_call", call_id=f"c{i}", tool="lookup", input={"i": i})
        add("tool_result", call_id=f"c{i}", tool="lookup", output={"ok": True, "token": "sk-secret"}, latency_ms=3)
    if escalation:
        add("escalation", escalation_id=f"esc-{task_id}", risk="high", reason="needs a human",
            deadline=_iso(t0 + timedelta(hours=1)),
            proposed_action={"system": "iam", "operation": "grant_role", "params": {"role": "admin"}})
        if escalation in ("approve", "deny"):
            add("decision", escalation_id=f"esc-{task_id}", decision=escalation, decided_by="maria", reason="ok")
    if action:
        add("action", action_id=f"act-{task_id}", system="iam", operation="grant_role", params={"role": "admin"},
            compensation={"type": "handler", "handler": "revoke", "idempotency_key": f"undo-{task_id}"})
    add("task_end", outcome="success", tokens_in=10, tokens_out=5, cost_usd=0.01, latency_ms=seq * 1000.0)
    return out


def write_trace(path: Path, tasks: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for lines in tasks:
            for line in lines:
                f.write(line + "\n")
    return path


def ingest(db: Path, *paths: Path) -> None:
    from agentdeck.store.db import connect
    from agentdeck.store.tailer import Tailer

    conn = connect(db)
    try:
        Tailer(conn, list(paths)).poll()  # with the post-commit checks, as agentdeck ingest runs it
    finally:
        conn.close()


def rows(conn, table: str, columns: str, order: str) -> list[tuple]:
    return [tuple(r) for r in conn.execute(f"SELECT {columns} FROM {table} ORDER BY {order}")]


EVENT_COLUMNS = "task_id, seq, kind, ts, payload"
TASK_COLUMNS = ("task_id, request_id, agent, version, cohort, stage, request, started, ended, last_ts, events, max_seq,"
                " last_kind, last_tool, tool_calls, tool_errors, retries, policy_denials, escalations, actions,"
                " actions_failed, compensations, violations, outcome, tokens, cost_usd, latency_ms")
