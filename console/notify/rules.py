"""The rules: what in the store is worth telling someone about right now.

Each rule reads the store and returns ``Fire`` records (and incidents that
are over). A rule fires on every tick while its condition holds; the store
keeps one alert per (incident, occurrence), so repeating is harmless and
that is what makes a notification go out once across consoles and
restarts. Text from traces (agent names, reasons) is cleaned of control
characters here and escaped per route later (``payloads``).

* ``escalation``: a pending escalation at or above the configured risk, not past its deadline.
* ``deadline``: a pending escalation within ``deadline_minutes`` of its
  deadline (and not past it: then the expiry policy has acted or will).
* ``canary``: a (baseline, canary) pair whose sequential verdict changes to
  hold or roll back. The first verdict seen for a pair is only remembered
  (a new canary holds until it has data) unless it is roll back.
* ``ingest``: rejected lines growing (at most one alert per window of
  ``ingest_stall_minutes``), or ingest stalled. With the ``ingesters``
  heartbeat table (when the store has it): no ingester beating within
  ``ingest_stall_minutes`` and the newest one failed, or stopped beating
  while it said it was running. Without it, or when the newest one stopped
  normally: trace files hold bytes past what was committed while nothing has
  been committed for that long.
* ``failure``: a decision whose delivery failed, or a compensation that failed.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from agentdeck.console.notify.settings import RuleSettings
from agentdeck.console.safe import clean
from agentdeck.store.txn import atomic

RISK_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
SEVERITY_FOR_RISK = {"low": "info", "medium": "warning", "high": "error", "critical": "critical"}
CANARY_EVERY = 60.0  # seconds between canary analyses (each is a few hundred ms on a large store)


@dataclass(frozen=True)
class Fire:
    rule: str
    subject: str
    incident: str  # the dedup key shared by every message about this incident
    occurrence: str
    severity: str  # critical | error | warning | info (PagerDuty's levels)
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Evaluation:
    fires: list[Fire] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)  # incidents whose condition is over
    problems: list[str] = field(default_factory=list)  # rules that could not be evaluated, and why


def _t(value: Any, limit: int = 200) -> str:
    return clean(value, limit, single_line=True)


def escalation_incident(escalation_id: str) -> str:
    return f"agentdeck/escalation/{escalation_id}"


def evaluate(conn: sqlite3.Connection, rules: RuleSettings, now: float, *, enabled: set[str],
             canary: list[Any] | None = None) -> Evaluation:
    """Run every enabled rule (inside the tick's transaction). ``canary``: reports from ``canary_reports``.

    A rule that fails is reported in ``problems``; the others still run.
    """
    out = Evaluation()
    steps: list[tuple[str, Any]] = [
        ("escalation", lambda: _escalations(conn, rules, now, out, enabled)),
        ("failure", lambda: _failures(conn, rules, now, out)),
        ("ingest", lambda: _ingest(conn, rules, now, out)),
        ("canary", lambda: _canary(conn, rules, now, out, canary)),
    ]
    for name, step in steps:
        if name not in enabled and not (name == "escalation" and "deadline" in enabled):
            continue
        try:
            with atomic(conn):  # a savepoint: a rule that fails half way leaves nothing behind
                step()
        except sqlite3.Error as exc:
            out.problems.append(f"notify rule {name}: {exc}")
    return out


_PENDING = """SELECT escalation_id, task_id, agent, risk, reason, deadline, ts, proposed_action
    FROM escalations e WHERE status = 'pending' AND deadline > :now AND {where}
    AND NOT EXISTS (SELECT 1 FROM notify_alerts a
                    WHERE a.incident = 'agentdeck/escalation/' || e.escalation_id AND a.occurrence = :occurrence)
    ORDER BY deadline LIMIT 500"""


def _escalations(conn, rules: RuleSettings, now: float, out: Evaluation, enabled: set[str]) -> None:
    # Only escalations not yet notified are read (the alerts' unique index answers
    # NOT EXISTS), so a tick costs the new ones, not every pending one.
    if "escalation" in enabled and rules.escalation != "off":
        for r in conn.execute(_PENDING.format(where="risk_rank >= :rank"),
                              {"now": now, "rank": RISK_RANK[rules.escalation], "occurrence": "new"}):
            details, who, what, system = _escalation_details(r)
            out.fires.append(Fire("escalation", r["escalation_id"], escalation_incident(r["escalation_id"]), "new",
                                  SEVERITY_FOR_RISK.get(r["risk"], "warning"),
                                  f"{r['risk']} risk escalation from {who}: {what} on {system} "
                                  f"needs a decision ({_t(r['reason'], 120)})", details))
    if "deadline" in enabled and rules.deadline_minutes > 0:
        minutes = rules.deadline_minutes
        for r in conn.execute(_PENDING.format(where="deadline <= :until"),
                              {"now": now, "until": now + minutes * 60, "occurrence": f"deadline-{minutes:g}m"}):
            details, who, what, system = _escalation_details(r)
            left = r["deadline"] - now
            out.fires.append(Fire("deadline", r["escalation_id"], escalation_incident(r["escalation_id"]),
                                  f"deadline-{minutes:g}m", SEVERITY_FOR_RISK.get(r["risk"], "warning"),
                                  f"{r['risk']} risk escalation from {who} expires in {max(left / 60, 0):.0f} min "
                                  f"with no decision: {what} on {system}", details))
    # Decided (or expired) since: those incidents are over.
    for (subject,) in conn.execute(
        """SELECT DISTINCT a.subject FROM notify_alerts a JOIN escalations e ON e.escalation_id = a.subject
           WHERE a.resolved_at IS NULL AND a.rule IN ('escalation', 'deadline') AND e.status != 'pending'"""
    ):
        out.resolved.append(escalation_incident(subject))


def _escalation_details(r: sqlite3.Row) -> tuple[dict[str, Any], str, str, str]:
    action = _action(r["proposed_action"])
    details = {"escalation_id": r["escalation_id"], "task_id": r["task_id"], "agent": r["agent"],
               "risk": r["risk"], "reason": _t(r["reason"], 500), "deadline": r["deadline"],
               "raised_at": r["ts"], "proposed_action": action}
    return (details, _t(r["agent"] or "an agent", 60), _t(action.get("operation") or "an action", 60),
            _t(action.get("system") or "?", 60))


def _action(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: _t(value.get(k), 120) for k in ("system", "operation") if value.get(k) is not None} | (
        {"amount": value["amount"]} if isinstance(value.get("amount"), (int, float)) else {})


def _failures(conn, rules: RuleSettings, now: float, out: Evaluation) -> None:
    if not rules.failures:
        return
    for r in conn.execute(
        """SELECT escalation_id, task_id, agent, status, delivery_error, delivery_attempts FROM escalations
           WHERE delivery = 'failed' LIMIT 500"""
    ):
        out.fires.append(Fire(
            "failure", r["escalation_id"], f"agentdeck/delivery/{r['escalation_id']}",
            f"failed#{r['delivery_attempts']}", "error",
            f"decision {r['status']} on {_t(r['escalation_id'], 80)} could not be delivered to the agent: "
            f"{_t(r['delivery_error'], 160)}; retry it from the Escalations screen (R)",
            {"escalation_id": r["escalation_id"], "task_id": r["task_id"], "agent": r["agent"],
             "error": _t(r["delivery_error"], 500)}))
    for (subject,) in conn.execute(
        """SELECT DISTINCT a.subject FROM notify_alerts a JOIN escalations e ON e.escalation_id = a.subject
           WHERE a.resolved_at IS NULL AND a.rule = 'failure' AND a.incident LIKE 'agentdeck/delivery/%'
           AND coalesce(e.delivery, '') != 'failed'"""
    ):
        out.resolved.append(f"agentdeck/delivery/{subject}")
    if not _has_table(conn, "compensations"):
        return
    for r in conn.execute(
        """SELECT c.action_id, c.task_id, c.attempt, c.target, c.error, c.requested_by FROM compensations c
           WHERE c.status = 'failed' AND c.id = (SELECT max(id) FROM compensations d WHERE d.action_id = c.action_id)
           LIMIT 500"""
    ):
        out.fires.append(Fire(
            "failure", r["action_id"], f"agentdeck/compensation/{r['action_id']}", f"attempt#{r['attempt']}", "error",
            f"compensation of {_t(r['action_id'], 80)} (task {_t(r['task_id'], 80)}) failed: {_t(r['error'], 160)}; "
            "the action is not undone — retry it from Replay",
            {"action_id": r["action_id"], "task_id": r["task_id"], "attempt": r["attempt"],
             "requested_by": r["requested_by"], "error": _t(r["error"], 500)}))
    for (subject,) in conn.execute(
        """SELECT DISTINCT a.subject FROM notify_alerts a JOIN actions x ON x.action_id = a.subject
           WHERE a.resolved_at IS NULL AND a.rule = 'failure' AND a.incident LIKE 'agentdeck/compensation/%'
           AND x.compensation_status = 'ok'"""
    ):
        out.resolved.append(f"agentdeck/compensation/{subject}")


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


# -- remembered values -----------------------------------------------------------


def remembered(conn: sqlite3.Connection, key: str) -> Any:
    row = conn.execute("SELECT value FROM notify_state WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else None


def remember(conn: sqlite3.Connection, key: str, value: Any, now: float) -> None:
    """Call inside the tick's transaction (``atomic``): read, compare and write are one step for all consoles."""
    conn.execute("INSERT OR REPLACE INTO notify_state (key, value, updated_at) VALUES (?, ?, ?)",
                 (key, json.dumps(value), now))


def _episode(conn, key: str, active: bool, now: float, out: Evaluation, incident: str) -> int | None:
    """Track an on/off condition: the episode number when it is on, resolving the incident when it goes off."""
    state = remembered(conn, key) or {"episode": 0, "active": False}
    if active and not state["active"]:
        state = {"episode": state["episode"] + 1, "active": True}
        remember(conn, key, state, now)
    elif not active and state["active"]:
        remember(conn, key, {"episode": state["episode"], "active": False}, now)
        out.resolved.append(incident)
    return state["episode"] if active else None


# -- ingest ------------------------------------------------------------------------


def _ingest(conn, rules: RuleSettings, now: float, out: Evaluation) -> None:
    window = rules.ingest_stall_minutes * 60
    if rules.ingest_rejects:
        newest = conn.execute("SELECT max(id) FROM rejects").fetchone()[0] or 0
        seen = remembered(conn, "ingest:rejects")
        if seen is None or newest < seen:  # first look (or a store rebuilt): remember, do not alert on history
            remember(conn, "ingest:rejects", newest, now)
        elif newest > seen:
            remember(conn, "ingest:rejects", newest, now)
            last = conn.execute("SELECT path, error FROM rejects WHERE id = ?", (newest,)).fetchone()
            bucket = int(now // (window or 600))
            out.fires.append(Fire(
                "ingest", "rejects", "agentdeck/ingest/rejects", f"rejects@{bucket}", "warning",
                f"{newest - seen} trace line(s) rejected by ingest; latest in {_t(last['path'], 120)}: "
                f"{_t(last['error'], 160)} (see the Problems view or the rejects table)",
                {"new_rejects": newest - seen, "path": _t(last["path"], 300), "error": _t(last["error"], 500)}))
    if not window:
        return
    why = _stalled(conn, window, now)
    episode = _episode(conn, "ingest:stalled", why is not None, now, out, "agentdeck/ingest/stalled")
    if why is not None and episode is not None:
        out.fires.append(Fire("ingest", "ingest", "agentdeck/ingest/stalled", f"stalled#{episode}", "error",
                              f"ingest stalled or failing: {why}", {"why": why}))


def _stalled(conn, window: float, now: float) -> str | None:
    """Why ingest looks stalled, or None. Uses the ingesters heartbeat table when the store has it."""
    if _has_table(conn, "ingesters"):
        rows = conn.execute("SELECT ingester, state, detail, heartbeat_at FROM ingesters "
                            "ORDER BY heartbeat_at DESC LIMIT 20").fetchall()
        if any(r["state"] == "running" and r["heartbeat_at"] >= now - window for r in rows):
            return None  # an ingester is alive and beating: whatever else is in the table is history
        newest = rows[0] if rows else None
        if newest is not None and newest["state"] == "failed":
            return f"ingester {_t(newest['ingester'], 80)} failed: {_t(newest['detail'], 200)}"
        if newest is not None and newest["state"] == "running":
            return (f"ingester {_t(newest['ingester'], 80)} has not reported for "
                    f"{(now - newest['heartbeat_at']) / 60:.0f} min (killed or hung?)")
    last_commit = conn.execute("SELECT max(updated_at) FROM sources").fetchone()[0]
    if last_commit is None or last_commit >= now - window:
        return None
    behind = 0
    for path, offset in conn.execute("SELECT path, offset FROM sources ORDER BY updated_at DESC LIMIT 200"):
        try:
            behind += max(os.stat(path).st_size - offset, 0)
        except OSError:
            continue  # a rotated or removed file is not waiting to be read
    if behind:
        return (f"{behind:,} bytes of traces are waiting and nothing was committed for "
                f"{(now - last_commit) / 60:.0f} min; is `agentdeck ingest --follow` (or a console) running?")
    return None


# -- canary ------------------------------------------------------------------------

VERDICT_KEY = {"hold": "hold", "roll back": "rollback"}


def canary_due(conn: sqlite3.Connection, rules: RuleSettings, now: float) -> bool:
    """Is it time to analyse the canaries again? (At most every CANARY_EVERY seconds, shared by all consoles.)"""
    if rules.canary == "off":
        return False
    last = remembered(conn, "canary:checked_at")
    return last is None or now - last >= CANARY_EVERY or now < last


def canary_reports(conn: sqlite3.Connection, rules: RuleSettings, now: float) -> list[Any]:
    """Every pair's sequential report: read-only and the slow part, so run it before the tick's transaction."""
    from agentdeck.store import canary

    try:
        from agentdeck.store import contract

        book = contract.book_for_store(conn, None)
        contract_for = book.get
    except Exception:  # an unusable contract folder: judge with the default settings
        contract_for = lambda _agent: None  # noqa: E731
    return [canary.analyse(conn, p.agent, p.baseline, p.canary, window=rules.canary_window, now=now,
                           contract=contract_for(p.agent), sparklines=False, method="sequential")
            for p in canary.pairs(conn)]


def _canary(conn, rules: RuleSettings, now: float, out: Evaluation, reports: list[Any] | None) -> None:
    if rules.canary == "off" or reports is None:
        return
    remember(conn, "canary:checked_at", now, now)
    wanted = {"hold", "roll back"} if rules.canary == "hold" else {"roll back"}
    for report in reports:
        agent, baseline, canary_v = report.agent, report.baseline, report.canary
        key = f"canary:{agent}\x00{baseline}\x00{canary_v}"
        incident = f"agentdeck/canary/{agent}/{baseline}/{canary_v}"
        state = remembered(conn, key)
        verdict = report.verdict
        if state is not None and state["verdict"] == verdict:
            continue
        changes = (state or {}).get("changes", 0) + 1
        remember(conn, key, {"verdict": verdict, "changes": changes}, now)
        first = state is None
        if verdict in wanted and (not first or verdict == "roll back"):
            out.fires.append(Fire(
                "canary", f"{agent} {baseline}->{canary_v}", incident, f"{VERDICT_KEY[verdict]}#{changes}",
                "error" if verdict == "roll back" else "warning",
                f"canary {_t(agent, 60)} {_t(canary_v, 40)} vs {_t(baseline, 40)}: {verdict} — {_t(report.reason, 200)}",
                {"agent": agent, "baseline": baseline, "canary": canary_v, "verdict": verdict,
                 "previous": None if first else state["verdict"], "reason": _t(report.reason, 500),
                 "n_baseline": report.n_baseline, "n_canary": report.n_canary}))
        elif verdict == "promote" and not first:
            out.resolved.append(incident)
