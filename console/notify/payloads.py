"""The body each route type is sent (``docs/notify.md`` shows one of each).

* generic webhook: our own JSON (``version`` 1), every field of the alert;
* Slack incoming webhook: ``text`` (with ``&``, ``<`` and ``>`` escaped as
  Slack asks, so trace text cannot make links or ``<!channel>`` pings, and
  ``mrkdwn`` off) plus ``plain_text`` blocks;
* PagerDuty Events API v2: ``routing_key``, ``event_action`` (trigger,
  acknowledge, resolve), ``dedup_key`` (the incident) and, for a trigger,
  ``payload`` with ``summary`` (at most 1024 characters), ``source``,
  ``severity`` (critical, error, warning, info), ``timestamp``,
  ``component``, ``group``, ``class`` and ``custom_details``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from agentdeck.console.notify.settings import RouteSettings
from agentdeck.console.safe import clean

PD_SUMMARY_MAX = 1024
PD_DEDUP_MAX = 255
SLACK_TEXT_MAX = 3000


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dedup_key(incident: str) -> str:
    """The incident as a dedup key PagerDuty accepts (at most 255 characters)."""
    if len(incident) <= PD_DEDUP_MAX:
        return incident
    digest = hashlib.sha256(incident.encode()).hexdigest()[:32]
    return f"{incident[:PD_DEDUP_MAX - 33]}#{digest}"


def idempotency_key(incident: str, occurrence: str, action: str, route_id: str) -> str:
    """One key per notification and route: a resend after a crash carries the same one."""
    text = "\x00".join((incident, occurrence, action, route_id))
    return f"agentdeck-ntf-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def body(route: RouteSettings, alert: dict[str, Any], action: str, *, source: str) -> dict[str, Any]:
    """The JSON body for ``alert`` (a notify_alerts row as a dict, details decoded) on ``route``."""
    if route.type == "pagerduty":
        return pagerduty(route, alert, action, source=source)
    if route.type == "slack":
        return slack(alert, action)
    return webhook(alert, action, source=source)


def webhook(alert: dict[str, Any], action: str, *, source: str) -> dict[str, Any]:
    out = {
        "version": 1,
        "source": source,
        "id": alert["id"],
        "event": action,
        "rule": alert["rule"],
        "subject": alert["subject"],
        "severity": alert["severity"],
        "summary": alert["summary"],
        "dedup_key": alert["incident"],
        "occurrence": alert["occurrence"],
        "created_at": iso(alert["created_at"]),
        "details": alert["details"],
    }
    if alert.get("acked_by"):
        out["acknowledged"] = {"by": alert["acked_by"], "at": iso(alert["acked_at"])}
    return out


SLACK_MARK = {"critical": "CRITICAL", "error": "ERROR", "warning": "WARNING", "info": "INFO"}
SLACK_VERB = {"trigger": "", "acknowledge": "acknowledged: ", "resolve": "resolved: "}


def slack(alert: dict[str, Any], action: str) -> dict[str, Any]:
    line = f"[{SLACK_MARK.get(alert['severity'], alert['severity'])}] {SLACK_VERB.get(action, '')}{alert['summary']}"
    context = f"agentdeck · {alert['rule']} · {clean(alert['subject'], 200, single_line=True)} · {iso(alert['created_at'])}"
    return {
        "text": slack_escape(line)[:SLACK_TEXT_MAX],
        "mrkdwn": False,
        "blocks": [
            {"type": "section", "text": {"type": "plain_text", "text": line[:SLACK_TEXT_MAX], "emoji": False}},
            {"type": "context", "elements": [{"type": "plain_text", "text": context[:SLACK_TEXT_MAX], "emoji": False}]},
        ],
    }


def pagerduty(route: RouteSettings, alert: dict[str, Any], action: str, *, source: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "routing_key": route.routing_key,
        "event_action": action,
        "dedup_key": dedup_key(alert["incident"]),
    }
    if action == "trigger":
        out["payload"] = {
            "summary": alert["summary"][:PD_SUMMARY_MAX],
            "source": source,
            "severity": alert["severity"],
            "timestamp": iso(alert["created_at"]),
            "component": "agentdeck",
            "group": alert["rule"],
            "class": alert["occurrence"].split("#", 1)[0].split("@", 1)[0],
            "custom_details": {"subject": alert["subject"], **alert["details"]},
        }
        out["client"] = "agentdeck"
    return out


def decode(row: Any) -> dict[str, Any]:
    """A notify_alerts row → the dict ``body`` takes."""
    alert = dict(row)
    alert["details"] = json.loads(alert["details"]) if isinstance(alert["details"], str) else alert["details"]
    return alert
