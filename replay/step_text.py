"""What each trace event says in one line, in the three voices the console uses.

Replay's timeline *names* a step ("call lookup (c1)", "policy refunds@3 → allow"),
the Tasks list's step column says what it *carried* ("lookup {"id":1}",
"refunds v3: allow — under limit"), and the task detail's event list says it
in full (amounts, latency, tokens, whether it can be undone). All three are
kept in one table, a row per event kind, so a new kind or a renamed field is
changed in one place. The strings are untrusted trace text: callers pass them through
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


def _short(value: object, limit: int = 60) -> str:
    return value if isinstance(value, str) and len(value) <= limit else (
        value[: limit - 1] + "…" if isinstance(value, str) else compact_json(value, limit))


def _start_detail(e: dict) -> str:
    version = e.get("agent_version") or {}
    return (f"{e.get('agent')} {version.get('id') if isinstance(version, dict) else ''} "
            f"[{e.get('cohort')}/{e.get('stage')}] {e.get('request', '')}")


def _plan_detail(e: dict) -> str:
    steps = e.get("steps") or []
    return f"{e.get('summary', '')}" + (f"  ({len(steps)} steps)" if steps else "")


def _reasoning_detail(e: dict) -> str:
    status = e.get("status")
    return (f"{e.get('summary', '')}  ({e.get('tokens_in', 0)}→{e.get('tokens_out', 0)} tokens"
            f"{', ' + str(status) if status not in (None, 'ok') else ''})")


def _escalation_detail(e: dict) -> str:
    action = e.get("proposed_action") or {}
    what = f"{action.get('system')}.{action.get('operation')}" if isinstance(action, dict) else "?"
    return f"{e.get('risk')} risk: {what} — {e.get('reason', '')}"


def _action_detail(e: dict) -> str:
    amount = f" {e.get('amount')}" if e.get("amount") is not None else ""
    undo = " (undoable)" if e.get("compensation") else ""
    return f"{e.get('system')}.{e.get('operation')}{amount} → {e.get('status', 'ok')}{undo}"


# kind: (title on Replay's timeline, summary in the Tasks step column, line in the task detail)
_LINES: dict[str, tuple[Line, Line, Line]] = {
    "task_start": (
        lambda e: f"request {e.get('request_id', '')}: {e.get('request', '')}",
        lambda e: str(e.get("request", "")),
        _start_detail,
    ),
    "plan": (
        lambda e: f"plan: {e.get('summary', '')}",
        lambda e: str(e.get("summary", "")),
        _plan_detail,
    ),
    "reasoning": (
        lambda e: f"reasoning: {e.get('summary', '')}",
        lambda e: str(e.get("summary", "")),
        _reasoning_detail,
    ),
    "tool_call": (
        lambda e: f"call {e.get('tool', '')} ({e.get('call_id', '')})",
        lambda e: f"{e.get('tool', '')} {compact_json(e.get('input'), 80)}",
        lambda e: f"{e.get('tool')}({_short(e.get('input'))})",
    ),
    "tool_result": (
        lambda e: f"result {e.get('tool', '')} {e.get('status', 'ok')}{_retry(e)}",
        lambda e: f"{e.get('tool', '')} {e.get('status', '')}{_retry(e)} {compact_json(e.get('output'), 60)}",
        lambda e: f"{e.get('tool')} → {e.get('status', 'ok')} {e.get('latency_ms', 0):.0f}ms{_retry(e)}: "
                  f"{_short(e.get('output'))}",
    ),
    "policy_check": (
        lambda e: f"policy {e.get('policy_id', '')}@{e.get('policy_version', '')} → {e.get('verdict', '')}",
        lambda e: f"{e.get('policy_id', '')} v{e.get('policy_version', '')}: {e.get('verdict', '')} — "
                  f"{e.get('reason', '')}",
        lambda e: f"{e.get('policy_id')} v{e.get('policy_version')}: {e.get('verdict')}"
                  + (f" — {e.get('reason')}" if e.get("reason") else ""),
    ),
    "escalation": (
        lambda e: f"escalation {e.get('risk', '')}: {(e.get('proposed_action') or {}).get('operation', '')} "
                  f"on {(e.get('proposed_action') or {}).get('system', '')}",
        lambda e: f"{e.get('risk', '')} risk: {e.get('reason', '')}",
        _escalation_detail,
    ),
    "decision": (
        lambda e: f"decision {e.get('decision', '')} by {e.get('decided_by', '')}",
        lambda e: f"{e.get('decision', '')} by {e.get('decided_by', '')} {e.get('reason', '')}".rstrip(),
        lambda e: f"{e.get('decision')} by {e.get('decided_by')}" + (f" — {e.get('reason')}" if e.get("reason") else ""),
    ),
    "action": (
        lambda e: f"action {e.get('operation', '')} on {e.get('system', '')} → {e.get('status', '')}",
        lambda e: f"{e.get('system', '')}.{e.get('operation', '')} {e.get('status', '')}",
        _action_detail,
    ),
    "compensation": (
        lambda e: f"compensation of {e.get('action_id', '')} → {e.get('status', '')} by {e.get('by', '')}",
        lambda e: f"{e.get('action_id', '')} {e.get('status', '')}",
        lambda e: f"undo {e.get('action_id')} → {e.get('status')} by {e.get('by', 'agent')}",
    ),
    "task_end": (
        lambda e: f"end: {e.get('outcome', '')}",
        lambda e: f"{e.get('outcome', '')} {e.get('summary', '')}".rstrip(),
        lambda e: f"{e.get('outcome')} in {e.get('latency_ms', 0):.0f}ms, ${e.get('cost_usd', 0):.4f}"
                  + (f" — {e.get('summary')}" if e.get("summary") else ""),
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


def step_detail(kind: str, e: dict) -> str:
    """The task detail's line for an event: what it carried in full; an unknown kind says nothing."""
    lines = _LINES.get(kind)
    return lines[2](e) if lines else ""
