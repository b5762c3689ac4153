"""Human (and expiry-policy) decisions on escalations, and the queue they are made from.

A decision is committed to the store before anything else happens: one
transaction (``store.txn.atomic``, ``BEGIN IMMEDIATE``) sets the escalation's status only if it is
still ``pending`` (so when two consoles decide the same escalation, the first
commit wins and the second is told who decided it and when), writes the audit
record, and marks delivery ``pending``. Delivering it to the agent (outbox,
callback) comes after, in ``console/delivery.py``; see ``docs/decisions.md``.

Every decision also records who was at the keyboard (``store.origin``: the OS
account and, over SSH, the client address) in the row and the audit record.
Given approver rules (``store.approvers``), an approval the rules do not
allow is refused with the rule's name and nothing is written; a risk under
the two-person rule takes two approvals by different people (different
names and, when known, different OS accounts): the first is recorded and
audited while the escalation stays pending, the second makes it take effect.
A deny always decides at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from agentdeck.store import audit
from agentdeck.store.approvers import OPEN, ApproverRules
from agentdeck.store.origin import Origin
from agentdeck.store.txn import atomic

Decision = Literal["approve", "deny"]
ExpiryPolicy = Literal["deny", "approve", "keep"]
EXPIRY_POLICIES: tuple[str, ...] = ("deny", "approve", "keep")
ENV_ON_EXPIRY = "AGENTDECK_ON_EXPIRY"
EXPIRY_ACTOR = "expiry-policy"
STATUS_FOR = {"approve": "approved", "deny": "denied"}
RISKS_NEEDING_REASON_TO_APPROVE = frozenset({"high", "critical"})
MAX_REASON = 2000
RELEASE = "release"  # escalations.kind of a promotion or roll back item (store/release.py)


class DecisionError(Exception):
    """A decision that cannot be made as asked; the message says why, for the user."""


class UnknownEscalation(DecisionError):
    pass


class ReasonRequired(DecisionError):
    pass


class NotAllowed(DecisionError):
    """The approver rules do not let this person approve this escalation (the message names the rule)."""


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
    # Two-person rule: True while the escalation has one approval and waits for a
    # second, different approver (status stays pending). ``applied`` is True when
    # this call recorded that first approval, False when it changed nothing.
    awaiting_second: bool = False
    first_approved_by: str | None = None
    note: str = ""  # what to tell the person, when the status alone does not say it


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
    origin: Origin | None = None,
    rules: ApproverRules | None = None,
) -> Outcome:
    """Record a person's decision, first decision wins.

    If the deadline has passed and the expiry policy is ``deny`` or
    ``approve``, the policy's decision is recorded instead (by
    ``expiry-policy``) and the outcome says so. ``origin`` defaults to this
    process's OS user and SSH client; ``rules`` to everyone may approve
    everything, once. Raises ``ReasonRequired``, ``NotAllowed`` or
    ``UnknownEscalation`` (nothing written).
    """
    if decision not in STATUS_FOR:
        raise DecisionError(f"unknown decision {decision!r}")
    outcome = _decide(conn, escalation_id, decision, by=by, reason=(reason or "").strip()[:MAX_REASON], now=now,
                      on_expiry=on_expiry, origin=origin if origin is not None else Origin.current(),
                      rules=rules if rules is not None else OPEN)
    if outcome.applied:  # a decision, or the first of two approvals: both wrote an audit record
        audit.checkpoint(conn)  # anchor the committed record outside the store (docs/evidence.md)
    return outcome


def _decide(conn: sqlite3.Connection, escalation_id: str, decision: Decision, *, by: str, reason: str, now: float,
            on_expiry: ExpiryPolicy, origin: Origin, rules: ApproverRules) -> Outcome:
    with atomic(conn):
        row = conn.execute(
            """SELECT task_id, risk, deadline, status, decided_by, decided_at, decision_reason, proposed_action,
                      first_approved_by, first_approved_at, first_approved_os_user, first_approved_ssh_client,
                      first_approval_reason, kind
               FROM escalations WHERE escalation_id = ?""",
            (escalation_id,),
        ).fetchone()
        if row is None:
            raise UnknownEscalation(f"no escalation {escalation_id!r} in this store")
        if row["status"] != "pending":  # someone decided first: nothing written
            return Outcome(escalation_id, False, row["status"], row["decided_by"], row["decided_at"],
                           row["decision_reason"] or "")
        # A promotion or roll back (store/release.py) is never decided by the expiry policy: past its
        # deadline it waits for a person (an automatic approve would promote a release nobody looked at).
        expired = row["deadline"] < now and on_expiry != "keep" and row["kind"] != RELEASE
        if expired:
            return _apply(conn, escalation_id, row, on_expiry, by=EXPIRY_ACTOR, now=now, origin=origin,
                          reason=_expiry_reason(on_expiry), requested=decision, requested_by=by,
                          requested_reason=reason)
        if decision == "approve":  # before asking for a reason: someone who may not approve is told so first
            who = rules.who(by, origin)
            refusal = rules.refusal(who, row["risk"], system_of(row["proposed_action"]))
            if refusal is not None:
                raise NotAllowed(refusal)
        if not reason and reason_required(decision, row["risk"]):
            raise ReasonRequired(
                "a reason is required to deny" if decision == "deny"
                else f"a reason is required to approve {row['risk']} risk"
            )
        if decision == "approve":
            if rules.needs_two(row["risk"]):
                first = row["first_approved_by"]
                if first is None:
                    return _first_approval(conn, escalation_id, row, by=by, now=now, reason=reason, origin=origin)
                if _same_person(rules, by, origin, row):
                    return Outcome(escalation_id, False, "pending", None, None, "", awaiting_second=True,
                                   first_approved_by=first,
                                   note=f"{first} already approved; {row['risk']} risk needs a second, different approver")
        return _apply(conn, escalation_id, row, decision, by=by, now=now, reason=reason, origin=origin)


def approval_refusal(conn: sqlite3.Connection, escalation_id: str, *, by: str, rules: ApproverRules,
                     origin: Origin | None = None) -> str | None:
    """Why ``by`` may not approve this escalation (None: they may), for the UI to say before anyone presses ``a``.

    Also says when ``by`` already gave the first of two approvals. ``decide`` checks again when it writes.
    """
    row = conn.execute("SELECT risk, proposed_action, first_approved_by, first_approved_os_user, status "
                       "FROM escalations WHERE escalation_id = ?", (escalation_id,)).fetchone()
    if row is None:
        return f"no escalation {escalation_id!r} in this store"
    origin = origin if origin is not None else Origin.current()
    refusal = rules.refusal(rules.who(by, origin), row["risk"], system_of(row["proposed_action"]))
    if refusal is None and rules.needs_two(row["risk"]) and row["first_approved_by"] is not None \
            and row["status"] == "pending" and _same_person(rules, by, origin, row):
        return f"{row['first_approved_by']} already approved; {row['risk']} risk needs a second, different approver"
    return refusal


def system_of(proposed_action: str | None) -> str:
    """The ``system`` of an escalation's proposed action (stored as JSON); "" when it has none."""
    try:
        value = json.loads(proposed_action or "{}")
    except ValueError:
        return ""
    system = value.get("system") if isinstance(value, dict) else None
    return system if isinstance(system, str) else ""


def _same_person(rules: ApproverRules, by: str, origin: Origin, row: sqlite3.Row) -> bool:
    """Is this the first approver again? The same name, or (both known) the same OS account."""
    if rules.who(by, origin) == rules.who(row["first_approved_by"], Origin(row["first_approved_os_user"])):
        return True
    return origin.os_user is not None and origin.os_user == row["first_approved_os_user"]


def _first_approval(conn: sqlite3.Connection, escalation_id: str, row: sqlite3.Row, *, by: str, now: float,
                    reason: str, origin: Origin) -> Outcome:
    cur = conn.execute(
        """UPDATE escalations SET first_approved_by = ?, first_approved_at = ?, first_approved_os_user = ?,
           first_approved_ssh_client = ?, first_approval_reason = ?
           WHERE escalation_id = ? AND status = 'pending' AND first_approved_by IS NULL""",
        (by, now, origin.os_user, origin.ssh_client, reason, escalation_id),
    )
    if cur.rowcount != 1:
        raise DecisionError(f"{escalation_id} changed while deciding it; nothing written")
    audit.append(conn, ts=now, actor=by, kind="decision-first-approval", subject=escalation_id,
                 detail={"decision": "approve", "reason": reason, "task_id": row["task_id"], "risk": row["risk"],
                         "deadline": row["deadline"], "awaiting": "a second, different approver", **origin.detail()})
    return Outcome(escalation_id, True, "pending", None, None, reason, awaiting_second=True, first_approved_by=by,
                   note=f"approval recorded; {row['risk']} risk needs a second, different approver before it takes effect")


def _expiry_reason(policy: str) -> str:
    return f"no decision before the deadline; expiry policy: {policy}"


def _apply(conn: sqlite3.Connection, escalation_id: str, row: sqlite3.Row, decision: str, *, by: str, now: float,
           reason: str, origin: Origin | None = None, requested: str | None = None, requested_by: str | None = None,
           requested_reason: str | None = None) -> Outcome:
    key = idempotency_key(escalation_id, now)
    status = STATUS_FOR[decision]
    origin = origin or Origin()
    cur = conn.execute(
        """UPDATE escalations SET status = ?, decided_by = ?, decided_at = ?, decision_reason = ?,
           delivery = 'pending', delivery_error = NULL, idempotency_key = ?,
           decided_os_user = ?, decided_ssh_client = ?
           WHERE escalation_id = ? AND status = 'pending'""",
        (status, by, now, reason, key, origin.os_user, origin.ssh_client, escalation_id),
    )
    if cur.rowcount != 1:  # cannot happen inside atomic() (BEGIN IMMEDIATE); refuse rather than double-record
        raise DecisionError(f"{escalation_id} changed while deciding it; nothing written")
    detail = {"decision": decision, "reason": reason, "task_id": row["task_id"], "risk": row["risk"],
              "deadline": row["deadline"], "idempotency_key": key, **origin.detail()}
    first = row["first_approved_by"] if "first_approved_by" in row.keys() else None
    if first is not None:
        detail["first_approval"] = {"by": first, "at": row["first_approved_at"],
                                    "os_user": row["first_approved_os_user"],
                                    "ssh_client": row["first_approved_ssh_client"],
                                    "reason": row["first_approval_reason"]}
    if requested is not None:
        detail.update(expired=True, requested=requested, requested_by=requested_by, requested_reason=requested_reason)
    audit.append(conn, ts=now, actor=by, kind="decision", subject=escalation_id, detail=detail)
    if "kind" in row.keys() and row["kind"] == RELEASE:
        from agentdeck.store import release

        # Carried out in the decision's own transaction: the new stage is recorded with the decision or not at all.
        release.carry_out(conn, escalation_id, decision, by=by, now=now, reason=reason)
    return Outcome(escalation_id, True, status, by, now, reason, expired=requested is not None or by == EXPIRY_ACTOR,
                   requested=requested, idempotency_key=key, first_approved_by=first)


def expire_due(conn: sqlite3.Connection, *, now: float, policy: ExpiryPolicy, limit: int = 200) -> list[Outcome]:
    """Decide pending escalations past their deadline per the policy (nothing for ``keep``)."""
    if policy == "keep":
        return []
    due = [r[0] for r in conn.execute(
        # Release items (kind 'release') are never expired: they wait for a person.
        "SELECT escalation_id FROM escalations WHERE status = 'pending' AND deadline < ? AND kind IS NULL "
        "ORDER BY deadline LIMIT ?",
        (now, limit),
    )]
    outcomes = []
    for escalation_id in due:
        with atomic(conn):
            row = conn.execute(
                """SELECT task_id, risk, deadline, status, first_approved_by, first_approved_at, first_approved_os_user,
                          first_approved_ssh_client, first_approval_reason
                   FROM escalations WHERE escalation_id = ?""", (escalation_id,)
            ).fetchone()
            if row is None or row["status"] != "pending" or row["deadline"] >= now:
                continue  # decided meanwhile (another console, the agent): leave it
            outcomes.append(_apply(conn, escalation_id, row, policy, by=EXPIRY_ACTOR, now=now,
                                   reason=_expiry_reason(policy), origin=Origin.current()))
    if outcomes:
        audit.checkpoint(conn)  # anchor the committed records outside the store (docs/evidence.md)
    return outcomes


def request_retry(conn: sqlite3.Connection, escalation_id: str, *, by: str, now: float,
                  origin: Origin | None = None) -> bool:
    """Put a failed or blocked delivery back to pending (audited, with who and from where). False if nothing to retry."""
    origin = origin if origin is not None else Origin.current()
    with atomic(conn):
        cur = conn.execute(
            """UPDATE escalations SET delivery = 'pending', delivery_error = NULL, delivery_claimed_until = NULL
               WHERE escalation_id = ? AND delivery IN ('failed', 'blocked')""",
            (escalation_id,),
        )
        if cur.rowcount != 1:
            return False
        audit.append(conn, ts=now, actor=by, kind="delivery-retry", subject=escalation_id, detail=origin.detail())
    audit.checkpoint(conn)
    return True


# --- reading the queue ------------------------------------------------------

_LIST_COLUMNS = """escalation_id, task_id, ts, agent, risk, risk_rank, reason, deadline, policy_id,
    proposed_action, callback_url, status, decided_by, decided_at, decision_reason, delivery,
    delivery_error, delivery_attempts, decided_os_user, decided_ssh_client, first_approved_by, first_approved_at, kind"""


def pending(conn: sqlite3.Connection, limit: int = 500, *, last_urls: Sequence[str] = (),
            no_url_last: bool = False) -> list[sqlite3.Row]:
    """Pending escalations, soonest deadline first, then highest risk (escalations_queue index).

    Those whose callback URL is in ``last_urls`` (and, with ``no_url_last``, those
    without one) come after all the others, in the same order among themselves:
    the console lists orphaned escalations last (console/service/reach.py).
    """
    if not last_urls and not no_url_last:
        return conn.execute(
            f"SELECT {_LIST_COLUMNS} FROM escalations WHERE status = 'pending' "
            "ORDER BY deadline, risk_rank DESC, escalation_id LIMIT ?",
            (limit,),
        ).fetchall()
    last = "callback_url IN (SELECT value FROM json_each(?))" + (" OR coalesce(callback_url, '') = ''" if no_url_last else "")
    return conn.execute(
        f"SELECT {_LIST_COLUMNS} FROM escalations WHERE status = 'pending' "
        f"ORDER BY coalesce({last}, 0), deadline, risk_rank DESC, escalation_id LIMIT ?",
        (json.dumps(list(last_urls)), limit),
    ).fetchall()


def pending_callback_urls(conn: sqlite3.Connection) -> list[str | None]:
    """The distinct callback URLs (None: none) of pending escalations."""
    return [r[0] for r in conn.execute("SELECT DISTINCT callback_url FROM escalations WHERE status = 'pending'")]


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


def callback_deliveries(conn: sqlite3.Connection, limit: int = 5000) -> list[sqlite3.Row]:
    """The latest attempted delivery to each callback URL, newest first: whether a callback host still answers.

    (SQLite takes the bare columns of a ``max()`` aggregate from the row holding the maximum.)
    """
    return conn.execute(
        "SELECT callback_url, delivery, delivery_error, max(decided_at) AS decided_at FROM escalations "
        "WHERE callback_url IS NOT NULL AND delivery IN ('delivered', 'failed') "
        "GROUP BY callback_url ORDER BY decided_at DESC LIMIT ?",
        (limit,),
    ).fetchall()
