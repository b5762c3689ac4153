"""``tick``: evaluate the rules, record what fired, send what is due. One call, any thread but the UI's.

The console calls it from a worker every few seconds; ``agentdeck notify``
calls it in a loop. Several callers on one store (consoles, the headless
command, restarts) send each notification once: firing is an insert that
the store keeps unique, and sending starts with a claim in a transaction.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import httpx

from agentdeck.console.notify import queue, rules, send
from agentdeck.console.notify.local import LocalRoutes
from agentdeck.console.notify.settings import NotifySettings
from agentdeck.store.txn import atomic


@dataclass
class TickResult:
    fired: list[int] = field(default_factory=list)  # alert ids this tick created
    resolved: int = 0  # incidents that ended this tick
    sent: int = 0
    retrying: int = 0  # failed this time, will be tried again
    failed: int = 0
    blocked: int = 0
    bell: bool = False  # ring the terminal bell (a new alert matched a bell route)
    desktop: int = 0  # notify-send pop-ups started
    problems: list[str] = field(default_factory=list)  # rules that could not run, and why

    @property
    def changed(self) -> bool:
        return bool(self.fired or self.resolved or self.sent or self.retrying or self.failed or self.blocked)


def enabled_rules(settings: NotifySettings) -> set[str]:
    return {rule for route in settings.routes for rule in route.rules}


def tick(conn: sqlite3.Connection, settings: NotifySettings, now: float, *,
         allow_hosts: frozenset[str] | set[str] = frozenset(), client: httpx.Client | None = None,
         local: LocalRoutes | None = None) -> TickResult:
    """Evaluate every rule at ``now`` and send what is due.

    ``allow_hosts`` adds the console's own allowlist to ``settings.allow_hosts``.
    ``local`` keeps this process's bell/desktop state between ticks (None: no
    local routes). ``client`` is for tests; by default one is made per tick.
    """
    result = TickResult()
    enabled = enabled_rules(settings)
    if not enabled:
        return result
    allow = queue.allowed_hosts(settings, allow_hosts)
    if local is not None:
        local.start(conn)  # alerts already in the store when this process started are not rung for
    # The canary analysis reads for a while: before the write transaction, not inside it.
    reports = None
    if "canary" in enabled and rules.canary_due(conn, settings.rules, now):
        try:
            reports = rules.canary_reports(conn, settings.rules, now)
        except Exception as exc:  # a canary that cannot be judged must not stop the other rules
            result.problems.append(f"notify rule canary: {type(exc).__name__}: {exc}")
    with atomic(conn):
        evaluation = rules.evaluate(conn, settings.rules, now, enabled=enabled, canary=reports)
        result.fired = queue.enqueue(conn, evaluation.fires, settings, allow, now)
        result.resolved = queue.resolve(conn, evaluation.resolved, settings, allow, now)
        if result.fired:  # routes off the allowlist: queued as blocked, never called
            marks = ",".join("?" * len(result.fired))
            result.blocked = conn.execute(
                f"SELECT count(*) FROM notify_sends WHERE state = 'blocked' AND alert_id IN ({marks})", result.fired
            ).fetchone()[0]
    result.problems.extend(evaluation.problems)
    if local is not None:
        result.bell, result.desktop = local.handle(conn, settings)
    _send_due(conn, settings, allow, now, client, result)
    return result


def _send_due(conn: sqlite3.Connection, settings: NotifySettings, allow: frozenset[str], now: float,
              client: httpx.Client | None, result: TickResult) -> None:
    routes = {r.id: r for r in settings.routes if not r.local}
    if not routes:
        return
    claimed = queue.claim_due(conn, now, routes)
    if not claimed:
        return
    http = client or send.client(settings)
    failing: set[str] = set()
    try:
        for c in claimed:
            if c.route in failing:  # one timeout per route per tick, not one per queued notification
                queue.release(conn, c.send_id)
                continue
            try:
                state = send.send_one(conn, c, routes[c.route], settings, allow, http, now)
            except sqlite3.Error:
                raise
            except Exception as exc:  # never lose the row: record the surprise as a failure the operator sees
                queue.record(conn, c.send_id, state="failed", now=now, error=f"{type(exc).__name__}: {exc}"[:300])
                state = "failed"
            if state == "sent":
                result.sent += 1
            elif state == "pending":
                result.retrying += 1
                failing.add(c.route)
            elif state == "blocked":
                result.blocked += 1
            else:
                result.failed += 1
    finally:
        if client is None:
            http.close()
