"""Small formatting helpers shared by the escalation table and detail pane."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.text import Text

from agentdeck.console.safe import plain

from agentdeck.console.service.text import compact_json, step_summary  # noqa: F401 (re-exported)

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


def clock(ts: float | None, now: float | None = None) -> str:
    """Time of day, with the date when it is not ``now``'s day (see ``chrome.format_clock``)."""
    from agentdeck.console.widgets.chrome import format_clock

    return format_clock(ts, now)


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
    """The amount at stake, with its currency when the proposal names one ("2,390.45 EUR").

    The trace format has no currency field: an agent may put one in the
    action's params (``currency``, ``currency_code``). None there: the amount
    is shown as is, never with a guessed currency.
    """
    amount = action.get("amount")
    if isinstance(amount, (int, float)) and not isinstance(amount, bool):
        currency = currency_of(action)
        return f"{amount:,.2f} {currency}" if currency else f"{amount:,.2f}"
    return ""


def currency_of(action: dict[str, Any]) -> str:
    """An ISO 4217 code (three letters) from the proposal's params; anything else is not shown."""
    params = action.get("params")
    if not isinstance(params, dict):
        return ""
    for key in ("currency", "currency_code"):
        value = params.get(key)
        if isinstance(value, str) and len(value.strip()) == 3 and value.strip().isascii() and value.strip().isalpha():
            return value.strip().upper()
    return ""


def label(text: Text, name: str) -> None:
    """A field's name in an escalation's detail pane, padded so the values line up."""
    text.append(f"{name:<14}", "bold")


def append_decision(t: Text, r: dict) -> None:
    """Who decided a decided item, when, and why (the same for an agent's escalation and a release item)."""
    t.append("\n")
    label(t, "Decision")
    t.append_text(plain(r["status"], 20, style=STATUS_STYLE.get(r["status"], ""), single_line=True))
    t.append(" by ")
    t.append_text(plain(r["decided_by"] or "?", 60, style="bold", single_line=True))
    t.append(f" at {stamp(r['decided_at'])}\n")
    if r["decision_reason"]:
        label(t, "  why")
        t.append_text(plain(r["decision_reason"], 2000))
        t.append("\n")
