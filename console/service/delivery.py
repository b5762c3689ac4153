"""Delivering recorded decisions back to the agent: the outbox, then the callback.

Order of events for one decision (see ``docs/decisions.md``):

1. the decision is committed with ``delivery = 'pending'`` (store/decisions.py);
2. its line is appended to the outbox (once: the key is checked under a lock)
   and ``outbox_at`` recorded;
3. if the escalation has a callback URL, it is POSTed only when its host is
   on the operator's allowlist (``replay.hosts.check_url``, the check
   compensation uses; else ``blocked``, never called), with no proxy, an
   ``Idempotency-Key`` header, a timeout and retries with backoff;
4. ``delivery`` becomes ``delivered``, ``failed`` (retry with ``R``) or
   ``blocked``.

A crash anywhere leaves ``delivery = 'pending'``; the next console start
delivers it again, and the key makes the repeat harmless. All of this runs
in worker threads, never on the UI thread. Every write goes through
``store.txn.atomic``. ``httpx`` is imported only when a callback is called
(it costs a fifth of a second at start-up).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agentdeck.store.txn import atomic

if TYPE_CHECKING:
    import httpx

    from agentdeck.replay.http_clients import ClientPool

    from agentdeck.store import outbox

# Longer than one delivery can take (attempts x timeout + backoff), so a live
# console's claim never lapses mid-delivery; a dead console's lapses soon.
CLAIM_SECONDS = 60.0
log = logging.getLogger(__name__)
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass
class DeliverySettings:
    outbox: Path | None
    allow_hosts: frozenset[str]
    attempts: int = 4
    backoff: float = 0.5  # seconds before the 2nd attempt; doubles each time
    timeout: float = 5.0


def _set(conn: sqlite3.Connection, escalation_id: str, **cols) -> None:
    sets = ", ".join(f"{k} = ?" for k in cols)
    with atomic(conn):
        conn.execute(f"UPDATE escalations SET {sets} WHERE escalation_id = ?", (*cols.values(), escalation_id))


def _claim(conn: sqlite3.Connection, escalation_id: str, now: float) -> bool:
    """Take a short lease on a pending delivery so two consoles do not run it at once."""
    with atomic(conn):
        cur = conn.execute(
            """UPDATE escalations SET delivery_claimed_until = ?
               WHERE escalation_id = ? AND delivery = 'pending' AND coalesce(delivery_claimed_until, 0) < ?""",
            (now + CLAIM_SECONDS, escalation_id, now),
        )
        return cur.rowcount == 1


def deliver_one(conn: sqlite3.Connection, escalation_id: str, settings: DeliverySettings,
                *, client: httpx.Client | None = None, sleep: Callable[[float], None] = time.sleep,
                clock: Callable[[], float] = time.time, clients: ClientPool | None = None) -> str | None:
    """Deliver one decided escalation. Returns the delivery state, or None if not ours to deliver now.

    ``clock`` is wall time for the delivery claim (not the console's display clock). ``clients``: shared HTTP
    clients (the console's), asked for one only when a callback is called; without ``client`` or ``clients``
    one is made for the call and closed after.
    """
    from agentdeck.store import decisions, outbox  # (pydantic models: imported on the first delivery)

    if not _claim(conn, escalation_id, clock()):
        return None
    row = decisions.escalation(conn, escalation_id)
    if row is None or row["status"] not in ("approved", "denied") or not row["idempotency_key"]:
        _set(conn, escalation_id, delivery_claimed_until=None)
        return None
    line = outbox.line_for(row)
    wrote_outbox = row["outbox_at"] is not None
    try:
        if settings.outbox is not None and not wrote_outbox:
            # A recorded intent means an earlier attempt may have appended the
            # line and died before saying so: only then look for the key.
            retry = row["outbox_intent"] is not None
            if not retry:
                _set(conn, escalation_id, outbox_intent=time.time())
            outbox.append_once(settings.outbox, line, check=retry)
            _set(conn, escalation_id, outbox_at=time.time())
            wrote_outbox = True
    except OSError as exc:
        state, error = "failed", f"outbox {settings.outbox}: {exc.strerror or exc}"
    else:
        state, error = _callback(conn, row, line, settings, client, sleep, wrote_outbox, clients)
    done = time.time() if state == "delivered" else None
    _set(conn, escalation_id, delivery=state, delivery_error=error, delivered_at=done, delivery_claimed_until=None)
    return state


def _callback(conn, row, line: outbox.OutboxLine, settings: DeliverySettings, client, sleep, wrote_outbox: bool,
              clients: ClientPool | None = None):
    from agentdeck.replay.hosts import check_url  # (imports httpx: only when there is a callback)

    url = row["callback_url"]
    if not url:
        if wrote_outbox:
            return "delivered", None
        return "failed", "the outbox is off and the escalation has no callback URL: nowhere to deliver"
    why = check_url(url, settings.allow_hosts)
    if why is not None:
        where = "written to the outbox only" if wrote_outbox else "not delivered"
        return "blocked", f"callback not called: {why}; {where}"
    from agentdeck.replay.http_clients import client_for_call  # (httpx: only when a callback is called, slow to import)

    # The console's shared client (DeckService.http), held for this call, else one for it. Either way
    # trust_env=False: no proxy (or netrc credentials) from the environment, so the request goes to the
    # allowlisted host only (replay/http_clients.py).
    with client_for_call(settings.timeout, client, clients) as http:
        return _post_with_retries(conn, row["escalation_id"], url, line, settings, http, sleep)


def _post_with_retries(conn, escalation_id: str, url: str, line: outbox.OutboxLine, settings: DeliverySettings,
                       client: httpx.Client, sleep) -> tuple[str, str | None]:
    def count_attempt() -> None:
        with atomic(conn):
            conn.execute("UPDATE escalations SET delivery_attempts = delivery_attempts + 1 WHERE escalation_id = ?",
                         (escalation_id,))

    posted = post_with_retries(client, url, line.to_json().encode("utf-8"), line.idempotency_key, settings, sleep,
                               count_attempt)
    return posted.state, posted.error


@dataclass(frozen=True)
class Posted:
    """What one delivery by POST came to: its state, the last error, and the last answer received."""

    state: str  # delivered | failed
    error: str | None
    status: int | None = None
    answer: str = ""


def post_with_retries(client: httpx.Client, url: str, body: bytes, key: str, settings: DeliverySettings, sleep,
                      on_attempt: Callable[[], None] = lambda: None, *, what: str = "callback") -> Posted:
    """POST ``body`` with an ``Idempotency-Key``, retrying timeouts and 408/425/429/5xx with doubling backoff.

    The one way the console POSTs what it decided (decision callbacks, release hooks). The caller has
    checked the URL against the allowlist; ``on_attempt`` records each attempt before it is made.
    """
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    import httpx

    error, status, answer = "not attempted", None, ""
    for attempt in range(max(settings.attempts, 1)):
        if attempt:
            sleep(settings.backoff * (2 ** (attempt - 1)))
        on_attempt()
        try:
            resp = client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
            continue
        except Exception as exc:  # e.g. a URL httpx cannot encode: retrying will not help
            error = f"{type(exc).__name__}: {exc}"[:300]
            break
        status, answer = resp.status_code, resp.text[:2000]
        if 200 <= resp.status_code < 300:
            return Posted("delivered", None, status, answer)
        error = f"{what} answered HTTP {resp.status_code}"
        if resp.status_code not in RETRYABLE_STATUS:
            break  # e.g. 400/404: repeating will not help; the operator can retry by hand
    return Posted("failed", error, status, answer)


def give_up(conn: sqlite3.Connection, escalation_id: str, error: str) -> str | None:
    """Record an unexpected delivery error as ``failed`` (retry with r); None if even that is impossible."""
    try:  # (atomic() never leaves a transaction open, so this write starts clean)
        _set(conn, escalation_id, delivery="failed", delivery_error=error, delivery_claimed_until=None)
        return "failed"
    except sqlite3.Error:
        return None  # the claim lapses and a later sweep or start tries again
