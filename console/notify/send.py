"""Sending one claimed notification over HTTP: allowlist, no proxies, no redirects, one attempt per tick.

The retry schedule lives in the store, not in a sleeping loop: a retryable
failure (a network error, 408, 425, 429, 5xx) puts the send back to
``pending`` with ``next_at = now + backoff * 2**(attempt-1)``; after
``attempts`` tries, or on any other answer (4xx, 3xx: redirects are not
followed), it is ``failed`` with the reason, and ``retry`` puts it back.
"""

from __future__ import annotations

import json
import sqlite3

import httpx

from agentdeck.console.notify import payloads, queue
from agentdeck.console.notify.settings import NotifySettings, RouteSettings

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


def client(settings: NotifySettings) -> httpx.Client:
    # trust_env=False: no proxy (or netrc credentials) from the environment, so
    # the request goes to the allowlisted host and nowhere else.
    return httpx.Client(timeout=settings.timeout, follow_redirects=False, trust_env=False)


def send_one(conn: sqlite3.Connection, claimed: queue.Claimed, route: RouteSettings, settings: NotifySettings,
             allow: frozenset[str], http: httpx.Client, now: float) -> str:
    """Send one claimed row and record the result; returns the new state."""
    why = queue.refusal(route, allow)  # the allowlist may have changed since the row was queued
    if why is not None:
        queue.record(conn, claimed.send_id, state="blocked", now=now, error=f"not called: {why}")
        return "blocked"
    alert = payloads.decode(claimed.alert)
    body = payloads.body(route, alert, claimed.action, source=settings.source)
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": payloads.idempotency_key(alert["incident"], alert["occurrence"], claimed.action, route.id),
        "User-Agent": "agentdeck-notify/1",
    }
    status: int | None = None
    try:
        resp = http.post(str(route.url), content=json.dumps(body).encode("utf-8"), headers=headers)
    except httpx.HTTPError as exc:
        error, retryable = f"{type(exc).__name__}: {exc}"[:300], True
    except Exception as exc:  # e.g. a URL httpx cannot encode: retrying will not help
        error, retryable = f"{type(exc).__name__}: {exc}"[:300], False
    else:
        status = resp.status_code
        if 200 <= status < 300:
            queue.record(conn, claimed.send_id, state="sent", now=now, status=status)
            return "sent"
        error = f"{route.label} answered HTTP {status}"
        if 300 <= status < 400:
            error += " (a redirect; not followed)"
        retryable = status in RETRYABLE_STATUS
    if retryable and claimed.attempts < settings.attempts:
        wait = settings.backoff * (2 ** (claimed.attempts - 1))
        queue.record(conn, claimed.send_id, state="pending", now=now, status=status,
                     error=f"{error}; attempt {claimed.attempts} of {settings.attempts}, next in {wait:g} s",
                     next_at=now + wait)
        return "pending"
    queue.record(conn, claimed.send_id, state="failed", now=now, status=status, error=error)
    return "failed"
