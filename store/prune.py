"""Applying the retention rules: archive, record, delete, give the space back.

``run_prune(db, policy, now)`` is the whole job (the CLI's ``agentdeck
prune`` and the console's optional schedule both call it) and returns a
``PruneReport``. Nothing here holds the store for more than a moment: work is
done in steps of about ``policy.batch_events`` events, each step its own short
transactions, so consoles and ingest interleave with it.

One step, in this order (what makes a kill -9 at any point safe):

1. read the tasks' events (a read snapshot);
2. append them to today's archive as one gzip member and fsync it
   (bytes past the file's *recorded* size are cut off first: they are a
   stopped prune's unrecorded work);
3. one transaction: the file's new recorded size, an ``archived_tasks`` row
   per task (with its digest, state ``archived``) and a ``retention.archive``
   audit record naming every task by digest;
4. delete the tasks' rows in short transactions, each re-checking that the
   task is unchanged and still due, and marking its row ``pruned``.

A prune that starts first finishes any ``archived`` rows (step 4) and cuts
unrecorded bytes off every recorded archive file. Nothing is ever archived
without being recorded, nor deleted without being archived and recorded.
The audit trail is never touched except to append.

Only one prune runs at a time: a lease row (pid, host, end time) in the
store, renewed every step. A lease whose process is gone (same host) or
whose time ran out (another host) is taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agentdeck.store import audit, processes
from agentdeck.store.archive import ArchiveError, append_member, file_for, prepare_file, record_member, task_digest, truncate_unrecorded
from agentdeck.store.retention import Candidate, RetentionPolicy, plan, still_prunable_many
from agentdeck.store.txn import atomic, classify, store_path

LEASE_SECONDS = 120.0
DELETE_EVENTS = 500  # events deleted per transaction: a few ms of write lock
CACHE_KIB = -32 * 1024  # PRAGMA cache_size while pruning (negative: KiB)
VACUUM_PAGES = 128  # pages released per transaction (512 KiB at 4 KiB pages): a few ms of write lock
# Tables holding a task's rows (besides events and tasks); the audit trail is not among them.
TASK_TABLES = ("escalations", "actions", "compensations", "violations")


class PruneBusy(Exception):
    """Another prune holds the store's lease."""


@dataclass
class PruneReport:
    dry_run: bool
    policy: RetentionPolicy
    now: float
    db: str | None = None
    archive_dir: str | None = None
    removed_tasks: int = 0
    removed_events: int = 0
    notable_removed: int = 0
    archives: Counter[str] = field(default_factory=Counter)  # archive file -> tasks written to it now
    kept: Counter[str] = field(default_factory=Counter)  # reason -> tasks kept for it
    changed: list[tuple[str, str]] = field(default_factory=list)  # (task, why) kept after archiving
    resumed: int = 0  # tasks a stopped prune had archived and this one deleted
    truncated: list[str] = field(default_factory=list)  # archives whose unrecorded tail was cut off
    removed: list[Candidate] = field(default_factory=list)  # what went (or, dry run, would go)
    size_before: int = 0
    size_after: int = 0
    free_pages_before: int = 0
    free_pages_after: int = 0
    page_size: int = 4096
    auto_vacuum: str = "none"
    seconds: float = 0.0
    interrupted: bool = False
    compact_error: str | None = None  # --compact failed (e.g. no room for the copy); the prune itself stands
    problems: list[str] = field(default_factory=list)  # e.g. an audit checkpoint that could not be written


# -- the lease ---------------------------------------------------------------------------


def acquire(conn: sqlite3.Connection, *, clock: Callable[[], float] = time.time) -> None:
    """Take the prune lease, or raise ``PruneBusy`` saying who holds it."""
    me, host, now = os.getpid(), socket.gethostname(), clock()
    with atomic(conn):
        row = conn.execute("SELECT pid, host, started, until FROM prune_lease WHERE id = 1").fetchone()
        if row is not None and not (row[0] == me and row[1] == host):
            pid, other, started, until = tuple(row)
            gone = (other == host and not processes.alive(pid)) or until < now
            if not gone:
                since = time.strftime("%H:%M:%S", time.localtime(started))
                raise PruneBusy(f"another prune is running (pid {pid} on {other}, since {since}); "
                                "wait for it to finish")
        conn.execute("INSERT OR REPLACE INTO prune_lease (id, pid, host, started, until) VALUES (1, ?, ?, ?, ?)",
                     (me, host, now, now + LEASE_SECONDS))


def renew(conn: sqlite3.Connection, *, clock: Callable[[], float] = time.time) -> None:
    with atomic(conn):
        cur = conn.execute("UPDATE prune_lease SET until = ? WHERE id = 1 AND pid = ? AND host = ?",
                           (clock() + LEASE_SECONDS, os.getpid(), socket.gethostname()))
        if cur.rowcount != 1:
            raise PruneBusy("this prune's lease was taken over by another prune; stopping")


def release(conn: sqlite3.Connection) -> None:
    with atomic(conn):
        conn.execute("DELETE FROM prune_lease WHERE id = 1 AND pid = ? AND host = ?", (os.getpid(), socket.gethostname()))


# -- sizes -------------------------------------------------------------------------------


def file_bytes(db_path: str | Path | None) -> int:
    if not db_path:
        return 0
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.stat(str(db_path) + suffix).st_size
        except OSError:
            pass
    return total


_AUTO_VACUUM = {0: "none", 1: "full", 2: "incremental"}


def _pages(conn: sqlite3.Connection, report: PruneReport, *, after: bool) -> None:
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    if after:
        report.free_pages_after = free
    else:
        report.free_pages_before = free
        report.page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        report.auto_vacuum = _AUTO_VACUUM.get(conn.execute("PRAGMA auto_vacuum").fetchone()[0], "?")


# -- the job -----------------------------------------------------------------------------


def run_prune(
    db: sqlite3.Connection | str | Path,
    policy: RetentionPolicy,
    now: float | None = None,
    *,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    actor: str = "retention",
    compact: bool = False,
    on_step: Callable[[PruneReport], None] | None = None,
) -> PruneReport:
    """Apply ``policy`` to the store as of ``now`` (default: the current time); see the module docstring.

    ``db`` is an open connection (autocommit, as ``store.db.connect`` makes
    it) or a store path (opened and closed here). ``stop`` ends the job
    between steps (``report.interrupted``); everything done so far is
    consistent. ``compact``: afterwards, rewrite the whole file once with
    ``VACUUM`` (blocks other writers while it runs) and switch the store to
    incremental vacuum, so later prunes shrink the file as they go.
    Raises ``PruneBusy`` when another prune is running, ``ArchiveError`` when
    an archive cannot be written as recorded.
    """
    from agentdeck.store.db import connect

    started = time.perf_counter()
    own = not isinstance(db, sqlite3.Connection)
    conn: sqlite3.Connection = db if isinstance(db, sqlite3.Connection) else connect(db)
    try:
        now = time.time() if now is None else now
        db_path = store_path(conn)
        folder = policy.archive_folder(db_path or "agentdeck.db")
        report = PruneReport(dry_run, policy, now, db=db_path, archive_dir=str(folder) if policy.archive else None)
        report.size_before = file_bytes(db_path)
        _pages(conn, report, after=False)
        if dry_run:
            p = plan(conn, policy, now)
            report.kept = p.kept
            report.removed = p.remove
            report.removed_tasks = len(p.remove)
            report.removed_events = p.events
            report.notable_removed = sum(c.notable for c in p.remove)
            report.size_after = report.size_before
            report.seconds = time.perf_counter() - started
            return report
        acquire(conn)
        # Deleting scattered rows touches many index pages: a bigger page cache
        # than SQLite's 2 MB default keeps them from being read twice.
        cache_was = conn.execute("PRAGMA cache_size").fetchone()[0]
        conn.execute(f"PRAGMA cache_size = {CACHE_KIB}")
        try:
            report.truncated = _cut_unrecorded(conn)
            _finish_unfinished(conn, policy, now, report)
            p = plan(conn, policy, now)
            report.kept = p.kept
            report.removed = p.remove
            for batch in _batches(p.remove, policy.batch_events):
                if stop is not None and stop.is_set():
                    report.interrupted = True
                    break
                _step(conn, batch, policy, now, folder, report, actor)
                renew(conn)
                if on_step is not None:
                    on_step(report)
            if not report.interrupted:
                _reclaim(conn, stop, compact, report)
        finally:
            # The lease of a process that is gone is taken over anyway: never let
            # releasing it hide the error that ended the job.
            with contextlib.suppress(sqlite3.Error):
                release(conn)
                conn.execute(f"PRAGMA cache_size = {int(cache_was)}")
        _pages(conn, report, after=True)
        report.size_after = file_bytes(db_path)
        report.seconds = time.perf_counter() - started
        return report
    finally:
        if own:
            conn.close()


def _batches(candidates: list[Candidate], events: int) -> Iterator[list[Candidate]]:
    batch: list[Candidate] = []
    size = 0
    for c in candidates:
        batch.append(c)
        size += max(c.events, 1)
        if size >= events:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _cut_unrecorded(conn: sqlite3.Connection) -> list[str]:
    """Bytes past each archive's recorded size are a stopped prune's unrecorded work: cut them off.

    An archive that is gone or shorter than recorded was moved or replaced by
    someone (old archives go to cold storage): nothing of ours to cut there,
    and no reason to stop pruning. Appending to such a file is refused
    (``prepare_file``), and reading from it says what is wrong.
    """
    cut = []
    for path, size in conn.execute("SELECT path, size FROM archive_files").fetchall():
        try:
            if truncate_unrecorded(Path(path), int(size)):
                cut.append(path)
        except ArchiveError:
            continue
    return cut


def _finish_unfinished(conn: sqlite3.Connection, policy: RetentionPolicy, now: float, report: PruneReport) -> None:
    """Tasks a stopped prune archived and recorded but did not get to delete."""
    rows = conn.execute("SELECT id, task_id, events, max_event_id, notable FROM archived_tasks "
                        "WHERE state = 'archived' ORDER BY id").fetchall()
    if rows:
        before = report.removed_tasks
        _delete(conn, [tuple(r) for r in rows], policy, now, report)
        report.resumed += report.removed_tasks - before


def _step(conn: sqlite3.Connection, batch: list[Candidate], policy: RetentionPolicy, now: float, folder: Path,
          report: PruneReport, actor: str) -> None:
    by_task = {c.task_id: c for c in batch}
    ids = list(by_task)
    lines: dict[str, list[str]] = {t: [] for t in ids}
    stats: dict[str, list] = {}  # task -> [count, max id, first ts, last ts]
    with atomic(conn, immediate=False):  # one snapshot of the batch's events
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for event_id, task_id, ts, payload in conn.execute(
                f"SELECT id, task_id, ts, payload FROM events WHERE task_id IN ({','.join('?' * len(chunk))}) "
                "ORDER BY task_id, seq, id", chunk,
            ):
                lines[task_id].append(payload)
                s = stats.get(task_id)
                if s is None:
                    stats[task_id] = [1, event_id, ts, ts]
                else:
                    s[0] += 1
                    s[1] = max(s[1], event_id)
                    s[2] = min(s[2], ts)
                    s[3] = max(s[3], ts)
    ids = [t for t in ids if t in stats or by_task[t].events == 0]
    if not ids:
        return
    digests = {t: task_digest(lines[t]) for t in ids}
    path = offset = length = None
    if policy.archive:
        path = file_for(folder, now)
        offset = prepare_file(conn, path, now)
        length = append_member(path, offset, [line for t in ids for line in lines[t]])
    rows = []
    with atomic(conn):
        if path is not None:
            record_member(conn, path, offset, length, now)  # type: ignore[arg-type]
        for t in ids:
            c, s = by_task[t], stats.get(t, [0, -1, None, None])
            cur = conn.execute(
                """INSERT INTO archived_tasks (task_id, request_id, archive, member_offset, member_length, digest,
                   events, max_event_id, first_ts, last_ts, notable, reason, archived_at, state)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'archived')""",
                (t, c.request_id, str(path) if path else None, offset, length, digests[t], s[0], s[1], s[2], s[3],
                 int(c.notable), c.reason, now),
            )
            rows.append((cur.lastrowid, t, s[0], s[1], int(c.notable)))
        detail = {"archive": str(path) if path else None, "member_offset": offset, "member_length": length,
                  "tasks": digests, "events": sum(s[0] for s in stats.values()), "rules": {
                      "raw_days": policy.raw_days, "notable_days": policy.notable_days}}
        audit.append(conn, ts=now, actor=actor, kind="retention.archive" if path else "retention.prune",
                     subject=path.name if path else "(no archive)", detail=detail)
    # Anchor the new head outside the store, as every audited act does (store/audit.py).
    problem = audit.checkpoint(conn, now=now)
    if problem:
        report.problems.append(problem)
    if path is not None:
        report.archives[str(path)] += len(ids)
    _delete(conn, rows, policy, now, report)


def _delete(conn: sqlite3.Connection, rows: Iterable[tuple], policy: RetentionPolicy, now: float,
            report: PruneReport) -> None:
    """Delete recorded tasks' rows, a few hundred events a transaction; each task re-checked first.

    Set-based (one statement a table per transaction): the write lock is held
    for milliseconds, so ingest and consoles barely notice.
    """
    pending = list(rows)
    while pending:
        chunk: list[tuple] = []
        size = 0
        while pending and (not chunk or size + pending[0][2] <= DELETE_EVENTS):
            chunk.append(pending.pop(0))
            size += chunk[-1][2]
        with atomic(conn):
            ids = json.dumps([r[1] for r in chunk])
            held = {t: (n, top) for t, n, top in conn.execute(
                "SELECT task_id, count(*), max(id) FROM events WHERE task_id IN (SELECT value FROM json_each(?)) "
                "GROUP BY task_id", (ids,))}
            why_kept = still_prunable_many(conn, [r[1] for r in chunk], policy, now)
            gone: list[str] = []
            for row_id, task_id, events, max_event_id, notable in chunk:
                why = None if held.get(task_id, (0, -1)) == (events, max_event_id) else \
                    "new events arrived while it was being pruned"
                why = why or why_kept.get(task_id)
                if why:
                    conn.execute("UPDATE archived_tasks SET state = 'kept', reason = reason || '; kept: ' || ? "
                                 "WHERE id = ?", (why, row_id))
                    report.changed.append((task_id, why))
                    continue
                gone.append(task_id)
                report.removed_tasks += 1
                report.removed_events += events
                report.notable_removed += notable
            if gone:
                doomed = json.dumps(gone)
                for table in ("events", *TASK_TABLES, "tasks"):
                    conn.execute(f"DELETE FROM {table} WHERE task_id IN (SELECT value FROM json_each(?))", (doomed,))
                went = set(gone)
                conn.execute("UPDATE archived_tasks SET state = 'pruned', pruned_at = ? WHERE state = 'archived' "
                             "AND id IN (SELECT value FROM json_each(?))",
                             (now, json.dumps([r[0] for r in chunk if r[1] in went])))


def _reclaim(conn: sqlite3.Connection, stop: threading.Event | None, compact: bool, report: PruneReport) -> None:
    """Give freed pages back to the file system without holding the store for more than a moment."""
    if compact:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        try:
            conn.execute("VACUUM")  # needs free disk space about the size of the store
        except sqlite3.Error as exc:
            report.compact_error = str(classify(exc, store_path(conn)))
    elif conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
        while conn.execute("PRAGMA freelist_count").fetchone()[0] > 0:
            if stop is not None and stop.is_set():
                break
            with atomic(conn):
                # Python steps a statement without result columns once, and
                # each step of this pragma frees one page: so one page a call.
                # (executescript would run it to the end, but commits first.)
                for _ in range(VACUUM_PAGES):
                    conn.execute("PRAGMA incremental_vacuum(1)")
    # Copy the WAL into the file (the file only shrinks then) and, if no
    # reader is in the way right now, empty it; never wait for readers.
    busy = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    try:
        conn.execute("PRAGMA busy_timeout = 50")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.OperationalError:
        pass  # busy: the next checkpoint does it
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(busy)}")
