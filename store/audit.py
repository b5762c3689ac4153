"""The audit trail: every human act (decision, compensation, export), hash-chained.

Each record's hash covers its own fields and the previous record's hash, so
editing, deleting or reordering any record breaks the chain from there on.
The head (last id and hash) is also kept in ``meta`` so removing the newest
records is caught too. ``verify`` walks the chain and says what broke where.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def _digest(prev_hash: str, rec_id: int, ts: float, actor: str, kind: str, subject: str, detail: str) -> str:
    body = json.dumps([rec_id, repr(float(ts)), actor, kind, subject, detail], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def append(conn: sqlite3.Connection, *, ts: float, actor: str, kind: str, subject: str, detail: dict[str, Any]) -> dict:
    """Add one record. Call inside the caller's transaction, so the act and its record commit together."""
    if not conn.in_transaction:
        raise RuntimeError("audit.append must run inside the transaction that makes the change")
    last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    rec_id = (last[0] + 1) if last else 1
    prev = last[1] if last else GENESIS
    detail_json = json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    h = _digest(prev, rec_id, ts, actor, kind, subject, detail_json)
    conn.execute(
        "INSERT INTO audit (id, ts, actor, kind, subject, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (rec_id, ts, actor, kind, subject, detail_json, prev, h),
    )
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('audit:head', ?)", (f"{rec_id}:{h}",))
    return {"id": rec_id, "hash": h, "prev_hash": prev}


def head(conn: sqlite3.Connection) -> dict:
    """The newest record's id and hash (``{"id": 0, "hash": GENESIS}`` for an empty trail)."""
    last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    return {"id": last[0], "hash": last[1]} if last else {"id": 0, "hash": GENESIS}


def contains(conn: sqlite3.Connection, rec_id: int, rec_hash: str) -> bool:
    """Is record ``rec_id`` with this hash part of the trail (e.g. a packet's recorded head)?"""
    if rec_id == 0:
        return rec_hash == GENESIS
    row = conn.execute("SELECT hash FROM audit WHERE id = ?", (rec_id,)).fetchone()
    return row is not None and row[0] == rec_hash


@dataclass(frozen=True)
class Problem:
    record_id: int | None
    what: str


def verify(conn: sqlite3.Connection) -> tuple[int, list[Problem]]:
    """Walk the chain; returns (records checked, problems). No problems means intact."""
    problems: list[Problem] = []
    prev = GENESIS
    expected_id = 1
    count = 0
    for row in conn.execute("SELECT id, ts, actor, kind, subject, detail, prev_hash, hash FROM audit ORDER BY id"):
        rec_id, ts, actor, kind, subject, detail, prev_hash, h = tuple(row)
        count += 1
        if rec_id != expected_id:
            problems.append(Problem(rec_id, f"records {expected_id}..{rec_id - 1} are missing (deleted)"))
        if prev_hash != prev:
            problems.append(Problem(rec_id, "does not follow the previous record (deleted or reordered before it)"))
        if _digest(prev_hash, rec_id, ts, actor, kind, subject, detail) != h:
            problems.append(Problem(rec_id, "contents do not match its hash (edited)"))
        prev = h
        expected_id = rec_id + 1
    head = conn.execute("SELECT value FROM meta WHERE key = 'audit:head'").fetchone()
    if head is not None:
        head_id, _, head_hash = str(head[0]).partition(":")
        if not head_id.isdigit():
            problems.append(Problem(None, "the chain head in meta is unreadable (edited)"))
        elif int(head_id) != expected_id - 1 or head_hash != prev:
            problems.append(Problem(int(head_id), f"the trail should end at record {head_id}; newer records were removed or replaced"))
    elif count:
        problems.append(Problem(None, "the chain head is missing from meta"))
    return count, problems
