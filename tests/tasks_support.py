"""Helpers for the Tasks tests: write trace lines, ingest them, read the screen."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone, UTC
from pathlib import Path

from agentdeck.store import queries
from agentdeck.store.db import connect
from agentdeck.store.tailer import Tailer

BASE = datetime(2026, 11, 24, 14, 0, 0, tzinfo=UTC)


def _ts(offset: float) -> str:
    return (BASE + timedelta(seconds=offset)).isoformat().replace("+00:00", "Z")


def task_lines(task_id: str, *, at: float = 0.0, agent: str = "approval-agent", version: str = "v1",
               cohort: str = "baseline", stage: str = "bounded", request: str = "grant a role",
               tool: str = "iam.lookup_user", output: object = None, outcome: str | None = "success") -> list[dict]:
    """A small, valid task: start, tool call and result, and (unless outcome is None) its end."""
    events = [
        {"v": 1, "kind": "task_start", "ts": _ts(at), "task_id": task_id, "seq": 0, "request_id": f"req-{task_id}",
         "agent": agent, "agent_version": {"id": version}, "cohort": cohort, "stage": stage, "request": request},
        {"v": 1, "kind": "tool_call", "ts": _ts(at + 1), "task_id": task_id, "seq": 1, "call_id": "c1",
         "tool": tool, "input": {"user": "ana"}},
        {"v": 1, "kind": "tool_result", "ts": _ts(at + 2), "task_id": task_id, "seq": 2, "call_id": "c1",
         "tool": tool, "output": output if output is not None else {"ok": True}, "status": "ok", "latency_ms": 12.5},
    ]
    if outcome is not None:
        events.append({"v": 1, "kind": "task_end", "ts": _ts(at + 3), "task_id": task_id, "seq": 3,
                       "outcome": outcome, "cost_usd": 0.01, "latency_ms": 3000})
    return events


def write_trace(path: Path, events: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")
    return path


def ingest(db: Path, traces: Path) -> None:
    conn = connect(db)
    try:
        Tailer(conn, [traces]).poll()
    finally:
        conn.close()


def screen_lines(app) -> list[str]:
    """What the terminal shows now, one string a row."""
    return ["".join(segment.text for segment in strip) for strip in app.screen._compositor.render_strips()]


def screen_text(app) -> str:
    return "\n".join(screen_lines(app))


async def settle(app, pilot) -> None:
    """Let queued workers finish and their results reach the widgets (AgentDeck.settled)."""
    for _ in range(3):
        await app.settled()
        await pilot.pause()


async def wait_until(pilot, condition, timeout: float = 20.0) -> None:
    """Poll ``condition`` (a real state of the app) until true, failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)


def ordered_ids(db) -> list[str]:
    """The store's task ids, oldest first, in the order the Tasks list shows them (newest at the bottom)."""
    conn = connect(db)
    try:
        return [r[0] for r in conn.execute(f"SELECT task_id FROM tasks ORDER BY {queries.SEEN}, task_id")]
    finally:
        conn.close()
