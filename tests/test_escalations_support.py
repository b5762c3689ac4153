"""Test data for the escalation tests: pending escalations around FIXED_NOW, ingested like any trace.

The bundled sample data's escalations are all decided by FIXED_NOW, so the
queue tests add their own: a small JSONL file written here and ingested
through the real tailer into a copy of the sample store.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone, UTC
from pathlib import Path

import pytest

from conftest import FIXED_NOW

HOSTILE_REASON = "[bold]needs a human[/bold] \x1b[31mred\x1b[0m"
HOSTILE_JUSTIFICATION = "[@click=app.quit]click me[/] \x1b]8;;http://evil.example/\x07link\x1b]8;;\x07 done"
HOSTILE_PARAM = "[@click=app.quit]x\x1b[2J"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _task(task_id: str, *, raised: float, deadline: float, risk: str, system: str, operation: str, params: dict,
          amount: float | None = None, reason: str = "above the autonomous limit", justification: str = "",
          callback_url: str | None = None, agent: str = "approval-agent") -> list[dict]:
    start = raised - 20
    events = [
        {"kind": "task_start", "request_id": f"req-{task_id}", "agent": agent,
         "agent_version": {"id": "v1", "prompt": "approvals-p7"}, "request": f"please {operation} ({task_id})"},
        {"kind": "plan", "summary": f"check policy, then {operation}", "steps": ["look up", "check", "act"]},
        {"kind": "tool_call", "call_id": "c1", "tool": "directory.lookup", "input": {"user": params.get("user", "?")}},
        {"kind": "tool_result", "call_id": "c1", "tool": "directory.lookup", "output": {"found": True},
         "latency_ms": 42.0},
        {"kind": "policy_check", "policy_id": "pol-access-3", "policy_version": "4", "verdict": "escalate",
         "reason": "needs a human", "subject": operation},
        {"kind": "escalation", "escalation_id": f"esc-{task_id}",
         "proposed_action": {"system": system, "operation": operation, "params": params, "amount": amount},
         "risk": risk, "reason": reason, "deadline": iso(deadline), "policy_id": "pol-access-3",
         "justification": justification or f"I would {operation.replace('_', ' ')}, but policy requires a human"},
    ]
    if callback_url:
        events[-1]["callback_url"] = callback_url
    out = []
    for seq, body in enumerate(events):
        ts = start + seq * 4 if body["kind"] != "escalation" else raised
        out.append({"v": 1, "kind": body["kind"], "ts": iso(ts), "task_id": task_id, "seq": seq,
                    **{k: v for k, v in body.items() if k != "kind"}})
    return out


def pending_events(callback_url: str | None = None) -> list[dict]:
    """Four pending escalations: one past its deadline, three due after FIXED_NOW."""
    n = FIXED_NOW
    return [
        *_task("t-expired", raised=n - 1000, deadline=n - 120, risk="medium", system="crm", operation="update_record",
               params={"user": "erin", "field": "email"}),
        *_task("t-high", raised=n - 300, deadline=n + 600, risk="high", system="iam", operation="grant_role",
               params={"user": "bob", "role": "db-admin"}, callback_url=callback_url),
        *_task("t-hostile", raised=n - 200, deadline=n + 1200, risk="medium", system="iam", operation="grant_role",
               params={"user": "carol", "note": HOSTILE_PARAM}, reason=HOSTILE_REASON,
               justification=HOSTILE_JUSTIFICATION, callback_url="http://hooks.example.com/decide"),
        *_task("t-low", raised=n - 60, deadline=n + 1800, risk="low", system="payments", operation="refund",
               params={"user": "dinesh", "order": "o-17"}, amount=42.0),
    ]


def ingest_events(db: Path, events: list[dict], folder: Path) -> None:
    from agentdeck.store.db import connect
    from agentdeck.store.tailer import Tailer

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pending.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    conn = connect(db)
    try:
        stats = Tailer(conn, [path]).poll()
        assert stats.rejects == 0, "test data must be valid trace lines"
    finally:
        conn.close()


@pytest.fixture
def esc_db(sample_db, tmp_path) -> Path:
    """The sample store plus four pending escalations (see pending_events)."""
    ingest_events(sample_db, pending_events(), tmp_path / "esc-traces")
    return sample_db


async def settle(pilot, rounds: int = 4) -> None:
    """Let thread workers finish and their results reach the screen (reload → detail load)."""
    for _ in range(rounds):
        await pilot.app.settled()  # (a superseded read counts as done)
        await pilot.pause()


async def approving(pilot, timeout: float = 20.0) -> None:
    """Press ``a`` and wait until the reason dialog is up: the approval's rules are read on a worker before it
    opens (EscalationsScreen.action_decide), and a key typed before then goes to the list, as designed."""
    from agentdeck.console.widgets.reason_dialog import ReasonDialog

    def ready() -> bool:  # up, and its reason box has the focus the typing goes to
        dialog = pilot.app.screen
        return isinstance(dialog, ReasonDialog) and dialog.is_mounted and bool(dialog.query("#reason")) and \
            pilot.app.focused is dialog.query_one("#reason")

    await pilot.press("a")
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "the reason dialog did not open"
        await pilot.pause(0.02)


def row_of(db: Path, escalation_id: str) -> dict:
    from agentdeck.store.db import connect

    conn = connect(db)
    try:
        return dict(conn.execute("SELECT * FROM escalations WHERE escalation_id = ?", (escalation_id,)).fetchone())
    finally:
        conn.close()


def audit_records(db: Path, subject: str) -> list[dict]:
    from agentdeck.store.db import connect

    conn = connect(db)
    try:
        rows = conn.execute("SELECT * FROM audit WHERE subject = ? ORDER BY id", (subject,)).fetchall()
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]
    finally:
        conn.close()
