"""Archives of pruned tasks: compressed JSON Lines in our trace format.

``<archive dir>/YYYY-MM-DD.jsonl.gz`` (the UTC day of the prune) holds the
events of the tasks pruned that day, each task's lines together in ``seq``
order, exactly as they were ingested (the ``payload`` column, byte for byte).
Each prune step appends one gzip *member*; ``gzip``/``zcat`` read a file of
several members as one stream, and ``agentdeck ingest`` reads the file back.

Crash safety rests on the ``archive_files`` table: its ``size`` is how much
of a file the store has recorded. A member is appended past that size and
fsynced, *then* recorded (with the tasks it holds) in one transaction, and
only then are the tasks' rows deleted. Bytes past the recorded size were
written by a prune that stopped before recording them: they are cut off
before the next append, so a task is never archived twice in one file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sqlite3
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from agentdeck.store.txn import atomic

SUFFIX = ".jsonl.gz"
COMPRESS_LEVEL = 6


class ArchiveError(Exception):
    """An archive cannot be written or read as recorded; the message says what to do."""


def file_for(folder: Path, now: float) -> Path:
    return folder / (datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d") + SUFFIX)


def task_digest(lines: list[str]) -> str:
    """sha256 of a task's archived lines, each ended by a newline: what the audit trail names it by."""
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8", "surrogatepass"))
        h.update(b"\n")
    return h.hexdigest()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recorded_size(conn: sqlite3.Connection, path: Path) -> int | None:
    row = conn.execute("SELECT size FROM archive_files WHERE path = ?", (str(path),)).fetchone()
    return None if row is None else int(row[0])


def prepare_file(conn: sqlite3.Connection, path: Path, now: float) -> int:
    """Make ``path`` ready for an append: recorded (before it exists), cut back to its recorded size.

    Returns the recorded size, where the next member starts.
    """
    size = recorded_size(conn, path)
    if size is None:
        if path.exists() and path.stat().st_size > 0:
            raise ArchiveError(f"{path} exists but this store did not write it (is the archive folder shared "
                               "with another store?); move it away or choose another --archive-dir")
        with atomic(conn):
            conn.execute("INSERT OR IGNORE INTO archive_files (path, size, members, created, updated) "
                         "VALUES (?, 0, 0, ?, ?)", (str(path), now, now))
        size = 0
    truncate_unrecorded(path, size)
    return size


def truncate_unrecorded(path: Path, size: int) -> bool:
    """Cut off bytes past the recorded size (a prune stopped before recording them). True if it did."""
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        actual = 0
        if size == 0:
            return False
    if actual < size:
        raise ArchiveError(f"{path} holds {actual} bytes but {size} were recorded: it was moved, truncated or "
                           "replaced; put the recorded file back, or prune into another --archive-dir")
    if actual == size:
        return False
    with open(path, "r+b") as f:
        f.truncate(size)
        f.flush()
        os.fsync(f.fileno())
    return True


def append_member(path: Path, offset: int, lines: list[str]) -> int:
    """Append one gzip member holding ``lines`` at ``offset`` (the recorded size), fsynced. Returns its length."""
    data = "".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass")
    member = gzip.compress(data, compresslevel=COMPRESS_LEVEL, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o640)
    try:
        os.ftruncate(fd, offset)  # anything past the recorded size is unrecorded: overwrite it
        written = 0
        while written < len(member):
            written += os.pwrite(fd, member[written:], offset + written)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent)  # the file's name must survive a crash too
    return len(member)


def record_member(conn: sqlite3.Connection, path: Path, offset: int, length: int, now: float) -> None:
    """Inside the caller's transaction: the file now ends after this member."""
    cur = conn.execute("UPDATE archive_files SET size = ?, members = members + 1, updated = ? "
                       "WHERE path = ? AND size = ?", (offset + length, now, str(path), offset))
    if cur.rowcount != 1:
        raise ArchiveError(f"{path} changed while this prune was appending to it (another prune?)")


# -- reading a pruned task back ---------------------------------------------------------


@dataclass(frozen=True)
class ArchivedTask:
    task_id: str
    request_id: str | None
    archive: str | None  # None: pruned without an archive
    member_offset: int | None
    member_length: int | None
    digest: str
    events: int
    state: str
    archived_at: float
    pruned_at: float | None
    reason: str


def locate(conn: sqlite3.Connection, task_or_request_id: str) -> ArchivedTask | None:
    """The newest archive record of a task (by task id or request id), or None if it was never pruned."""
    row = conn.execute(
        """SELECT task_id, request_id, archive, member_offset, member_length, digest, events, state, archived_at,
                  pruned_at, reason FROM archived_tasks WHERE task_id = ? OR request_id = ?
           ORDER BY task_id = ? DESC, id DESC LIMIT 1""",
        (task_or_request_id, task_or_request_id, task_or_request_id),
    ).fetchone()
    return None if row is None else ArchivedTask(*tuple(row))


def read_task(found: ArchivedTask, archive: Path | None = None) -> list[str]:
    """The task's archived lines, checked against its digest. ``archive``: where the file is now, if moved."""
    if found.archive is None:
        raise ArchiveError(f"{found.task_id} was pruned without an archive (digest {found.digest})")
    path = Path(archive or found.archive)
    if not path.exists():
        raise ArchiveError(f"{found.task_id}'s archive {path} is not there (moved to other storage?); put it back "
                           "there, or read it into a store with `agentdeck ingest FILE --db OTHER.db`")
    try:
        with open(path, "rb") as f:
            f.seek(found.member_offset or 0)
            member = f.read(found.member_length or 0)
        data = gzip.decompress(member)
    except (OSError, zlib.error) as exc:  # includes gzip.BadGzipFile
        raise ArchiveError(f"cannot read {found.task_id}'s archive {path}: {exc}") from None
    except EOFError:
        raise ArchiveError(f"{path} is cut short where {found.task_id} should be") from None
    lines = []
    for raw in data.decode("utf-8", "surrogatepass").splitlines():
        try:
            if json.loads(raw).get("task_id") == found.task_id:
                lines.append(raw)
        except (ValueError, AttributeError):
            continue
    if task_digest(lines) != found.digest:
        raise ArchiveError(f"{found.task_id}'s lines in {path} do not match the recorded digest {found.digest} "
                           "(the archive was changed)")
    return lines


def describe(found: ArchivedTask) -> str:
    """One line for an operator: where a pruned task went."""
    when = datetime.fromtimestamp(found.pruned_at or found.archived_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    if found.state == "kept":
        return f"{found.task_id} was archived on {when} but changed meanwhile and is still in the store"
    where = (f"its {found.events} events are archived in {found.archive} (gzip member at byte "
             f"{found.member_offset}, sha256 {found.digest})") if found.archive else \
        f"it was pruned without an archive (its {found.events} events had sha256 {found.digest})"
    pending = "" if found.state == "pruned" else " (its deletion is unfinished; the next prune completes it)"
    return f"{found.task_id} was pruned on {when} ({found.reason}){pending}; {where}"


# -- reading an archive back into a store (agentdeck ingest FILE.jsonl.gz) ---------------


@dataclass
class RestoreStats:
    events: int = 0
    skipped: int = 0  # lines already in the store (restored before)
    rejects: int = 0
    tasks: set[str] = field(default_factory=set)


RESTORE_BATCH = 5000


def is_archive(path: Path) -> bool:
    return path.name.endswith(".gz")


def archives_in(paths: list[Path]) -> list[Path]:
    """The gzip archives among ``paths``: .gz files given, and *.jsonl.gz files in folders given."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.glob("*" + SUFFIX) if q.is_file()))
        elif is_archive(p):
            out.append(p)
    return out


def members(f, chunk: int = 1 << 20):
    """The uncompressed bytes of each gzip member of ``f``, each only once its CRC and length checked out.

    So a damaged member contributes nothing (not even its first lines): its
    damage is found before any of it is used. Raises ``zlib.error`` or
    ``EOFError`` (cut short) at the first bad member.
    """
    d = zlib.decompressobj(wbits=31)
    parts: list[bytes] = []
    started = False
    while True:
        data = f.read(chunk)
        if not data:
            break
        while data:
            started = True
            parts.append(d.decompress(data))
            if not d.eof:
                break
            yield b"".join(parts)
            parts, started = [], False
            data = d.unused_data
            d = zlib.decompressobj(wbits=31)
    if started:
        raise EOFError("the last gzip member is cut short")


def restore(conn: sqlite3.Connection, path: Path, *, post_commit: list | None = None) -> RestoreStats:
    """Ingest an archive: each line is stored unless the store already holds it.

    Idempotent: run it twice, or stop it and run it again, and every line is
    stored once (a line counts as present when the store holds an event with
    the same task, seq and payload as many times as the archive does). So an
    archive can be read back into the store it came from, or into another.
    """
    from agentdeck.store import postcommit
    from agentdeck.store.ingest import apply_batch
    from agentdeck.store.reader import Line
    from agentdeck.store.tailer import decode_lines

    hooks = postcommit.default() if post_commit is None else post_commit
    stats = RestoreStats()
    offset = 0
    batch: list = []

    def flush() -> None:
        if not batch:
            return
        parsed, rejects = decode_lines(batch)
        kept = _not_yet_stored(conn, parsed)
        stats.skipped += len(parsed) - len(kept)
        for r in rejects:
            r.error = f"{path.name}: {r.error}"
        result = apply_batch(conn, None, kept, rejects)
        if result.escalations:
            with atomic(conn):
                apply_audited_decisions(conn, conn, result.escalations)
        stats.events += result.events
        stats.rejects += result.rejects
        stats.tasks |= result.tasks
        for hook in hooks:
            hook(conn, result)
        batch.clear()

    try:
        with open(path, "rb") as f:
            for member in members(f):
                for raw in member.splitlines(keepends=True):
                    data = raw.rstrip(b"\r\n")
                    if data.strip():
                        batch.append(Line(offset, data))
                    offset += len(raw)
                    if len(batch) >= RESTORE_BATCH:
                        flush()
        flush()
    except (OSError, EOFError, zlib.error) as exc:
        flush()  # what was read before the damage is stored
        raise ArchiveError(f"{path}: damaged after {offset} uncompressed bytes ({exc or 'cut short'}); "
                           "everything before that was read") from None
    return stats


def apply_audited_decisions(target: sqlite3.Connection, trail: sqlite3.Connection, escalation_ids: list[str]) -> int:
    """Give still-pending escalations in ``target`` the decisions ``trail``'s audit trail recorded for them.

    A decision made in the console was never a trace event, so an archive
    does not hold it; the audit trail (never pruned) does. Delivery state is
    left empty: the decision was delivered (or given up on) before the task
    could be pruned, so nothing is sent again. Returns how many were applied.
    """
    applied = 0
    for i in range(0, len(escalation_ids), 500):
        chunk = escalation_ids[i:i + 500]
        for actor, ts, subject, detail in trail.execute(
            f"SELECT actor, ts, subject, detail FROM audit WHERE kind = 'decision' AND subject IN "
            f"({','.join('?' * len(chunk))}) ORDER BY id", chunk,
        ).fetchall():
            try:
                d = json.loads(detail)
            except ValueError:
                continue
            status = {"approve": "approved", "deny": "denied"}.get(d.get("decision"), "expired")
            applied += target.execute(
                "UPDATE escalations SET status = ?, decided_by = ?, decided_at = ?, decision_reason = ?, "
                "idempotency_key = ? WHERE escalation_id = ? AND status = 'pending'",
                (status, actor, ts, d.get("reason", ""), d.get("idempotency_key"), subject),
            ).rowcount
    return applied


def _not_yet_stored(conn: sqlite3.Connection, parsed: list) -> list:
    """``parsed`` without the events the store already holds (as a multiset of (task, seq, payload))."""
    tasks = sorted({e.task_id for e, _ in parsed})
    have: Counter[tuple[str, int, str]] = Counter()
    for i in range(0, len(tasks), 500):
        chunk = tasks[i:i + 500]
        for task_id, seq, payload in conn.execute(
            f"SELECT task_id, seq, payload FROM events WHERE task_id IN ({','.join('?' * len(chunk))})", chunk
        ):
            have[(task_id, seq, payload)] += 1
    kept = []
    for e, payload in parsed:
        key = (e.task_id, e.seq, payload)
        if have[key] > 0:
            have[key] -= 1
        else:
            kept.append((e, payload))
    return kept


def restore_paths(conn: sqlite3.Connection, paths: list[Path], totals, say) -> tuple[list[Path], bool]:
    """For ``agentdeck ingest``: restore the archives among ``paths``; returns the paths left for the tailer.

    ``totals`` (a ``TailStats``) is added to; ``say`` reports a damaged
    archive (what was read before the damage is kept). A folder stays in the
    list: the tailer reads its *.jsonl files and leaves *.gz alone.
    """
    failed = False
    for path in archives_in(paths):
        try:
            got = restore(conn, path)
        except (ArchiveError, OSError) as exc:
            say(str(exc))
            failed = True
            continue
        totals.events += got.events
        totals.rejects += got.rejects
        totals.tasks |= got.tasks
        if got.skipped:
            say(f"{path}: {got.skipped} events were already in the store (not stored again)")
    return [p for p in paths if not (is_archive(p) and not p.is_dir())], failed
