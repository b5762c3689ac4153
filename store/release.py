"""Promotions and roll backs as decisions in the Escalations queue, and the stage each version acts at.

The canary verdict (store/canary.py) says promote, hold or roll back. Here a
verdict that reaches promote or roll back (or holds longer than the
contract's ``escalate_hold_after``) becomes ONE item in the Escalations
queue: an ``escalations`` row of ``kind = 'release'`` beside a
``release_items`` row holding the verdict table and suite result it was
raised on. It is decided like any escalation (store/decisions.py: reasons,
approver rules, two-person rule, first decision wins, audit, notifications);
the decision's transaction also carries it out (``carry_out``), so a
promotion is never decided without taking effect, nor the other way round.

Exactly once: ``release_items`` is unique on (agent, version, transition),
checked and written inside one ``atomic`` transaction (``BEGIN IMMEDIATE``),
so two consoles ticking together, a restart, or ``agentdeck canary
--enqueue`` beside a console raise one item.

Each version's **effective stage** derives from a ledger, ``stage_changes``:
the contract's stage (a row when first seen or when the contract's stage is
edited), approved promotions and roll backs, and automatic demotions (a roll
back verdict demotes the canary to ``assisted`` at once, until a person
decides the item; a denied roll back restores the stage it had). The latest
row is the stage; while a roll back item is pending the stage is never above
``assisted``. Each row is published once (``publish_pending``) to
``<traces>/outbox/autonomy.jsonl`` and to the contract's release hook. See
docs/autonomy.md and docs/canary.md ("Promotions and roll backs").
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentdeck.store import audit
from agentdeck.store.contract import RISK_RANK, Contract
from agentdeck.store.txn import atomic

KIND = "release"
STAGES: tuple[str, ...] = ("shadow", "assisted", "partial", "bounded")
DEMOTED_TO = "assisted"  # a roll back verdict: every action needs a person's approval
ROLLED_BACK_TO = "shadow"  # an approved roll back: the version acts on nothing
ROLLBACK = "roll back"
PROMOTE = "promote"
ACTOR = "canary verdict"  # who raised an item or made an automatic demotion (in the audit trail)
AUTONOMY_VERSION: Literal[1] = 1
MAX_ANSWER = 2000  # characters of the release hook's answer kept


def rank(stage: str | None) -> int:
    return STAGES.index(stage) if stage in STAGES else -1


def next_stage(stage: str | None) -> str | None:
    """The stage a promotion leads to (None: bounded already, or the stage is unknown)."""
    i = rank(stage)
    return STAGES[i + 1] if 0 <= i < len(STAGES) - 1 else None


def _capped(stage: str, cap: str | None) -> str:
    return cap if cap is not None and rank(stage) > rank(cap) else stage


# -- the effective stage -------------------------------------------------------


@dataclass(frozen=True)
class Effective:
    """A version's stage now, and why."""

    agent: str
    version: str
    stage: str | None
    cause: str  # contract | promoted | rolled back | demoted | restored | unknown
    by: str | None = None
    at: float | None = None
    why: str = ""
    escalation_id: str | None = None

    def describe(self) -> str:
        """"assisted (demoted by verdict)", "bounded (promoted by alice)", "partial (contract)"."""
        if self.stage is None:
            return "stage unknown"
        if self.cause in ("contract", "unknown"):
            return f"{self.stage} ({self.cause})"
        if self.cause == "demoted":
            return f"{self.stage} (demoted by verdict)"
        return f"{self.stage} ({self.cause} by {self.by or '?'})"


def _latest(conn: sqlite3.Connection, agent: str, version: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM stage_changes WHERE agent = ? AND version = ? ORDER BY id DESC LIMIT 1",
                        (agent, version)).fetchone()


def effective(conn: sqlite3.Connection, contract: Contract | None, agent: str, version: str) -> Effective:
    """The version's effective stage: the ledger's latest row, else the contract's stage."""
    row = _latest(conn, agent, version)
    if row is None:
        stage = contract.versions.get(version) if contract is not None else None
        return Effective(agent, version, stage, "contract" if stage else "unknown")
    return Effective(agent, version, row["stage"], row["cause"], row["by"], row["at"], row["why"],
                     row["escalation_id"])


def _pending_rollback(conn: sqlite3.Connection, agent: str, version: str) -> str | None:
    """The escalation id of this version's undecided roll back item, if any (it caps the stage at assisted)."""
    row = conn.execute(
        """SELECT r.escalation_id FROM release_items r JOIN escalations e ON e.escalation_id = r.escalation_id
           WHERE r.agent = ? AND r.version = ? AND r.action = ? AND e.status = 'pending' LIMIT 1""",
        (agent, version, ROLLBACK)).fetchone()
    return row[0] if row else None


def _record_change(conn: sqlite3.Connection, *, agent: str, version: str, stage: str, previous: str | None,
                   cause: str, why: str, by: str, now: float, escalation_id: str | None,
                   contract: Contract | None, detail: dict[str, Any] | None = None,
                   contract_stage: str | None = None) -> int:
    """One ledger row and its audit record (inside the caller's transaction)."""
    hook = contract.release_hook if contract is not None else None
    cur = conn.execute(
        """INSERT INTO stage_changes (agent, version, stage, previous, cause, why, by, at, escalation_id,
           release_hook, hook_state, contract_stage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (agent, version, stage, previous, cause, why, by, now, escalation_id, hook, "pending" if hook else None,
         contract_stage))
    change_id = int(cur.lastrowid or 0)
    audit.append(conn, ts=now, actor=by, kind="stage-change", subject=f"{agent} {version}",
                 detail={"agent": agent, "version": version, "stage": stage, "previous": previous, "cause": cause,
                         "why": why, "escalation_id": escalation_id, "change": change_id, **(detail or {})})
    return change_id


def _contract_said(conn: sqlite3.Connection, agent: str, version: str) -> str | None:
    """The stage the contract named when it last caused a row for this version (None: never)."""
    row = conn.execute(
        "SELECT contract_stage FROM stage_changes WHERE agent = ? AND version = ? AND cause = 'contract' "
        "ORDER BY id DESC LIMIT 1", (agent, version)).fetchone()
    return row[0] if row is not None else None


def sync_contract(conn: sqlite3.Connection, contract: Contract | None, agent: str, version: str,
                  *, now: float) -> bool:
    """Record the contract's stage for this version when first seen or when the contract's stage was edited.

    An edit counts as a change (the latest change wins), except that a
    pending roll back keeps the stage at assisted. True if a row was written.
    """
    if contract is None or version not in contract.versions:
        return False
    stage = contract.versions[version]
    if _contract_said(conn, agent, version) == stage:
        return False  # fast path outside a transaction: nothing changed
    with atomic(conn):
        if _contract_said(conn, agent, version) == stage:
            return False
        latest = _latest(conn, agent, version)
        held = _pending_rollback(conn, agent, version)
        shown = _capped(stage, DEMOTED_TO if held else None)
        why = (f"held at {DEMOTED_TO} by the pending roll back {held}; " if shown != stage else "") + \
            f"contract says {stage}"
        _record_change(conn, agent=agent, version=version, stage=shown,
                       previous=latest["stage"] if latest is not None else None, cause="contract", why=why,
                       by="contract", now=now, escalation_id=None, contract=contract,
                       detail={"contract": contract.path}, contract_stage=stage)
    audit.checkpoint(conn)
    return True


# -- raising an item -----------------------------------------------------------


@dataclass(frozen=True)
class Raised:
    escalation_id: str
    title: str
    transition: str
    demoted: bool


def verdict_summary(report: Any) -> dict[str, Any]:
    """What an item shows of the verdict it was raised on (a store.canary.CanaryReport), formatted then."""
    from agentdeck.store.canary import fmt_delta, fmt_value

    metrics = []
    for m in report.metrics:
        metrics.append({"key": m.key, "label": m.label + (" p50" if m.kind == "dist" else ""), "verdict": m.verdict,
                        "baseline": fmt_value(m, m.baseline) if m.n_baseline else "—",
                        "canary": fmt_value(m, m.canary) if m.n_canary else "—",
                        "delta": fmt_delta(m), "reason": m.reason})
    return {"verdict": report.verdict, "reason": report.reason, "score": report.score, "method": report.method,
            "window": report.window, "baseline": report.baseline, "canary": report.canary,
            "n_baseline": report.n_baseline, "n_canary": report.n_canary, "metrics": metrics}


def suite_summary(conn: sqlite3.Connection, agent: str, version: str) -> dict[str, Any] | None:
    """The latest recorded suite run of this version (None: never run), with up to 10 failing case ids."""
    from agentdeck.replay.suite.record import failing_cases, latest_run

    run = latest_run(conn, agent, version)
    if run is None:
        return None
    failing = [r["case_id"] for r in failing_cases(conn, run["id"])]
    return {"run": run["id"], "passed": run["passed"], "cases": run["cases"], "finished": run["finished"],
            "command": run["command"], "failing": failing[:10], "more_failing": max(len(failing) - 10, 0)}


def _first_canary_task(conn: sqlite3.Connection, agent: str, version: str) -> float | None:
    row = conn.execute("SELECT min(started) FROM tasks WHERE agent = ? AND version = ?", (agent, version)).fetchone()
    return row[0] if row else None


def wanted(conn: sqlite3.Connection, report: Any, contract: Contract | None, now: float
           ) -> tuple[str, str, str | None, str, str] | None:
    """(action, transition, from, to, trigger) the verdict asks a person for; None when it asks for nothing."""
    agent, version = report.agent, report.canary
    eff = effective(conn, contract, agent, version)
    if report.verdict == ROLLBACK:
        return ROLLBACK, ROLLBACK, eff.stage, ROLLED_BACK_TO, "verdict roll back"
    trigger = None
    if report.verdict == PROMOTE:
        trigger = "verdict promote"
    elif report.verdict == "hold" and contract is not None and contract.canary.escalate_hold_after:
        first = _first_canary_task(conn, agent, version)
        if first is not None and now - first >= contract.canary.escalate_hold_after:
            trigger = f"verdict hold for longer than {contract.canary.escalate_hold_after:g} s"
    to = next_stage(eff.stage)
    if trigger is None or to is None:
        return None
    return PROMOTE, f"{PROMOTE} {eff.stage}->{to}", eff.stage, to, trigger


def title_of(action: str, agent: str, version: str, from_stage: str | None, to: str) -> str:
    if action == ROLLBACK:
        return f"roll back {agent} {version}"
    return f"promote {agent} {version} from {from_stage} to {to}"


def enqueue(conn: sqlite3.Connection, report: Any, contract: Contract | None, *, now: float,
            suite: dict[str, Any] | Callable[[], dict[str, Any] | None] | None = None) -> Raised | None:
    """Raise the item the verdict asks for, once per (agent, version, transition). None: nothing raised.

    ``suite`` (the evidence attached) may be a function, called only when an
    item is really raised: the console's tick asks on every change of the store.

    A roll back also demotes the canary to assisted at once (recorded and
    audited as an automatic demotion) until a person decides the item.
    """
    want = wanted(conn, report, contract, now)
    if want is None:
        return None
    action, transition, from_stage, to, trigger = want
    agent, version = report.agent, report.canary
    exists = "SELECT 1 FROM release_items WHERE agent = ? AND version = ? AND transition = ?"
    if conn.execute(exists, (agent, version, transition)).fetchone():
        return None  # fast path: raised before (by this console, another, or a previous run)
    if callable(suite):
        suite = suite()
    settings = contract.canary if contract is not None else None
    risk = settings.release_risk if settings is not None else "high"
    deadline = now + (settings.release_deadline if settings is not None else 86400.0)
    title = title_of(action, agent, version, from_stage, to)
    summary = verdict_summary(report)
    # Named after what it decides and when it was raised: the same inputs give the same id (stable
    # snapshots with a fixed clock). The insert is a plain INSERT: an id a trace took first fails loudly
    # (the tick logs it and the next one, at another time, gets another id), never merges into it.
    digest = hashlib.sha256(f"{agent}\x00{version}\x00{transition}\x00{now!r}".encode()).hexdigest()
    escalation_id = f"rel-{digest[:12]}"
    proposed = {"system": KIND, "operation": action,
                "params": {"agent": agent, "version": version, "baseline": report.baseline,
                           "from": from_stage, "to": to}}
    demoted = False
    with atomic(conn):
        if conn.execute(exists, (agent, version, transition)).fetchone():
            return None  # another console raised it while this one computed the verdict
        conn.execute(
            """INSERT INTO escalations (escalation_id, task_id, seq, ts, agent, risk, risk_rank, reason, deadline,
               policy_id, justification, proposed_action, callback_url, kind)
               VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)""",
            (escalation_id, f"release:{agent}:{version}", now, agent, risk, RISK_RANK[risk], title, deadline,
             f"canary {report.method}", f"{trigger}: {report.reason}", json.dumps(proposed), KIND))
        conn.execute(
            """INSERT INTO release_items (escalation_id, agent, version, baseline, transition, action, from_stage,
               to_stage, trigger, created, verdict, suite) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (escalation_id, agent, version, report.baseline, transition, action, from_stage, to, trigger, now,
             json.dumps(summary, default=str), json.dumps(suite) if suite is not None else None))
        audit.append(conn, ts=now, actor=ACTOR, kind="release-item", subject=escalation_id,
                     detail={"title": title, "agent": agent, "version": version, "transition": transition,
                             "trigger": trigger, "verdict": report.verdict, "reason": report.reason,
                             "score": report.score, "n_baseline": report.n_baseline, "n_canary": report.n_canary,
                             "suite": suite})
        if action == ROLLBACK:
            current = effective(conn, contract, agent, version)
            if current.stage is None or rank(current.stage) > rank(DEMOTED_TO):
                _record_change(conn, agent=agent, version=version, stage=DEMOTED_TO, previous=current.stage,
                               cause="demoted", why=f"{report.reason} (until a person decides {escalation_id})",
                               by=ACTOR, now=now, escalation_id=escalation_id, contract=contract)
                demoted = True
    audit.checkpoint(conn)
    return Raised(escalation_id, title, transition, demoted)


# -- carrying out a decision ---------------------------------------------------


def carry_out(conn: sqlite3.Connection, escalation_id: str, decision: str, *, by: str, now: float,
              reason: str = "") -> int | None:
    """Apply a decided item to the ledger, inside the decision's own transaction. The new change's id, or None.

    Approve: a promotion sets its stage; a roll back sets shadow. Deny: a
    promotion changes nothing; a roll back lifts its automatic demotion.
    """
    if not conn.in_transaction:
        raise RuntimeError("carry_out must run inside the transaction that records the decision")
    item = conn.execute("SELECT * FROM release_items WHERE escalation_id = ?", (escalation_id,)).fetchone()
    if item is None:
        return None
    agent, version = item["agent"], item["version"]
    contract = _contract_for(conn, agent)
    current = effective(conn, contract, agent, version)
    said = f" ({reason})" if reason else ""
    if decision == "approve":
        stage, cause = (ROLLED_BACK_TO, "rolled back") if item["action"] == ROLLBACK else (item["to_stage"], "promoted")
        held = _pending_rollback(conn, agent, version)
        shown = _capped(stage, DEMOTED_TO if held and held != escalation_id else None)
        why = f"{title_of(item['action'], agent, version, item['from_stage'], item['to_stage'])}: approved by {by}{said}"
        if shown != stage:
            why += f"; held at {DEMOTED_TO} by the pending roll back {held}"
        return _record_change(conn, agent=agent, version=version, stage=shown, previous=current.stage, cause=cause,
                              why=why, by=by, now=now, escalation_id=escalation_id, contract=contract)
    if item["action"] == ROLLBACK:
        demotion = conn.execute(
            "SELECT previous FROM stage_changes WHERE escalation_id = ? AND cause = 'demoted' ORDER BY id LIMIT 1",
            (escalation_id,)).fetchone()
        if demotion is None or demotion["previous"] is None:
            return None  # it was never demoted (already at assisted or below): nothing to lift
        return _record_change(conn, agent=agent, version=version, stage=demotion["previous"],
                              previous=current.stage, cause="restored",
                              why=f"roll back of {agent} {version} denied by {by}{said}: demotion lifted",
                              by=by, now=now, escalation_id=escalation_id, contract=contract)
    return None  # a denied promotion keeps the version where it is


def _contract_for(conn: sqlite3.Connection, agent: str) -> Contract | None:
    """The contract in force for the release hook (as ingestion finds contracts for this store)."""
    from agentdeck.store.contract import book_for_store

    try:
        return book_for_store(conn).get(agent)
    except Exception:  # an unreadable contract folder: the change is still recorded, without a hook
        return None


# -- publishing: autonomy.jsonl and the release hook ------------------------------


class AutonomyLine(BaseModel):
    """One change of a version's effective stage (autonomy.jsonl line and release hook body alike)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = AUTONOMY_VERSION
    seq: int = Field(description="The change's number in this store: later changes have larger numbers.")
    agent: str
    version: str
    stage: Literal["shadow", "assisted", "partial", "bounded"]
    previous: str | None = None
    cause: str = Field(description="contract | promoted | rolled back | demoted | restored")
    why: str = ""
    by: str
    at: str = Field(description="When, RFC 3339 UTC with milliseconds.")
    escalation_id: str | None = Field(None, description="The release item behind it, if any.")
    idempotency_key: str

    def to_json(self) -> str:
        return self.model_dump_json()


def line_for(row: sqlite3.Row) -> AutonomyLine:
    from agentdeck.store.outbox import iso

    key = hashlib.sha256(f"{row['agent']}\x00{row['version']}\x00{row['id']}\x00{row['at']!r}".encode()).hexdigest()
    return AutonomyLine(seq=row["id"], agent=row["agent"], version=row["version"], stage=row["stage"],
                        previous=row["previous"], cause=row["cause"], why=row["why"], by=row["by"], at=iso(row["at"]),
                        escalation_id=row["escalation_id"], idempotency_key=f"agentdeck-stage-{key[:32]}")


def unpublished(conn: sqlite3.Connection, limit: int = 200) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT id FROM stage_changes WHERE published_at IS NULL OR hook_state = 'pending' ORDER BY id LIMIT ?",
        (limit,))]


def changes_for(conn: sqlite3.Connection, escalation_id: str) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM stage_changes WHERE escalation_id = ? ORDER BY id", (escalation_id,)).fetchall()


def request_retry(conn: sqlite3.Connection, escalation_id: str, *, by: str, now: float) -> int:
    """Put this item's failed or blocked release hook calls back to pending (audited). How many."""
    with atomic(conn):
        cur = conn.execute(
            """UPDATE stage_changes SET hook_state = 'pending', hook_error = NULL, hook_claimed_until = NULL
               WHERE escalation_id = ? AND hook_state IN ('failed', 'blocked')""", (escalation_id,))
        if cur.rowcount:
            audit.append(conn, ts=now, actor=by, kind="release-hook-retry", subject=escalation_id,
                         detail={"changes": cur.rowcount})
    if cur.rowcount:
        audit.checkpoint(conn)
    return cur.rowcount


def pending_items(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute(
        """SELECT r.*, e.status FROM release_items r JOIN escalations e ON e.escalation_id = r.escalation_id
           ORDER BY r.created""").fetchall()
