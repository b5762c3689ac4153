"""What each trace event says in one line, in the two voices the console uses.

Replay's timeline *names* a step ("call lookup (c1)", "policy refunds@3 → allow"),
the Tasks list's step column and the task detail say what it *carried*
("lookup {"id":1}", "refunds v3: allow — under limit"). Both are kept in one
table, a row per event kind, so a new kind or a renamed field is changed in
one place. The strings are untrusted trace text: callers pass them through
``console.safe`` before showing them.
"""

from __future__ import annotations

import json
from typing import Any
from collections.abc import Callable

Line = Callable[[dict], str]


def compact_json(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _retry(e: dict) -> str:
    return f" retry {e['retry']}" if e.get("retry") else ""


# kind: (title on Replay's timeline, summary in the Tasks step column and task detail)
_LINES: dict[str, tuple[Line, Line]] = {
    "task_start": (
        lambda e: f"request {e.get('request_id', '')}: {e.get('request', '')}",
        lambda e: str(e.get("request", "")),
    ),
    "plan": (
        lambda e: f"plan: {e.get('summary', '')}",
        lambda e: str(e.get("summary", "")),
    ),
    "reasoning": (
        lambda e: f"reasoning: {e.get('summary', '')}",
        lambda e: str(e.get("summary", "")),
    ),
    "tool_call": (
        lambda e: f"call {e.get('tool', '')} ({e.get('call_id', '')})",
        lambda e: f"{e.get('tool', '')} {compact_json(e.get('input'), 80)}",
    ),
    "tool_result": (
        lambda e: f"result {e.get('tool', '')} {e.get('status', 'ok')}{_retry(e)}",
        lambda e: f"{e.get('tool', '')} {e.get('status', '')}{_retry(e)} {compact_json(e.get('output'), 60)}",
    ),
    "policy_check": (
        lambda e: f"policy {e.get('policy_id', '')}@{e.get('policy_version', '')} → {e.get('verdict', '')}",
        lambda e: f"{e.get('policy_id', '')} v{e.get('policy_version', '')}: {e.get('verdict', '')} — "
                  f"{e.get('reason', '')}",
    ),
    "escalation": (
        lambda e: f"escalation {e.get('risk', '')}: {(e.get('proposed_action') or {}).get('operation', '')} "
                  f"on {(e.get('proposed_action') or {}).get('system', '')}",
        lambda e: f"{e.get('risk', '')} risk: {e.get('reason', '')}",
    ),
    "decision": (
        lambda e: f"decision {e.get('decision', '')} by {e.get('decided_by', '')}",
        lambda e: f"{e.get('decision', '')} by {e.get('decided_by', '')} {e.get('reason', '')}".rstrip(),
    ),
    "action": (
        lambda e: f"action {e.get('operation', '')} on {e.get('system', '')} → {e.get('status', '')}",
        lambda e: f"{e.get('system', '')}.{e.get('operation', '')} {e.get('status', '')}",
    ),
    "compensation": (
        lambda e: f"compensation of {e.get('action_id', '')} → {e.get('status', '')} by {e.get('by', '')}",
        lambda e: f"{e.get('action_id', '')} {e.get('status', '')}",
    ),
    "task_end": (
        lambda e: f"end: {e.get('outcome', '')}",
        lambda e: f"{e.get('outcome', '')} {e.get('summary', '')}".rstrip(),
    ),
}


def step_title(kind: str, e: dict) -> str:
    """The step's name on Replay's timeline; an unknown kind is named by its kind."""
    lines = _LINES.get(kind)
    return lines[0](e) if lines else kind


def step_summary(kind: str, payload: str) -> str:
    """What a stored event carried, in one line; an unknown kind says nothing."""
    try:
        e = json.loads(payload)
    except ValueError:
        return "(unreadable event)"
    if not isinstance(e, dict):
        return ""
    lines = _LINES.get(kind)
    return lines[1](e) if lines else ""
