"""Publishing stage changes: ``<traces>/outbox/autonomy.jsonl`` and the contract's release hook.

Each row of ``stage_changes`` (store/release.py) is published once, as the
decisions outbox and callbacks are (console/service/delivery.py, whose
pieces this reuses):

1. a short claim in the store, so two consoles do not publish one change at once;
2. its line appended to ``autonomy.jsonl`` whole, under an exclusive lock,
   fsynced (``store.outbox.append_once``; an intent recorded before the
   append makes a retry after a crash look for the key first);
3. if the contract names a ``release_hook``, a POST of the same line —
   only when the host is on the operator's allowlist (``replay.hosts.check_url``,
   else ``blocked``), with an ``Idempotency-Key``, retried with backoff; the
   answer (status and body) is recorded and shown in the item's detail;
   ``failed``/``blocked`` are listed on the Problems screen (R retries).

Runs on worker threads only, never the UI thread.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agentdeck.console.service.delivery import CLAIM_SECONDS, DeliverySettings, post_with_retries
from agentdeck.store.txn import atomic

if TYPE_CHECKING:
    import httpx

    from agentdeck.replay.http_clients import ClientPool

log = logging.getLogger(__name__)
RELATIVE_PATH = Path("outbox") / "autonomy.jsonl"


def autonomy_path(decisions_outbox: Path | None) -> Path | None:
    """autonomy.jsonl sits beside the decisions outbox (None when the outbox is off)."""
    return Path(decisions_outbox).parent / RELATIVE_PATH.name if decisions_outbox is not None else None


def _set(conn: sqlite3.Connection, change_id: int, **cols) -> None:
    sets = ", ".join(f"{k} = ?" for k in cols)
    with atomic(conn):
        conn.execute(f"UPDATE stage_changes SET {sets} WHERE id = ?", (*cols.values(), change_id))


def _claim(conn: sqlite3.Connection, change_id: int, now: float) -> bool:
    with atomic(conn):
        cur = conn.execute(
            """UPDATE stage_changes SET hook_claimed_until = ?
               WHERE id = ? AND (published_at IS NULL OR hook_state = 'pending')
               AND coalesce(hook_claimed_until, 0) < ?""", (now + CLAIM_SECONDS, change_id, now))
        return cur.rowcount == 1


def publish_one(conn: sqlite3.Connection, change_id: int, autonomy: Path | None, settings: DeliverySettings, *,
                client: httpx.Client | None = None, sleep: Callable[[float], None] = time.sleep,
                clock: Callable[[], float] = time.time, clients: ClientPool | None = None) -> str | None:
    """Publish one stage change. Returns the hook's state ('' without a hook), or None if not ours now.

    ``clients``: shared HTTP clients (the console's), asked for one only when a hook is called."""
    from agentdeck.store import outbox, release

    if not _claim(conn, change_id, clock()):
        return None
    row = conn.execute("SELECT * FROM stage_changes WHERE id = ?", (change_id,)).fetchone()
    line = release.line_for(row)
    if row["published_at"] is None:
        if autonomy is None:
            # No trace folder, so no outbox: only the hook hears of it (docs/autonomy.md).
            _set(conn, change_id, published_at=clock(), publish_error="autonomy.jsonl off (no trace folder)")
        else:
            try:
                retry = row["publish_intent"] is not None
                if not retry:
                    _set(conn, change_id, publish_intent=clock())
                outbox.append_once(autonomy, line, check=retry)
                _set(conn, change_id, published_at=clock(), publish_error=None)
            except OSError as exc:
                _set(conn, change_id, publish_error=f"{autonomy}: {exc.strerror or exc}", hook_claimed_until=None)
                return "failed"
    state = ""
    if row["hook_state"] == "pending" and row["release_hook"]:
        state = _call_hook(conn, row, line, settings, client, sleep, clock, clients)
    _set(conn, change_id, hook_claimed_until=None)
    return state


def _call_hook(conn: sqlite3.Connection, row: sqlite3.Row, line, settings: DeliverySettings, client, sleep,
               clock: Callable[[], float], clients: ClientPool | None = None) -> str:
    from agentdeck.replay.hosts import check_url

    url = row["release_hook"]
    why = check_url(url, settings.allow_hosts)
    if why is not None:
        _set(conn, row["id"], hook_state="blocked", hook_error=f"release hook not called: {why}", hook_at=clock())
        return "blocked"
    from agentdeck.replay.http_clients import client_for_call

    def count_attempt() -> None:
        with atomic(conn):
            conn.execute("UPDATE stage_changes SET hook_attempts = hook_attempts + 1 WHERE id = ?", (row["id"],))

    with client_for_call(settings.timeout, client, clients) as http:  # (the shared one held for the call)
        posted = post_with_retries(http, url, line.to_json().encode("utf-8"), line.idempotency_key, settings,
                                   sleep, count_attempt, what="release hook")
    from agentdeck.replay.redact import redact_text

    error = posted.error or None
    answer, _ = redact_text(posted.answer)  # kept and shown: tokens in a deploy system's answer are masked
    _set(conn, row["id"], hook_state=posted.state, hook_status=posted.status, hook_answer=answer,
         hook_error=error, hook_at=clock())
    return posted.state


def publish_pending(conn: sqlite3.Connection, autonomy: Path | None, settings: DeliverySettings, *,
                    escalation_id: str | None = None, **kw) -> list[str]:
    """Publish every change not yet published (or whose hook call is pending); only ``escalation_id``'s when
    given. Returns the state of each change handled ('' without a hook)."""
    from agentdeck.store import release

    ids = release.unpublished(conn)
    if escalation_id is not None:
        mine = {c["id"] for c in release.changes_for(conn, escalation_id)}
        ids = [i for i in ids if i in mine]
    states: list[str] = []
    for change_id in ids:
        try:
            state = publish_one(conn, change_id, autonomy, settings, **kw)
        except Exception as exc:  # never take the console down; the row says what happened (Problems lists it)
            log.exception("publishing stage change %s", change_id)
            state = "failed"
            try:
                _set(conn, change_id, hook_state="failed", hook_error=f"{type(exc).__name__}: {exc}"[:300],
                     hook_claimed_until=None)
            except sqlite3.Error:
                pass
        if state is not None:
            states.append(state)
    return states
