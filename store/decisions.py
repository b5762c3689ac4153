"""Human (and expiry-policy) decisions on escalations, and the queue they are made from.

A decision is committed to the store before anything else happens: one
transaction (``store.txn.atomic``, ``BEGIN IMMEDIATE``) sets the escalation's status only if it is
still ``pending`` (so when two consoles decide the same escalation, the first
commit wins and the second is told who decided it and when), writes the audit
record, and marks delivery ``pending``. Delivering it to the agent (outbox,
callback) comes after, in ``console/delivery.py``; see ``docs/decisions.md``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass
from typing import Literal

from agentdeck.store import audit
from agentdeck.store.txn import atomic

Decision = Literal["approve", "deny"]
ExpiryPolicy = Literal["deny", "approve", "keep"]
EXPIRY_POLICIES: tuple[str, ...] = ("deny", "approve", "keep")
ENV_ON_EXPIRY = "AGENTDECK_ON_EXPIRY"
EXPIRY_ACTOR = "expiry-policy"
STATUS_FOR = {"approve": "approved", "deny": "denied"}
RISKS_NEEDING_REASON_TO_APPROVE = frozenset({"high", "critical"})
MAX_REASON = 2000


class DecisionError(Exception):
    """A decision that cannot be made as asked; the message says why, for the user."""


class UnknownEscalation(DecisionError):
    pass


class ReasonRequired(DecisionError):
    pass


@dataclass(frozen=True)
class Outcome:
    """What happened when someone tried to decide an escalation."""

    escalation_id: str
    applied: bool  # False: someone else decided first; nothing changed
    status: str  # the escalation's status now (approved, denied, expired, pending)
    decided_by: str | None
    decided_at: float | None
    reason: str
    expired: bool = False  # the deadline had passed and the expiry policy decided instead
    requested: str | None = None  # what the person asked for, when the policy overrode it
    idempotency_key: str | None = None


def on_expiry_policy(cli: str | None = None) -> ExpiryPolicy:
    """What happens to escalations past their deadline: command line, then $AGENTDECK_ON_EXPIRY, else deny."""
    value = (cli or os.environ.get(ENV_ON_EXPIRY) or "deny").strip().lower()
    if value not in EXPIRY_POLICIES:
        raise ValueError(f"on-expiry policy must be one of {', '.join(EXPIRY_POLICIES)} (got {value!r})")
    return value  # type: ignore[return-value]


def reason_required(decision: str, risk: str) -> bool:
    """A deny always needs a reason; so does approving high or critical risk."""
    return decision == "deny" or (decision == "approve" and risk in RISKS_NEEDING_REASON_TO_APPROVE)


def idempotency_key(escalation_id: str, decided_at: float) -> str:
    """Stable key for one decision: safe in an HTTP header whatever the escalation id holds."""
    digest = hashlib.sha256(f"{escalation_id}\x00{decided_at!r}".encode()).hexdigest()
    return f"agentdeck-dec-{digest[:32]}"


def decide(
    conn: sqlite3.Connection,
    escalation_id: str,
    decision: Decision,
    *,
    by: str,
    reason: str = "",
    now: float,
    on_expiry: ExpiryPolicy = "deny",
) -> Outcome:
    """Record a person's decision, first decision wins.

    If the deadline has passed and the expiry policy is ``deny`` or
    ``approve``, the policy's decision is recorded instead (by
    ``expiry-policy``) and the outcome says so. Raises ``ReasonRequired`` or
    ``UnknownEscalation`` (nothing written).
    """
    if decision not in STATUS_FOR:
        raise DecisionError(f"unknown decision {decision!r}")
    outcome = _decide(conn, escalation_id, decision, by=by, reason=(reason or "").strip()[:MAX_REASON], now=now,
                      on_expiry=on_expiry)
    if outcome.applied:
        audit.checkpoint(conn)  # anchor the committed record outside the store (docs/evidence.md)
    return outcome


def _decide(conn: sqlite3.Connection, escalation_id: str, decision: Decision, *, by: str, reason: str, now: float,
            on_expiry: ExpiryPolicy) -> Outcome:
    with atomic(conn):
        row = conn.execute(
            "SELECT task_id, risk, deadline, status, decided_by, decided_at, decision_reason FROM escalations WHERE escalation_id = ?",
            (escalation_id,),
        ).fetchone()
        if row is None:
            raise UnknownEscalation(f"no escalation {escalation_id!r} in this store")
        if row["status"] != "pending":  # someone decided first: nothing written
            return Outcome(escalation_id, False, row["status"], row["decided_by"], row["decided_at"],
                           row["decision_reason"] or "")
        expired = row["deadline"] < now and on_expiry != "keep"
        if expired:
            return _apply(conn, escalation_id, row, on_expiry, by=EXPIRY_ACTOR, now=now,
                          reason=_expiry_reason(on_expiry), requested=decision, requested_by=by,
                          requested_reason=reason)
        if not reason and reason_required(decision, row["risk"]):
            raise ReasonRequired(
                "a reason is required to deny" if decision == "deny"
                else f"a reason is required to approve {row['risk']} risk"
            )
        return _apply(conn, escalation_id, row, decision, by=by, now=now, reason=reason)


def _expiry_reason(policy: str) -> str:
    return f"no decision before the deadline; expiry policy: {policy}"


def _apply(conn: sqlite3.Connection, escalation_id: str, row: sqlite3.Row, decision: str, *, by: str, now: float,
           reason: str, requested: str | None = None, requested_by: str | None = None,
           requested_reason: str | None = None) -> Outcome:
    key = idempotency_key(escalation_id, now)
    status = STATUS_FOR[decision]
    cur = conn.execute(
        """UPDATE escalations SET status = ?, decided_by = ?, decided_at = ?, decision_reason = ?,
           delivery = 'pending', delivery_error = NULL, idempotency_key = ?
           WHERE escalation_id = ? AND status = 'pending'""",
        (status, by, now, reason, key, escalation_id),
    )
    if cur.rowcount != 1:  # cannot happen inside atomic() (BEGIN IMMEDIATE); refuse rather than double-record
        raise DecisionError(f"{escalation_id} changed while deciding it; nothing written")
    detail = {"decision": decision, "reason": reason, "task_id": row["task_id"], "risk": row["risk"],
              "deadline": row["deadline"], "idempotency_key": key}
    if requested is not None:
        detail.update(expired=True, requested=requested, requested_by=requested_by, requested_reason=requested_reason)
    audit.append(conn, ts=now, actor=by, kind="decision", subject=escalation_id, detail=detail)
    return Outcome(escalation_id, True, status, by, now, reason, expired=requested is not None or by == EXPIRY_ACTOR,
                   requested=requested, idempotency_key=key)


def expire_due(conn: sqlite3.Connection, *, now: float, policy: ExpiryPolicy, limit: int = 200) -> list[Outcome]:
    """Decide pending escalations past their deadline per the policy (nothing for ``keep``)."""
    if policy == "keep":
        return []
    due = [r[0] for r in conn.execute(
        "SELECT escalation_id FROM escalations WHERE status = 'pending' AND deadline < ? ORDER BY deadline LIMIT ?",
        (now, limit),
    )]
    outcomes = []
    for escalation_id in due:
        with atomic(conn):
            row = conn.execute(
                "SELECT task_id, risk, deadline, status FROM escalations WHERE escalation_id = ?", (escalation_id,)
            ).fetchone()
            if row is None or row["status"] != "pending" or row["deadline"] >= now:
                continue  # decided meanwhile (another console, the agent): leave it
            outcomes.append(_apply(conn, escalation_id, row, policy, by=EXPIRY_ACTOR, now=now,
                                   reason=_expiry_reason(policy)))
    if outcomes:
        audit.checkpoint(conn)  # anchor the committed records outside the store (docs/evidence.md)
    return outcomes


def request_retry(conn: sqlite3.Connection, escalation_id: str, *, by: str, now: float) -> bool:
    """Put a failed or blocked delivery back to pending (audited). False if there is nothing to retry."""
    with atomic(conn):
        cur = conn.execute(
            """UPDATE escalations SET delivery = 'pending', delivery_error = NULL, delivery_claimed_until = NULL
               WHERE escalation_id = ? AND delivery IN ('failed', 'blocked')""",
            (escalation_id,),
        )
        if cur.rowcount != 1:
            return False
        audit.append(conn, ts=now, actor=by, kind="delivery-retry", subject=escalation_id, detail={})
    audit.checkpoint(conn)
    return True


# --- reading the queue ------------------------------------------------------

_LIST_COLUMNS = """escalation_id, task_id, ts, agent, risk, risk_rank, reason, deadline, policy_id,
    proposed_action, callback_url, status, decided_by, decided_at, decision_reason, delivery,
    delivery_error, delivery_attempts"""


def pending(conn: sqlite3.Connection, limit: int = 500) -> list[sqlite3.Row]:
    """Pending escalations, soonest deadline first, then highest risk (escalations_queue index)."""
    return conn.execute(
        f"SELECT {_LIST_COLUMNS} FROM escalations WHERE status = 'pending' "
        "ORDER BY deadline, risk_rank DESC, escalation_id LIMIT ?",
        (limit,),
    ).fetchall()


def decided(conn: sqlite3.Connection, limit: int = 200) -> list[sqlite3.Row]:
    """Decided and expired escalations, most recently decided first."""
    return conn.execute(
        f"SELECT {_LIST_COLUMNS} FROM escalations WHERE status != 'pending' "
        "ORDER BY decided_at DESC, escalation_id LIMIT ?",
        (limit,),
    ).fetchall()


def count(conn: sqlite3.Connection, *, pending: bool) -> int:
    """How many escalations are pending (or decided): served by the escalations_queue index."""
    if pending:
        return conn.execute("SELECT count(*) FROM escalations WHERE status = 'pending'").fetchone()[0]
    return conn.execute("SELECT count(*) FROM escalations WHERE status != 'pending'").fetchone()[0]


def escalation(conn: sqlite3.Connection, escalation_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM escalations WHERE escalation_id = ?", (escalation_id,)).fetchone()


def undelivered(conn: sqlite3.Connection, limit: int = 500) -> list[str]:
    """Decisions whose delivery is still pending (after a crash or restart)."""
    return [r[0] for r in conn.execute(
        "SELECT escalation_id FROM escalations WHERE delivery = 'pending' ORDER BY decided_at LIMIT ?", (limit,)
    )]
