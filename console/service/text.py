"""One-line summaries of trace events (plain strings: the screen passes them through console.safe)."""

from __future__ import annotations

import json
from typing import Any


def compact_json(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def step_summary(kind: str, payload: str) -> str:
    """One line saying what a trace event did (untrusted: the caller passes it through plain())."""
    try:
        e = json.loads(payload)
    except ValueError:
        return "(unreadable event)"
    if not isinstance(e, dict):
        return ""
    if kind == "task_start":
        return str(e.get("request", ""))
    if kind in ("plan", "reasoning"):
        return str(e.get("summary", ""))
    if kind == "tool_call":
        return f"{e.get('tool', '')} {compact_json(e.get('input'), 80)}"
    if kind == "tool_result":
        retry = f" retry {e.get('retry')}" if e.get("retry") else ""
        return f"{e.get('tool', '')} {e.get('status', '')}{retry} {compact_json(e.get('output'), 60)}"
    if kind == "policy_check":
        return f"{e.get('policy_id', '')} v{e.get('policy_version', '')}: {e.get('verdict', '')} — {e.get('reason', '')}"
    if kind == "escalation":
        return f"{e.get('risk', '')} risk: {e.get('reason', '')}"
    if kind == "decision":
        return f"{e.get('decision', '')} by {e.get('decided_by', '')} {e.get('reason', '')}".rstrip()
    if kind == "action":
        return f"{e.get('system', '')}.{e.get('operation', '')} {e.get('status', '')}"
    if kind == "compensation":
        return f"{e.get('action_id', '')} {e.get('status', '')}"
    if kind == "task_end":
        return f"{e.get('outcome', '')} {e.get('summary', '')}".rstrip()
    return ""
