"""Small formatting helpers shared by the escalation table and detail pane."""

from __future__ import annotations

import json
import time
from typing import Any

RISK_STYLE = {"low": "green", "medium": "yellow", "high": "bold red", "critical": "bold white on red"}
STATUS_STYLE = {"approved": "green", "denied": "red", "expired": "magenta", "pending": "yellow"}
DELIVERY_STYLE = {"delivered": "green", "pending": "yellow", "failed": "bold red", "blocked": "magenta"}


def duration(seconds: float) -> str:
    """A compact duration: 45s, 4m12s, 2h05m, 3d04h."""
    s = int(abs(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def time_left(deadline: float, now: float) -> tuple[str, bool]:
    """('in 4m12s', False) or ('expired 3m ago', True)."""
    left = deadline - now
    if left < 0:
        return f"expired {duration(left)} ago", True
    return f"in {duration(left)}", False


def clock(ts: float | None) -> str:
    if ts is None:
        return ""
    return time.strftime("%H:%M:%S", time.gmtime(ts))


def stamp(ts: float | None) -> str:
    if ts is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def proposed(action_json: str | None) -> dict[str, Any]:
    """The stored proposed action (JSON written by ingest), tolerant of anything odd."""
    try:
        value = json.loads(action_json or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def action_label(action: dict[str, Any]) -> str:
    return f"{action.get('system', '?')}.{action.get('operation', '?')}"


def amount_label(action: dict[str, Any]) -> str:
    amount = action.get("amount")
    if isinstance(amount, (int, float)):
        return f"{amount:,.2f}"
    return ""


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
