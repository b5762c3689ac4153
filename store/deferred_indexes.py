"""Secondary indexes on ``tasks`` left out while a large backlog is imported, built once after it.

Every batch of a bulk import upserts its tasks' summary rows; each of the
six secondary indexes below is an index entry to insert (a new task) or to
move (``updated_at``, ``last_ts`` and ``started`` change as a task grows),
and every index page a batch touches is written to the WAL again at its
commit. Building them once after the backlog, by sorting, costs less than
keeping them up to date row by row (bench/README.md has the figures).

None of them is read by ingestion itself: the task upsert goes through the
primary key, contract checks read events by ``events_task_seq`` (kept) and
escalations by ``escalations_task`` (kept). Only the console's and the
commands' queries use them.

Safety across kill -9: ``defer`` records the indexes' SQL in ``meta`` in the
same transaction that drops them, and ``restore`` builds whatever that
record names and deletes it in one transaction. ``store.db.connect`` calls
``restore`` on every read-write open, before migrations and before anything
reads, so a store whose import was killed gets its indexes back as soon as
anything opens it, and a console opened while an import runs takes them
back at once (the import goes on, with the indexes maintained row by row).
A process that keeps the store open (a console, ``ingest --follow``) builds
them in its tailer's next pass when the import that deferred them is gone
(``abandoned``: the note names its host, pid and start time), and the
console's health lists them meanwhile (store/health.py).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass

from agentdeck.store import processes
from agentdeck.store.txn import atomic

# Not read while importing (see above). tasks_session is partial (only
# OpenTelemetry tasks have a session), so it costs nearly nothing and stays.
DEFERRABLE = ("tasks_updated", "tasks_started", "tasks_agent_version", "tasks_cohorts", "tasks_request",
              "tasks_console_seen")
# meta row: {"owner": the importing process (host:pid:start), "indexes": {index name: its CREATE INDEX}}
META_KEY = "deferred_indexes"


def _note(conn: sqlite3.Connection) -> dict:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}  # a store being created: nothing was ever deferred
        raise
    return dict(json.loads(row[0])) if row else {}


def pending(conn: sqlite3.Connection) -> dict[str, str]:
    """Indexes dropped by an import and not built again yet (name -> SQL); {} on a new store."""
    return dict(_note(conn).get("indexes", {}))


@dataclass(frozen=True)
class Deferred:
    """What an import left out: the indexes' names, when it dropped them, whether it is gone."""

    names: tuple[str, ...]
    at: float
    abandoned: bool  # the import that deferred them was killed: nobody but the next restore builds them


def state(conn: sqlite3.Connection) -> Deferred | None:
    """The indexes still missing, from one read of the note (None: none are)."""
    note = _note(conn)
    if not note.get("indexes"):
        return None
    owner = note.get("owner")
    return Deferred(tuple(sorted(note["indexes"])), float(note.get("at") or 0.0),
                    abandoned=not owner or processes.gone(owner))


def abandoned(conn: sqlite3.Connection) -> bool:
    """Indexes were deferred by an import that is gone (killed on this host): nobody will build them
    but the next ``restore``. An import on another host counts as alive."""
    deferred = state(conn)
    return deferred is not None and deferred.abandoned


def defer(conn: sqlite3.Connection) -> list[str]:
    """Drop the deferrable indexes, noting their SQL in ``meta`` in the same transaction.

    Returns the names dropped by this call (none when another import already
    deferred them). ``restore`` builds them again.
    """
    with atomic(conn):
        marks = ",".join("?" * len(DEFERRABLE))
        found = conn.execute(f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN ({marks})",
                             DEFERRABLE).fetchall()
        if not found:
            return []
        noted = {**pending(conn), **{name: sql for name, sql in found}}
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                     (META_KEY, json.dumps({"owner": processes.identity(os.getpid()), "at": time.time(), "indexes": noted})))
        for name, _ in found:
            conn.execute(f'DROP INDEX "{name}"')
    dropped = {name for name, _ in found}
    return [name for name in DEFERRABLE if name in dropped]  # (sqlite_master's order differs by the store's age)


def restore(conn: sqlite3.Connection) -> list[str]:
    """Build every index ``defer`` dropped and forget the note, in one transaction.

    Idempotent, and safe while another process imports (it takes the write
    lock between that import's batches). Returns the names built.
    """
    if not pending(conn):  # the usual case: one read, no write lock
        return []
    built = []
    with atomic(conn):
        for name, sql in pending(conn).items():  # again, under the lock: another process may have done it
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)).fetchone():
                continue
            conn.execute(sql)
            built.append(name)
        conn.execute("DELETE FROM meta WHERE key = ?", (META_KEY,))
    return built
