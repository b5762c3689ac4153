"""Undoing an action: prepare (show exactly what will run), then commit.

``prepare`` reads the action's compensation hook and says what would be done,
to which system, at what risk — or why it cannot be (no hook, already
compensated and by whom, host not on the allowlist, unknown handler). Nothing
runs until ``commit``, which

1. records the attempt (status ``running``) and an audit record, and commits;
2. calls the system (httpx, allowlisted host, timeout, no redirects, the
   action's ``Idempotency-Key``) or the registered handler;
3. records the result and a second audit record.

Because step 1 commits before step 2, a compensation never takes effect
without a record; because every attempt carries the same idempotency key, a
retry after a failure or a crash can never undo twice. Call ``commit`` from a
worker thread with that thread's own read-write connection.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, UTC
from typing import Any

from agentdeck.replay import handlers
from agentdeck.replay.hosts import check_url
from agentdeck.replay.http_clients import ClientPool, client_for_call
from agentdeck.replay.redact import redact, redact_text
from agentdeck.store import audit
from agentdeck.store.txn import atomic

DEFAULT_TIMEOUT = 10.0
MAX_STORED_BODY = 4000
# Headers a trace may not set on our request: we own framing and the idempotency key.
_RESERVED_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "idempotency-key"}
# HTTP tokens (RFC 9110) for methods and header names; header values: visible ASCII, space and tab.
# Anything else in a trace's hook is refused up front — httpx would raise on it mid-commit.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")


@dataclass(frozen=True)
class Plan:
    """Exactly what a compensation will do. Shown in the confirmation dialog."""

    action_id: str
    task_id: str
    system: str
    operation: str
    amount: float | None
    risk: str
    kind: str  # "http" | "handler"
    idempotency_key: str
    method: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    handler: str | None = None
    args: dict = field(default_factory=dict)

    @property
    def reason_required(self) -> bool:
        """Undoing needs a reason where approving needed one: high or critical risk (as escalated)."""
        from agentdeck.store.decisions import RISKS_NEEDING_REASON_TO_APPROVE

        return self.risk.split(" ", 1)[0] in RISKS_NEEDING_REASON_TO_APPROVE

    @property
    def target(self) -> str:
        if self.kind == "http":
            return f"{self.method} {self.url}"
        return f"handler {self.handler}"

    @property
    def masked_target(self) -> str:
        """The target as stored and shown: a password in the URL is masked."""
        return redact_text(self.target)[0]

    def stored(self) -> dict:
        """The plan as the store keeps it (``compensations.plan``): secrets masked by the redaction policy.

        Running the compensation uses this ``Plan`` (the real headers from the action's hook), never the stored copy.
        """
        return redact(self.as_dict())[0]

    def as_dict(self) -> dict:
        return {
            "kind": self.kind, "method": self.method, "url": self.url, "headers": self.headers,
            "body": self.body, "handler": self.handler, "args": self.args,
            "idempotency_key": self.idempotency_key,
        }


@dataclass(frozen=True)
class Refusal:
    reason: str


@dataclass(frozen=True)
class Outcome:
    ok: bool
    attempt: int
    status: int | None = None
    body: Any = None
    error: str | None = None
    replayed: bool = False  # the system answered from its idempotency record


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def already_done(row: sqlite3.Row) -> Refusal | None:
    if row["compensated_at"] is not None and (row["compensation_status"] or "ok") == "ok":
        return Refusal(f"already compensated by {row['compensated_by'] or 'unknown'} at {_when(row['compensated_at'])}")
    return None


def _risk(conn: sqlite3.Connection, row: sqlite3.Row) -> str:
    esc = conn.execute(
        "SELECT risk FROM escalations WHERE task_id = ? ORDER BY risk_rank DESC LIMIT 1", (row["task_id"],)
    ).fetchone()
    amount = f", amount {row['amount']:g}" if row["amount"] is not None else ""
    rated = f"{esc['risk']} (as escalated)" if esc else "not rated by the agent"
    return f"{rated}; reverses {row['operation']} on {row['system']}{amount}"


def prepare(conn: sqlite3.Connection, action_id: str, allow_hosts: frozenset[str] | set[str]) -> Plan | Refusal:
    row = conn.execute("SELECT * FROM actions WHERE action_id = ?", (action_id,)).fetchone()
    if row is None:
        return Refusal(f"no action {action_id!r} in the store")
    done = already_done(row)
    if done:
        return done
    if not row["compensation"]:
        return Refusal("this action declared no compensation hook")
    try:
        hook = json.loads(row["compensation"])
    except ValueError:
        return Refusal("the compensation hook is unreadable")
    key = hook.get("idempotency_key") or row["idempotency_key"]
    if not key:
        return Refusal("the compensation hook has no idempotency key, so a retry could undo twice")
    common = dict(action_id=action_id, task_id=row["task_id"], system=row["system"], operation=row["operation"],
                  amount=row["amount"], risk=_risk(conn, row), idempotency_key=key)
    if hook.get("type") == "handler":
        name = hook.get("handler") or ""
        if handlers.get(name) is None:
            return Refusal(f"no compensation handler named {name!r} is registered (see replay/handlers.py)")
        return Plan(kind="handler", handler=name, args=hook.get("args") or {}, **common)
    url = hook.get("url") or ""
    why = check_url(url, allow_hosts)
    if why:
        return Refusal(f"will not call {url}: {why}")
    method = hook.get("method") or "POST"
    if not isinstance(method, str) or not _TOKEN.fullmatch(method):
        return Refusal(f"the compensation hook's HTTP method {method!r} is not a valid method")
    raw_headers = hook.get("headers") or {}
    if not isinstance(raw_headers, dict):
        return Refusal("the compensation hook's headers are not a name → value object")
    headers = {str(k): str(v) for k, v in raw_headers.items() if str(k).lower() not in _RESERVED_HEADERS}
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            return Refusal(f"the compensation hook's header name {name!r} is not a valid HTTP header name")
        if not _HEADER_VALUE.fullmatch(value):
            return Refusal(f"the compensation hook's header {name} has a value HTTP cannot carry "
                           f"(only printable ASCII is allowed): {value!r}")
    if not _HEADER_VALUE.fullmatch(str(key)):
        return Refusal(f"the idempotency key {key!r} cannot be sent as an HTTP header (only printable ASCII)")
    headers["Idempotency-Key"] = str(key)
    return Plan(kind="http", method=method, url=url, headers=headers, body=hook.get("body"), **common)


def _record_start(conn: sqlite3.Connection, plan: Plan, operator: str, now: float, stale_after: float,
                  reason: str = "") -> int | Refusal:
    with atomic(conn):
        row = conn.execute("SELECT * FROM actions WHERE action_id = ?", (plan.action_id,)).fetchone()
        refusal = already_done(row) if row is not None else Refusal("the action is no longer in the store")
        if refusal:
            return refusal
        running = conn.execute(
            """SELECT requested_by, requested_at FROM compensations
               WHERE action_id = ? AND status = 'running' AND requested_at > ? ORDER BY attempt DESC LIMIT 1""",
            (plan.action_id, now - stale_after),
        ).fetchone()
        if running is not None:
            return Refusal(f"a compensation is already running (started by {running[0]} at {_when(running[1])}); "
                           f"try again in a minute if it does not finish")
        attempt = conn.execute(
            "SELECT coalesce(max(attempt), 0) + 1 FROM compensations WHERE action_id = ?", (plan.action_id,)
        ).fetchone()[0]
        conn.execute(
            """INSERT INTO compensations (action_id, task_id, attempt, requested_by, requested_at, target, plan,
               idempotency_key, status, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)""",
            (plan.action_id, plan.task_id, attempt, operator, now, plan.masked_target,
             json.dumps(plan.stored(), default=str), plan.idempotency_key, reason or None),
        )
        conn.execute("UPDATE actions SET compensation_status = 'running' WHERE action_id = ?", (plan.action_id,))
        audit.append(conn, ts=now, actor=operator, kind="compensation.requested", subject=plan.action_id,
                     detail={"task_id": plan.task_id, "attempt": attempt, "target": plan.masked_target,
                             "idempotency_key": plan.idempotency_key, "system": plan.system,
                             **({"reason": reason} if reason else {})})
    audit.checkpoint(conn)
    return attempt


def _run_http(plan: Plan, allow_hosts, timeout: float, clients: ClientPool | None = None) -> Outcome:
    why = check_url(plan.url or "", allow_hosts)
    if why:
        return Outcome(False, 0, error=why)
    try:
        # trust_env=False: no proxy from the environment — only the allowlisted host is contacted
        # (replay/http_clients.py). The console's shared clients, one per timeout; else one for this call.
        with client_for_call(timeout, clients=clients) as client:  # (a shared one held: closed after this call)
            resp = client.request(plan.method or "POST", plan.url or "", json=plan.body, headers=plan.headers)
    except Exception as exc:  # httpx also raises e.g. UnicodeEncodeError; the attempt must end 'failed'
        return Outcome(False, 0, error=f"{type(exc).__name__}: {exc}"[:500])
    try:
        body: Any = resp.json()
    except ValueError:
        body = resp.text[:MAX_STORED_BODY]
    ok = 200 <= resp.status_code < 300
    error = None if ok else f"the system answered {resp.status_code}"
    return Outcome(ok, 0, resp.status_code, body, error, resp.headers.get("Idempotent-Replayed") == "true")


def _run_handler(plan: Plan) -> Outcome:
    if handlers.get(plan.handler or "") is None:
        return Outcome(False, 0, error=f"no compensation handler named {plan.handler!r} is registered")
    try:
        result = handlers.call(plan.handler or "", plan.args, plan.idempotency_key)
    except Exception as exc:  # operator code: report, never crash the console
        return Outcome(False, 0, error=f"{type(exc).__name__}: {exc}"[:500])
    status = result.get("status", 200)
    ok = isinstance(status, int) and status < 400
    return Outcome(ok, 0, status if isinstance(status, int) else None, result.get("body"),
                   None if ok else f"the handler reported {status}")


def _record_result(conn: sqlite3.Connection, plan: Plan, attempt: int, outcome: Outcome, operator: str, now: float) -> None:
    # What the system answered is stored and shown masked, like the plan: it may echo a secret back.
    body = json.dumps(redact(outcome.body)[0], default=str)[:MAX_STORED_BODY] if outcome.body is not None else None
    error = redact_text(outcome.error)[0] if outcome.error else outcome.error
    with atomic(conn):
        conn.execute(
            """UPDATE compensations SET status = ?, finished_at = ?, response_status = ?, response_body = ?, error = ?
               WHERE action_id = ? AND attempt = ?""",
            ("ok" if outcome.ok else "failed", now, outcome.status, body, error, plan.action_id, attempt),
        )
        if outcome.ok:
            conn.execute(
                """UPDATE actions SET compensated_at = ?, compensated_by = ?, compensation_status = 'ok'
                   WHERE action_id = ? AND (compensated_at IS NULL OR compensation_status != 'ok')""",
                (now, operator, plan.action_id),
            )
        else:
            conn.execute("""UPDATE actions SET compensation_status = 'failed'
                            WHERE action_id = ? AND (compensated_at IS NULL OR compensation_status != 'ok')""",
                         (plan.action_id,))
        audit.append(conn, ts=now, actor=operator, kind="compensation.result", subject=plan.action_id,
                     detail={"task_id": plan.task_id, "attempt": attempt, "ok": outcome.ok, "status": outcome.status,
                             "error": error, "replayed": outcome.replayed})
    audit.checkpoint(conn)


def mask_stored_plans(conn: sqlite3.Connection) -> int:
    """Mask secrets in compensation rows stored before plans were stored masked; returns how many rows changed.

    Idempotent (a masked row has nothing left to mask). Audit records are not touched: they never held headers.
    """
    changed = 0
    with atomic(conn):
        rows = conn.execute("SELECT id, plan, response_body, error, target FROM compensations").fetchall()
        for row_id, plan_text, body, error, target in rows:
            try:
                plan, hidden = redact(json.loads(plan_text))
                new_plan = json.dumps(plan, default=str) if hidden else plan_text
            except ValueError:  # not JSON: mask it as text
                new_plan, hidden = redact_text(plan_text)
            texts = [redact_text(t) if t else (t, 0) for t in (body, error, target)]
            if hidden or any(n for _, n in texts):
                conn.execute("UPDATE compensations SET plan = ?, response_body = ?, error = ?, target = ? WHERE id = ?",
                             (new_plan, *(t for t, _ in texts), row_id))
                changed += 1
    return changed


def commit(
    conn: sqlite3.Connection,
    plan: Plan,
    *,
    operator: str,
    now: float,
    allow_hosts: frozenset[str] | set[str],
    timeout: float = DEFAULT_TIMEOUT,
    finished_at: float | None = None,
    reason: str = "",
    clients: ClientPool | None = None,
) -> Outcome | Refusal:
    """Record, run, record. Returns the outcome, or a refusal if it was already done meanwhile.

    ``reason`` (the operator's why) is recorded with the attempt and in its audit record. ``clients``: HTTP
    clients to share (the console's, closed when it exits); None: one is made for this call and closed after.
    """
    # An attempt still 'running' after timeout + a margin was cut short (crash): it no longer blocks a retry,
    # and the shared idempotency key keeps that retry from undoing twice.
    started = _record_start(conn, plan, operator, now, stale_after=timeout + 30, reason=reason.strip())
    if isinstance(started, Refusal):
        return started
    outcome = _run_http(plan, allow_hosts, timeout, clients) if plan.kind == "http" else _run_handler(plan)
    outcome = Outcome(outcome.ok, started, outcome.status, outcome.body, outcome.error, outcome.replayed)
    _record_result(conn, plan, started, outcome, operator, now if finished_at is None else finished_at)
    return outcome
