"""What each ingest process says about itself, kept in the store.

An ingester registers (``register``), then beats every few seconds with its
counts and its current problems (``beat``), and says why it ended
(``finish``). Any console on the store reads it back (``ingesters``,
``problems``) — including a second console that did not start the ingester,
and a console watching a headless ``agentdeck ingest --follow``.

``StatusRecorder`` does the bookkeeping for an ingest loop: feed it the
tailer's batches and problems and it writes when something changed, or when
a heartbeat is due. Every write goes through ``store.txn.atomic``; a status
write that fails is retried on the next tick and never stops ingestion.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from agentdeck.store.txn import atomic

log = logging.getLogger(__name__)

# How often an ingester with nothing new to say still writes its heartbeat.
# Each write is a commit every console notices (and reloads on), so not often;
# a console calls an ingester stalled after several missed beats.
HEARTBEAT_S = 5.0
KEEP_S = 7 * 24 * 3600.0  # ended ingesters' rows are deleted this long after their last word


@dataclass(frozen=True)
class Ingester:
    ingester: str
    pid: int
    host: str
    paths: tuple[str, ...]
    started_at: float
    heartbeat_at: float
    state: str  # running | stopped | failed
    detail: str | None
    events: int
    rejects: int
    last_commit_at: float | None
    behind_bytes: int


@dataclass(frozen=True)
class SourceProblem:
    ingester: str
    source: str
    detail: str
    since: float
    seen_at: float


def ingester_id(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def register(conn: sqlite3.Connection, ingester: str, paths: Iterable[str | Path], now: float) -> None:
    host, _, pid = ingester.rpartition(":")
    with atomic(conn):
        # One row a process start: rows of ingesters gone for a week are history nobody reads.
        conn.execute("DELETE FROM ingesters WHERE heartbeat_at < ? AND state != 'running'", (now - KEEP_S,))
        conn.execute("DELETE FROM ingest_problems WHERE ingester = ?", (ingester,))
        conn.execute(
            """INSERT OR REPLACE INTO ingesters (ingester, pid, host, paths, started_at, heartbeat_at, state)
               VALUES (?, ?, ?, ?, ?, ?, 'running')""",
            (ingester, int(pid or 0), host, json.dumps([str(p) for p in paths]), now, now),
        )


def beat(conn: sqlite3.Connection, ingester: str, now: float, problems: dict[str, str], *, events: int = 0,
         rejects: int = 0, last_commit_at: float | None = None, behind_bytes: int = 0,
         ongoing: Iterable[str] = ()) -> None:
    """Heartbeat, counts so far, and the problems as of now (a problem keeps its first ``since``).

    A source's new detail is a new problem (since now), unless the source is ``ongoing``: its detail counts
    what goes on (an OTLP receiver's refusals of the last minute), and the problem is the same one, since it began.
    """
    ongoing = set(ongoing)
    with atomic(conn):
        conn.execute(
            """UPDATE ingesters SET heartbeat_at = ?, state = 'running', events = ?, rejects = ?,
               last_commit_at = coalesce(?, last_commit_at), behind_bytes = ? WHERE ingester = ?""",
            (now, events, rejects, last_commit_at, behind_bytes, ingester),
        )
        known = {row[0]: row[1] for row in conn.execute(
            "SELECT source, detail FROM ingest_problems WHERE ingester = ?", (ingester,))}
        for source in known.keys() - problems.keys():
            conn.execute("DELETE FROM ingest_problems WHERE ingester = ? AND source = ?", (ingester, source))
        for source, detail in problems.items():
            if known.get(source) == detail:
                conn.execute("UPDATE ingest_problems SET seen_at = ? WHERE ingester = ? AND source = ?",
                             (now, ingester, source))
            elif source in known and source in ongoing:
                conn.execute("UPDATE ingest_problems SET detail = ?, seen_at = ? WHERE ingester = ? AND source = ?",
                             (detail, now, ingester, source))
            else:
                conn.execute(
                    """INSERT OR REPLACE INTO ingest_problems (ingester, source, detail, since, seen_at)
                       VALUES (?, ?, ?, ?, ?)""", (ingester, source, detail, now, now))


def finish(conn: sqlite3.Connection, ingester: str, now: float, state: str, detail: str | None = None) -> None:
    """The ingester ended: ``stopped`` (asked to) or ``failed`` (with what happened)."""
    with atomic(conn):
        conn.execute("UPDATE ingesters SET state = ?, detail = ?, heartbeat_at = ? WHERE ingester = ?",
                     (state, detail, now, ingester))
        conn.execute("DELETE FROM ingest_problems WHERE ingester = ?", (ingester,))


def mark_gone(conn: sqlite3.Connection, ingester: str, now: float, detail: str) -> bool:
    """An ingester ended without saying so (killed): its supervisor says it. False if it had said already."""
    with atomic(conn):
        cur = conn.execute("UPDATE ingesters SET state = 'failed', detail = ?, heartbeat_at = ? "
                           "WHERE ingester = ? AND state = 'running'", (detail, now, ingester))
        conn.execute("DELETE FROM ingest_problems WHERE ingester = ?", (ingester,))
    return cur.rowcount > 0


def ingesters(conn: sqlite3.Connection, since: float = 0.0) -> list[Ingester]:
    """Ingesters heard from since ``since`` (heartbeat), newest first. Empty on a store without the table."""
    try:
        rows = conn.execute("SELECT * FROM ingesters WHERE heartbeat_at >= ? ORDER BY heartbeat_at DESC",
                            (since,)).fetchall()
    except sqlite3.OperationalError:  # a store not yet migrated (opened read-only)
        return []
    return [Ingester(r["ingester"], r["pid"], r["host"], tuple(json.loads(r["paths"])), r["started_at"],
                     r["heartbeat_at"], r["state"], r["detail"], r["events"], r["rejects"], r["last_commit_at"],
                     r["behind_bytes"]) for r in rows]


def problems(conn: sqlite3.Connection, ingesters_: Iterable[str]) -> list[SourceProblem]:
    names = list(ingesters_)
    if not names:
        return []
    try:
        rows = conn.execute(
            f"SELECT * FROM ingest_problems WHERE ingester IN ({','.join('?' * len(names))}) ORDER BY since, source",
            names).fetchall()
    except sqlite3.OperationalError:
        return []
    return [SourceProblem(r["ingester"], r["source"], r["detail"], r["since"], r["seen_at"]) for r in rows]


def behind_bytes(conn: sqlite3.Connection) -> int:
    """Bytes written to live trace files that are not in the store yet (their size past the committed offset)."""
    total = 0
    for path, offset in conn.execute("SELECT path, offset FROM sources WHERE inode > 0"):
        try:
            size = os.stat(path).st_size
        except OSError:
            continue
        total += max(0, size - offset)
    return total


class StatusRecorder:
    """Writes one ingester's status: on a change of problems at once, else every ``heartbeat`` seconds.

    Owns ``conn`` (not the tailer's: the tailer's thread is busy committing
    batches). ``on_batch`` may be called from the tailer's thread; ``tick``
    from another.
    """

    def __init__(self, conn: sqlite3.Connection, paths: Iterable[str | Path], *, ingester: str | None = None,
                 heartbeat: float = HEARTBEAT_S, clock=time.time, follows_files: bool = True) -> None:
        self.conn = conn
        # Its heartbeat reports how far the store's followed files are ahead of what is stored; an ingester
        # that follows none (an OTLP receiver) reports 0: it spares the stat of every file each beat, and a
        # store whose files nobody follows now shows no backlog (store/health.py takes the largest report).
        self.follows_files = follows_files
        self.ingester = ingester or ingester_id()
        self.paths = [str(p) for p in paths]
        self.heartbeat = heartbeat
        self.clock = clock
        self.events = 0
        self.rejects = 0
        self.last_commit_at: float | None = None
        self._written: tuple[dict[str, str], float] | None = None  # (problems, when)
        self.error: str | None = None  # the last status write that failed

    def start(self) -> None:
        register(self.conn, self.ingester, self.paths, self.clock())
        self._written = ({}, self.clock())

    def on_batch(self, batch) -> None:
        self.events += batch.events
        self.rejects += batch.rejects
        self.last_commit_at = self.clock()

    def tick(self, problems: dict[str, str], ongoing: Iterable[str] = ()) -> bool:
        """Write if the problems changed or a heartbeat is due. True if written. (``ongoing``: see ``beat``.)"""
        now = self.clock()
        if self._written is not None and self._written[0] == problems and now - self._written[1] < self.heartbeat:
            return False
        try:
            if self._written is None:
                register(self.conn, self.ingester, self.paths, now)
            beat(self.conn, self.ingester, now, dict(problems), events=self.events, rejects=self.rejects,
                 last_commit_at=self.last_commit_at,
                 behind_bytes=behind_bytes(self.conn) if self.follows_files else 0, ongoing=ongoing)
        except sqlite3.Error as exc:  # ingestion goes on; the next tick tries again
            self.error = str(exc)
            log.debug("ingest status write failed", exc_info=True)
            return False
        self.error = None
        self._written = (dict(problems), now)
        return True

    def finish(self, state: str = "stopped", detail: str | None = None) -> None:
        try:
            finish(self.conn, self.ingester, self.clock(), state, detail)
        except sqlite3.Error:
            log.debug("ingest status write failed", exc_info=True)
