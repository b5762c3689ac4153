"""Read queries the console and the CLI share. Plain functions over a connection.

Every query here is bounded (LIMIT, or an aggregate) and served by an index
in ``store/db.py``: the console calls them from worker threads on every
refresh, with a million events in the store.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Counters:
    tasks_per_min: float
    errors: int
    open_escalations: int
    events: int
    rejects: int
    last_event_ts: float | None
    last_ingest_at: float | None


def counters(conn: sqlite3.Connection, now: float | None = None) -> Counters:
    now = time.time() if now is None else now
    since = now - 60
    # Tasks started in the last minute, by event time (tasks_started index).
    per_min = conn.execute("SELECT count(*) FROM tasks WHERE started >= ?", (since,)).fetchone()[0]
    errors = conn.execute(
        "SELECT count(*) FROM tasks WHERE updated_at >= ? AND (outcome = 'failed' OR tool_errors > 0 OR actions_failed > 0)",
        (now - 3600,),
    ).fetchone()[0]
    open_esc = conn.execute("SELECT count(*) FROM escalations WHERE status = 'pending'").fetchone()[0]
    events = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
    rejects = conn.execute("SELECT count(*) FROM rejects").fetchone()[0]
    last = conn.execute("SELECT max(last_ts), max(updated_at) FROM tasks").fetchone()
    return Counters(float(per_min), errors, open_esc, events, rejects, last[0], last[1])


def task_events(conn: sqlite3.Connection, task_id: str, limit: int | None = None) -> list[sqlite3.Row]:
    """A task's events in task order (seq), whatever order they arrived in."""
    sql = "SELECT id, task_id, seq, kind, ts, payload FROM events WHERE task_id = ? ORDER BY seq, id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return conn.execute(sql, (task_id,)).fetchall()


def task(conn: sqlite3.Connection, task_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()


def find_task(conn: sqlite3.Connection, task_or_request_id: str) -> sqlite3.Row | None:
    """A task by its id, or by its request id."""
    row = task(conn, task_or_request_id)
    if row is None:
        row = conn.execute(
            "SELECT * FROM tasks WHERE request_id = ? ORDER BY started DESC LIMIT 1", (task_or_request_id,)
        ).fetchone()
    return row
