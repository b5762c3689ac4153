"""Revealing one masked value, on purpose and on the record.

Screens and exports show trace payloads through the redaction policy
(``replay/redact.py``). When an operator needs the real value (to check a
credential an agent used, say), ``reveal`` returns that one value — and
commits an audit record of who revealed what (the event and the path, never
the value) *before* returning it. No record, no value.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from agentdeck.store import audit
from agentdeck.store.txn import atomic

KIND = "secret.reveal"


class RevealError(Exception):
    """Nothing to reveal at that place; the message says why."""


def _at(value: Any, path: Sequence[str | int]) -> Any:
    for step in path:
        if isinstance(value, dict) and isinstance(step, str) and step in value:
            value = value[step]
        elif isinstance(value, list) and isinstance(step, int) and not isinstance(step, bool) and -len(value) <= step < len(value):
            value = value[step]
        else:
            raise RevealError(f"the event has no value at {_path_text(path)}")
    return value


def _path_text(path: Sequence[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path) or "(the whole event)"


def reveal(conn: sqlite3.Connection, *, event_id: int, path: Sequence[str | int], by: str, now: float,
           reason: str = "") -> Any:
    """The unmasked value at ``path`` in event ``event_id``'s payload, after recording who revealed it.

    ``path`` is the keys and list indexes from the payload's root, e.g. ``["input", "headers", "Authorization"]``.
    Raises ``RevealError`` (nothing recorded) when there is no such event or value.
    """
    with atomic(conn):
        row = conn.execute("SELECT task_id, payload FROM events WHERE id = ?", (event_id,)).fetchone()
        if row is None:
            raise RevealError(f"no event {event_id} in the store")
        try:
            payload = json.loads(row[1])
        except ValueError:
            raise RevealError(f"event {event_id} is unreadable") from None
        value = _at(payload, list(path))
        audit.append(conn, ts=now, actor=by, kind=KIND, subject=row[0],
                     detail={"event_id": event_id, "path": list(path), "reason": reason})
    audit.checkpoint(conn)
    return value
