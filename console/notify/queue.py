"""Alerts and their sends in the store: fired once, claimed before sending, acknowledged with an audit record.

All writes go through ``store.txn.atomic``. See ``store/migrations/notify.py``
for the tables.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from agentdeck.console.notify.rules import Fire
from agentdeck.console.notify.settings import NotifySettings, RouteSettings
from agentdeck.replay.hosts import check_url
from agentdeck.store import audit
from agentdeck.store.origin import Origin
from agentdeck.store.txn import atomic

# Longer than one send can take (the timeout), so a live sender's claim never
# lapses mid-call; a dead sender's lapses soon and the row is sent again.
CLAIM_SECONDS = 60.0
FOLLOW_UPS = ("acknowledge", "resolve")  # only PagerDuty routes are told these


def allowed_hosts(settings: NotifySettings, extra: frozenset[str] | set[str] = frozenset()) -> frozenset[str]:
    return frozenset(settings.allow_hosts) | frozenset(extra)


def refusal(route: RouteSettings, allow: frozenset[str]) -> str | None:
    """Why ``route`` may not be called (None: it may). Local routes are never called over HTTP."""
    if route.local or route.url is None:
        return None
    return check_url(route.url, allow)


def enqueue(conn: sqlite3.Connection, fires: list[Fire], settings: NotifySettings, allow: frozenset[str],
            now: float) -> list[int]:
    """Record each fire once (its alert) with a send for every remote route that takes its rule.

    Returns the ids of the alerts this call created (an alert that exists is left alone).
    A route whose host is not allowed gets a ``blocked`` send: visible, never called.
    """
    created = []
    with atomic(conn):
        for f in fires:
            cur = conn.execute(
                """INSERT OR IGNORE INTO notify_alerts (rule, subject, incident, occurrence, severity, summary, details,
                   created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (f.rule, f.subject, f.incident, f.occurrence, f.severity, f.summary,
                 json.dumps(f.details, sort_keys=True, default=str), now),
            )
            if cur.rowcount != 1:
                continue
            alert_id = int(cur.lastrowid or 0)
            created.append(alert_id)
            for route in settings.routes:
                if route.local or f.rule not in route.rules:
                    continue
                _add_send(conn, alert_id, route, "trigger", allow, now)
    return created


def _add_send(conn: sqlite3.Connection, alert_id: int, route: RouteSettings, action: str, allow: frozenset[str],
              now: float) -> None:
    why = refusal(route, allow)
    conn.execute(
        """INSERT OR IGNORE INTO notify_sends (alert_id, route, route_type, route_label, action, state, next_at,
           last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (alert_id, route.id, route.type, route.label, action, "blocked" if why else "pending", now,
         f"not called: {why}" if why else None),
    )


def follow_up(conn: sqlite3.Connection, incident: str, action: str, settings: NotifySettings,
              allow: frozenset[str], now: float) -> int:
    """Queue ``acknowledge`` or ``resolve`` for each PagerDuty route that was sent a trigger for ``incident``.

    Call inside a transaction. Returns how many sends were queued.
    """
    latest = conn.execute("SELECT max(id) FROM notify_alerts WHERE incident = ?", (incident,)).fetchone()[0]
    if latest is None:
        return 0
    triggered = {r[0] for r in conn.execute(
        """SELECT DISTINCT s.route FROM notify_sends s JOIN notify_alerts a ON a.id = s.alert_id
           WHERE a.incident = ? AND s.action = 'trigger' AND s.route_type = 'pagerduty' AND s.state != 'blocked'""",
        (incident,))}
    n = 0
    for route in settings.routes:
        if route.type == "pagerduty" and route.id in triggered:
            before = conn.total_changes
            _add_send(conn, latest, route, action, allow, now)
            n += conn.total_changes - before
    return n


def resolve(conn: sqlite3.Connection, incidents: list[str], settings: NotifySettings, allow: frozenset[str],
            now: float) -> int:
    """Mark incidents over; PagerDuty routes that were told of them are sent ``resolve``."""
    n = 0
    with atomic(conn):
        for incident in incidents:
            cur = conn.execute("UPDATE notify_alerts SET resolved_at = ? WHERE incident = ? AND resolved_at IS NULL",
                               (now, incident))
            if cur.rowcount:
                n += 1
                follow_up(conn, incident, "resolve", settings, allow, now)
    return n


# -- sending ------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    send_id: int
    route: str
    action: str
    attempts: int  # including this one
    alert: sqlite3.Row


def claim_due(conn: sqlite3.Connection, now: float, routes: dict[str, RouteSettings], limit: int = 50) -> list[Claimed]:
    """Take the sends that are due and not being sent elsewhere (pending, or a lapsed claim).

    Only routes this process knows (``routes``) are claimed: another console's
    route, configured there and not here, stays for that console.
    """
    out: list[Claimed] = []
    with atomic(conn):
        rows = conn.execute(
            """SELECT id, route, action FROM notify_sends
               WHERE (state = 'pending' AND next_at <= ?) OR (state = 'sending' AND claimed_until < ?)
               ORDER BY next_at, id LIMIT ?""",
            (now, now, limit * 4),
        ).fetchall()
        for r in rows:
            if r["route"] not in routes or len(out) >= limit:
                continue
            conn.execute(
                """UPDATE notify_sends SET state = 'sending', claimed_until = ?, attempts = attempts + 1
                   WHERE id = ?""",
                (now + CLAIM_SECONDS, r["id"]),
            )
            row = conn.execute(
                """SELECT s.attempts, a.* FROM notify_sends s JOIN notify_alerts a ON a.id = s.alert_id
                   WHERE s.id = ?""", (r["id"],)).fetchone()
            out.append(Claimed(r["id"], r["route"], r["action"], row["attempts"], row))
    return out


def record(conn: sqlite3.Connection, send_id: int, *, state: str, now: float, status: int | None = None,
           error: str | None = None, next_at: float | None = None) -> None:
    """The result of one attempt: sent, failed, blocked, or pending again (a retry at ``next_at``)."""
    with atomic(conn):
        conn.execute(
            """UPDATE notify_sends SET state = ?, claimed_until = NULL, sent_at = ?, last_status = ?, last_error = ?,
               next_at = coalesce(?, next_at) WHERE id = ?""",
            (state, now if state == "sent" else None, status, error, next_at, send_id),
        )


def release(conn: sqlite3.Connection, send_id: int) -> None:
    """Give back a claim without trying (its route is failing this tick): pending again, the attempt not counted."""
    with atomic(conn):
        conn.execute("""UPDATE notify_sends SET state = 'pending', claimed_until = NULL, attempts = max(attempts - 1, 0)
                        WHERE id = ? AND state = 'sending'""", (send_id,))


def retry(conn: sqlite3.Connection, send_id: int, *, by: str, now: float) -> bool:
    """Put a failed or blocked send back to pending (audited). False if there is nothing to retry."""
    with atomic(conn):
        cur = conn.execute(
            """UPDATE notify_sends SET state = 'pending', attempts = 0, next_at = ?, claimed_until = NULL
               WHERE id = ? AND state IN ('failed', 'blocked')""", (now, send_id))
        if cur.rowcount != 1:
            return False
        audit.append(conn, ts=now, actor=by, kind="notification-retry", subject=f"notification-send/{send_id}",
                     detail={"send_id": send_id})
    audit.checkpoint(conn)  # anchor the committed record outside the store (docs/evidence.md)
    return True


# -- acknowledging --------------------------------------------------------------------


@dataclass(frozen=True)
class AckOutcome:
    notification_id: int
    applied: bool  # False: already acknowledged (by ``acked_by`` at ``acked_at``) — nothing changed
    incident: str
    acked_by: str | None
    acked_at: float | None
    follow_ups: int = 0  # PagerDuty acknowledge events queued


class UnknownNotification(LookupError):
    pass


def ack(conn: sqlite3.Connection, notification_id: int, by: str, now: float, *, origin: Origin | None = None,
        settings: NotifySettings | None = None, allow: frozenset[str] = frozenset()) -> AckOutcome:
    """Acknowledge an alert and every other alert of its incident, with an audit record, in one transaction.

    PagerDuty routes that were sent the incident are sent ``acknowledge``
    (when ``settings`` are given). ``origin`` defaults to this process's OS
    user and SSH client; both are kept on the alert and in the audit record.
    """
    origin = origin if origin is not None else Origin.current()
    with atomic(conn):
        row = conn.execute("SELECT id, rule, subject, incident, acked_by, acked_at FROM notify_alerts WHERE id = ?",
                           (notification_id,)).fetchone()
        if row is None:
            raise UnknownNotification(f"no notification {notification_id} in this store")
        if row["acked_by"] is not None:
            return AckOutcome(notification_id, False, row["incident"], row["acked_by"], row["acked_at"])
        conn.execute(
            """UPDATE notify_alerts SET acked_by = ?, acked_at = ?, acked_os_user = ?, acked_ssh_client = ?
               WHERE incident = ? AND acked_by IS NULL""",
            (by, now, origin.os_user, origin.ssh_client, row["incident"]),
        )
        audit.append(conn, ts=now, actor=by, kind="notification-ack", subject=row["incident"],
                     detail={"notification_id": notification_id, "rule": row["rule"], "subject": row["subject"],
                             **origin.detail()})
        n = follow_up(conn, row["incident"], "acknowledge", settings, allow, now) if settings is not None else 0
    audit.checkpoint(conn)  # anchor the committed record outside the store (docs/evidence.md)
    return AckOutcome(notification_id, True, row["incident"], by, now, n)


# -- what the console shows --------------------------------------------------------------


@dataclass(frozen=True)
class ViewRow:
    """One line of the notifications view: an alert on one route (route None: no remote route took it)."""

    notification_id: int
    send_id: int | None
    rule: str
    subject: str
    summary: str
    severity: str
    created_at: float
    route: str | None  # the route's label (never its URL path or key)
    action: str | None
    state: str  # pending, sending, sent, failed, blocked, or "local" (no remote route)
    attempts: int
    last_error: str | None
    acked_by: str | None
    acked_at: float | None
    resolved_at: float | None


def view(conn: sqlite3.Connection, limit: int = 200) -> list[ViewRow]:
    """The newest alerts first, one row per send (what was sent where and how it went)."""
    rows = conn.execute(
        """SELECT a.id, s.id AS send_id, a.rule, a.subject, a.summary, a.severity, a.created_at, s.route_label,
                  s.action, coalesce(s.state, 'local') AS state, coalesce(s.attempts, 0) AS attempts, s.last_error,
                  a.acked_by, a.acked_at, a.resolved_at
           FROM notify_alerts a LEFT JOIN notify_sends s ON s.alert_id = a.id
           ORDER BY a.id DESC, s.id LIMIT ?""",
        (limit,),
    ).fetchall()
    return [ViewRow(*tuple(r)) for r in rows]


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Sends by state, and unacknowledged open alerts: for a header badge."""
    out = {r[0]: r[1] for r in conn.execute("SELECT state, count(*) FROM notify_sends GROUP BY state")}
    out["unacked"] = conn.execute(
        "SELECT count(*) FROM notify_alerts WHERE acked_by IS NULL AND resolved_at IS NULL").fetchone()[0]
    return out
