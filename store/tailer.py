"""Following trace files into the store, exactly once.

A *source* is one file, known by device and inode. A *stream* is the byte
sequence a source holds, known by a fingerprint (a hash of its first bytes,
at least one complete line): copies of a file are prefixes of the same
stream, and a reused inode holds a different stream. A stream's offset is the
furthest any of its files has been read; it is committed with the events read
up to it (``store.ingest.apply_batch``), which is what makes a kill -9 at any
moment safe, and reading a file always starts from its stream's offset, which
is what makes a copy harmless.

Rotation and truncation:

* rename rotation (``app.jsonl`` → ``app.jsonl.1``, new ``app.jsonl``): the
  renamed file keeps its inode, so it is read on to its end under its new
  name (even when only ``app.jsonl`` itself was given as the path); the new
  file is a new stream read from 0.
* copytruncate: the file shrinks or its first bytes change. A file in the
  same folder with the old fingerprint is the copy; it is read from the old
  stream's offset, so the lines written between our last read and the
  truncation are read from it, once. The truncated file is a new stream.
* a copy whose name matches the patterns (``app-20261124.jsonl``) belongs to
  the old stream and is read only past the stream's offset.

Known limit: a copy seen while it is still shorter than the fingerprint
(its first line or two, at most ``FP_LEN`` bytes) cannot be told from a new
file.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import sqlite3
import stat as stat_mod
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterable

from agentdeck.store import deferred_indexes, gc_pause, otlp_files, postcommit
from agentdeck.store.contract import ContractCheck
from agentdeck.store.ingest import (BatchResult, OffsetMoved, commit, commit_lines, decode_lines, describe_error,
                                    merge, prepare)
from agentdeck.store.reader import CHUNK, read_lines
from agentdeck.store.txn import atomic

__all__ = ["Tailer", "TailStats", "decode_lines", "PATTERNS"]

log = logging.getLogger(__name__)

PATTERNS = ("*.jsonl", "*.ndjson", "*.json", *otlp_files.PROTO_PATTERNS)
# A stream's fingerprint covers its first lines up to the first line end
# past FP_MIN bytes (at most FP_LEN): short, so that even a copy holding a
# line or two is recognised, and long enough to hold a timestamp and a task id.
# Chunks handed to parse processes: small enough that the first comes back
# soon, large enough that each commit is a big transaction. Transactions of
# 2 MiB and few chunks in flight bound a bulk import's memory (parsed chunks
# waiting for the committing process are the bulk of it: the committing
# process is the slower side) at about the cost of a bigger transaction.
POOL_CHUNK = 512 * 1024
POOL_TXN = 2 * 1024 * 1024
BULK_CACHE_KIB = -8 * 1024  # PRAGMA cache_size while importing a backlog (negative: KiB)
# PRAGMA wal_autocheckpoint while importing a backlog (pages; SQLite's default
# is 1000, ~4 MiB). Checkpointing every few transactions made a 1M-event
# import copy the same hot index pages to the store file again and again and
# force their write-back (fsync) on the committing thread: the COMMITs cost
# ~4.8 us an event, ~3.0 with checkpoints every 100,000 pages
# (bench/README.md). 32,768 pages bound the WAL at about 128 MiB; the usual
# setting is back when the backlog is read, and the next commit checkpoints.
BULK_CHECKPOINT_PAGES = 32_768
# A backlog at least this large (and at least DEFER_BYTES_PER_TASK per task
# row the store holds already, since building an index afterwards sorts every
# row) is imported with the tasks' secondary indexes deferred, when the
# Tailer is asked to (store/deferred_indexes.py): `agentdeck ingest`.
DEFER_MIN_BYTES = 64 * 1024 * 1024
DEFER_BYTES_PER_TASK = 1024
BULK_CONTRACT_RECHECK_S = 1.0  # while importing a backlog: contract folders looked at once a second
# Following: appends are gathered this long at most before they are committed (watchfiles' debounce).
DEBOUNCE_MS = 50
FP_MIN = 128
FP_LEN = 1024

Key = tuple[int, int]  # (st_dev, st_ino)


@dataclass
class TailStats:
    events: int = 0
    rejects: int = 0
    lines: int = 0
    bytes: int = 0
    tasks: set[str] = field(default_factory=set)
    escalations: list[str] = field(default_factory=list)
    files: set[str] = field(default_factory=set)
    # False: ``tasks`` and ``escalations`` stay empty. A million-event import
    # touches ~100k tasks: their ids kept here were ~15 MiB of its peak memory.
    keep_ids: bool = True

    def add(self, result: BatchResult, path: str, nbytes: int, nlines: int) -> None:
        self.events += result.events
        self.rejects += result.rejects
        self.lines += nlines
        self.bytes += nbytes
        if self.keep_ids:
            self.tasks |= result.tasks
            self.escalations.extend(result.escalations)
        self.files.add(path)


def _fingerprint(fd: int, length: int) -> str | None:
    data = os.pread(fd, length, 0)
    if len(data) < length:
        return None
    return hashlib.sha1(data).hexdigest()


def _fingerprint_len(fd: int, size: int) -> int:
    head = os.pread(fd, min(size, FP_LEN), 0)
    end = head.find(b"\n", FP_MIN - 1)
    return end + 1 if end >= 0 else len(head)


def _stream(src: dict) -> tuple[int, str] | None:
    return (src["fp_len"], src["fingerprint"]) if src["fp_len"] else None


class Tailer:
    """Reads every trace file under some paths into one store.

    A path is a folder (its files matching ``patterns`` are read, not
    recursively) or a single file. Not thread-safe: one thread calls ``poll``
    (or ``run``). The connection should be this tailer's own. Several tailers
    (threads or processes) may share one store: the offset check in
    ``apply_batch`` makes sure each line is committed once.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        paths: Iterable[str | Path],
        *,
        patterns: Iterable[str] = PATTERNS,
        batch_bytes: int = CHUNK,
        on_batch: Callable[[TailStats], None] | None = None,
        on_commit: Callable[[], None] | None = None,
        post_commit: Iterable[Callable[[sqlite3.Connection, BatchResult], None]] | None = None,
        parse_pool=None,
        defer_indexes: bool = False,
        keep_ids: bool = True,
    ) -> None:
        self.conn = conn
        self.paths = [Path(p) for p in paths]
        self.patterns = tuple(patterns)
        self.batch_bytes = batch_bytes
        self.on_batch = on_batch
        # Called the moment a batch is committed, before anything else is done with it: the console's ingest
        # process wakes its console there (console/commit_wake.py). Must be quick and must not raise.
        self.on_commit = on_commit
        # store.parallel.ParsePool: parse backlogs on other cores (bulk import).
        self.parse_pool = parse_pool
        # Drop the tasks' secondary indexes while a large backlog is read and
        # build them once after it (store/deferred_indexes.py). Off by
        # default: only `agentdeck ingest` asks for it, not the console's
        # own ingest process (its screens query while it imports).
        self.defer_indexes = defer_indexes
        # TailStats.keep_ids for what poll() returns and on_batch is given.
        self.keep_ids = keep_ids
        # Work derived from a committed batch. A ContractCheck among the hooks
        # runs inside each batch's transaction (violations are exactly-once
        # like the events); the others run on this tailer's thread and
        # connection, after the commit.
        hooks = list(postcommit.default() if post_commit is None else post_commit)
        self.contracts: ContractCheck | None = next((h for h in hooks if isinstance(h, ContractCheck)), None)
        self.post_commit = [h for h in hooks if h is not self.contracts]
        # Path -> what is wrong with it, as of the last poll (replaced, not
        # mutated, so another thread may read it).
        self.problems: dict[str, str] = {}
        self.sources: dict[Key, dict] = {}  # live sources by inode
        self.streams: dict[tuple[int, str], int] = {}  # stream -> furthest offset read
        self._followed: set[Key] = set()  # inodes seen under a single-file path
        self._stop: threading.Event | None = None  # set by run(): stop between batches
        self._hook_problems: dict[str, str] = {}
        # Wall time run() was last woken by a file notification (bench/live.py's hop budget reads it).
        self.woke_at = 0.0
        self.committed_at = 0.0  # wall time the last batch's transaction committed (before post-commit hooks)
        self._load_sources()

    # -- source bookkeeping -------------------------------------------------

    def _load_sources(self) -> None:
        self.sources.clear()
        self.streams.clear()
        for row in self.conn.execute("SELECT * FROM sources ORDER BY id"):
            src = dict(row)
            if src["inode"] > 0:  # tombstoned rows keep inode = -id
                self.sources[(src["dev"], src["inode"])] = src
            self._note_offset(src)

    def _note_offset(self, src: dict) -> None:
        stream = _stream(src)
        if stream is not None and src["offset"] > self.streams.get(stream, -1):
            self.streams[stream] = src["offset"]

    def _stream_offset(self, src: dict) -> int:
        stream = _stream(src)
        return max(src["offset"], self.streams.get(stream, 0)) if stream else src["offset"]

    def _claim(self, path: Path, st: os.stat_result, offset: int = 0, fingerprint=None, fp_len=0) -> tuple[dict, bool]:
        """The source row for this inode: another tailer's if it exists, else a new one.

        Returns ``(row, created)``. Done in one transaction so two tailers
        never both create a source for one file.
        """
        now = time.time()
        with atomic(self.conn):
            row = self.conn.execute("SELECT * FROM sources WHERE dev = ? AND inode = ?",
                                    (st.st_dev, st.st_ino)).fetchone()
            created = row is None
            if created:
                cur = self.conn.execute(
                    """INSERT INTO sources (path, dev, inode, fingerprint, fp_len, offset, first_seen, updated_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                    (str(path), st.st_dev, st.st_ino, fingerprint, fp_len, offset, now, now),
                )
                row = self.conn.execute("SELECT * FROM sources WHERE id = ?", (cur.lastrowid,)).fetchone()
        src = dict(row)
        self.sources[(st.st_dev, st.st_ino)] = src
        self._note_offset(src)
        return src, created

    def _retire(self, src: dict, key: Key) -> None:
        """This inode's stream is over (truncated or reused); keep the row for history."""
        with atomic(self.conn):
            self.conn.execute("UPDATE sources SET inode = -id WHERE id = ?", (src["id"],))
        self.sources.pop(key, None)

    def _matches(self, name: str) -> bool:
        return any(fnmatch.fnmatch(name, p) for p in self.patterns)

    # -- one pass -----------------------------------------------------------

    def files(self, problems: dict[str, str] | None = None) -> list[tuple[Path, os.stat_result, bool]]:
        """Files to look at now, as ``(path, stat, wanted)``.

        ``wanted`` files are read as new streams when we do not know them
        (a matching name in a folder, or a path given as a file); the others
        are known files that were renamed (rotated) and are only read to
        their end.
        """
        problems = {} if problems is None else problems
        found: dict[Key, tuple[Path, os.stat_result, bool]] = {}
        for root in self.paths:
            try:
                st = root.stat()
            except FileNotFoundError:
                problems[str(root)] = "no such file or directory (waiting for it)"
                continue
            except OSError as exc:
                problems[str(root)] = f"cannot read: {exc.strerror}"
                continue
            if stat_mod.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                found[key] = (root, st, True)
                self._followed.add(key)
                folder, single = root.parent, True
            elif stat_mod.S_ISDIR(st.st_mode):
                folder, single = root, False
            else:
                problems[str(root)] = "not a regular file or folder"
                continue
            try:
                entries = list(os.scandir(folder))
            except OSError as exc:
                if not single:
                    problems[str(root)] = f"cannot list: {exc.strerror}"
                continue
            for entry in entries:
                try:
                    if not entry.is_file():
                        if not single and self._matches(entry.name) and entry.is_symlink():
                            # Otherwise skipped without a word (is_file follows the link).
                            problems[entry.path] = f"dangling symlink to {os.readlink(entry.path)}: its target does not exist"
                        continue
                    est = entry.stat()
                except OSError:
                    continue
                key = (est.st_dev, est.st_ino)
                if key in found:
                    continue
                known = self.sources.get(key)
                if single:
                    # Only the file given, and where it was rotated to.
                    if known is not None and (key in self._followed or known["path"] == str(root)):
                        self._followed.add(key)
                        found[key] = (Path(entry.path), est, False)
                elif self._matches(entry.name):
                    found[key] = (Path(entry.path), est, True)
                elif known is not None:
                    found[key] = (Path(entry.path), est, False)
        # Known (possibly rotated) files first, so their tails are read before
        # a copy could be mistaken for something new.
        return sorted(found.values(), key=lambda f: ((f[1].st_dev, f[1].st_ino) not in self.sources, str(f[0])))

    def poll(self) -> TailStats:
        """Read everything new in every file; returns what was ingested."""
        stats = TailStats(keep_ids=self.keep_ids)
        problems: dict[str, str] = {}
        self._finish_queued(problems)
        self._restore_abandoned(problems)
        files = self.files(problems)
        deferred = self._defer_indexes(files, problems)
        try:
            for path, st, wanted in files:
                try:
                    self._poll_file(path, st, wanted, stats)
                except FileNotFoundError:
                    continue  # vanished between listing and opening: next pass sees the truth
                except PermissionError as exc:
                    problems[str(path)] = f"permission denied: {exc.strerror}"
                except OffsetMoved:
                    self._load_sources()  # another ingester is ahead; take its state
                except OSError as exc:
                    problems[str(path)] = f"cannot read: {exc.strerror or exc}"
                except sqlite3.Error as exc:
                    problems[str(path)] = f"store error: {exc}"
                    log.debug("store error while ingesting %s", path, exc_info=True)
                    self._load_sources()
        finally:
            if deferred:
                self._restore_indexes(problems)
        for name, error in self._hook_problems.items():
            problems[f"(post-commit {name})"] = error.strip().splitlines()[-1]
        self._hook_problems.clear()
        self.problems = problems
        return stats

    def backlog(self, files: list[tuple[Path, os.stat_result, bool]]) -> int:
        """Bytes not read yet in ``files`` (as ``files()`` lists them), about."""
        total = 0
        for _path, st, wanted in files:
            src = self.sources.get((st.st_dev, st.st_ino))
            if src is not None:
                total += max(0, st.st_size - self._stream_offset(src))
            elif wanted:
                total += st.st_size
        return total

    def _defer_indexes(self, files: list[tuple[Path, os.stat_result, bool]], problems: dict[str, str]) -> bool:
        """Drop the tasks' secondary indexes when this pass has a backlog worth building them after."""
        if not self.defer_indexes:
            return False
        backlog = self.backlog(files)
        if backlog < DEFER_MIN_BYTES:
            return False
        try:
            tasks = self.conn.execute("SELECT coalesce(max(rowid), 0) FROM tasks").fetchone()[0]
            if backlog < tasks * DEFER_BYTES_PER_TASK:
                return False  # rebuilding over the rows already stored would cost more than it saves
            return bool(deferred_indexes.defer(self.conn))
        except sqlite3.Error as exc:  # the import goes on with the indexes as they are
            problems["(indexes)"] = f"could not defer the tasks' indexes: {exc}"
            log.debug("deferring indexes failed", exc_info=True)
            return False

    def _restore_abandoned(self, problems: dict[str, str]) -> None:
        """Indexes an import deferred and did not live to build (kill -9 while this process had the store open)."""
        try:
            if deferred_indexes.abandoned(self.conn):
                deferred_indexes.restore(self.conn)
        except sqlite3.Error as exc:
            problems["(indexes)"] = f"the tasks' indexes a killed import deferred are not built yet: {exc}"
            log.debug("restoring abandoned indexes failed", exc_info=True)

    def _restore_indexes(self, problems: dict[str, str]) -> None:
        try:
            deferred_indexes.restore(self.conn)
        except sqlite3.Error as exc:
            problems["(indexes)"] = (f"the tasks' indexes deferred for the import are not built yet ({exc}); "
                                     "they are built when the store is next opened for writing")
            log.debug("restoring deferred indexes failed", exc_info=True)

    def _finish_queued(self, problems: dict[str, str]) -> None:
        """Contract checks queued by batches committed without one (a crash, the OTLP receiver)."""
        if self.contracts is None:
            return
        try:
            if self.conn.execute("SELECT 1 FROM contract_pending LIMIT 1").fetchone() is not None:
                self.contracts.drain(self.conn)
        except Exception as exc:  # the events are safe; say why their checks wait
            problems["(contract checks)"] = f"queued checks not done: {describe_error(exc)}"
            log.debug("draining contract_pending failed", exc_info=True)

    def _replaced(self, fd: int, st: os.stat_result, src: dict) -> bool:
        return bool(src["fp_len"]) and (
            st.st_size < src["offset"] or _fingerprint(fd, src["fp_len"]) != src["fingerprint"]
        )

    def _poll_file(self, path: Path, st: os.stat_result, wanted: bool, stats: TailStats) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            st = os.fstat(fd)  # the name may point to another inode by now
            key = (st.st_dev, st.st_ino)
            src = self.sources.get(key)
            if src is not None and self._replaced(fd, st, src):
                self._handle_replaced(src, path, key, stats)
                src = None
            if src is None:
                if not wanted or st.st_size == 0:
                    return
                src, created = self._adopt_or_create(path, fd, st)
                if not created and self._replaced(fd, st, src):
                    return  # another tailer's row, out of date: the next pass retires it
            src["path"] = str(path)
            self._read_to_end(fd, st.st_size, src, stats)
        finally:
            os.close(fd)

    def _adopt_or_create(self, path: Path, fd: int, st: os.stat_result) -> tuple[dict, bool]:
        """A file we have not seen: a copy of a known stream, or a new stream."""
        fp_cache: dict[int, str | None] = {}
        for (fp_len, fingerprint), offset in self.streams.items():
            if st.st_size < fp_len:
                continue
            if fp_len not in fp_cache:
                fp_cache[fp_len] = _fingerprint(fd, fp_len)
            if fp_cache[fp_len] == fingerprint:
                return self._claim(path, st, min(offset, st.st_size), fingerprint, fp_len)
        return self._claim(path, st)

    def _handle_replaced(self, src: dict, path: Path, key: Key, stats: TailStats) -> None:
        """The file under this inode was truncated or rewritten in place."""
        # copytruncate: look for the copy among this folder's files and read
        # its tail from the offset the stream had reached.
        stream_offset = self._stream_offset(src)
        try:
            entries = list(os.scandir(path.parent))
        except OSError:
            entries = []
        for entry in entries:
            try:
                if not entry.is_file():
                    continue
                est = entry.stat()
                k = (est.st_dev, est.st_ino)
                if k == key or k in self.sources or est.st_size <= stream_offset:
                    continue
                fd = os.open(entry.path, os.O_RDONLY)
            except OSError:
                continue  # an unreadable neighbour is not our copy
            try:
                if _fingerprint(fd, src["fp_len"]) == src["fingerprint"]:
                    copy, _ = self._claim(Path(entry.path), est, stream_offset, src["fingerprint"], src["fp_len"])
                    self._read_to_end(fd, os.fstat(fd).st_size, copy, stats)
                    break
            finally:
                os.close(fd)
        self._retire(src, key)

    def _read_to_end(self, fd: int, size: int, src: dict, stats: TailStats) -> None:
        start = self._stream_offset(src)
        if start >= size:
            return  # everything in this file was read, maybe through a copy of it
        src["offset"] = start
        proto = otlp_files.is_proto(src["path"])
        while src["offset"] < size and not self._stopping():
            if self.parse_pool is not None and size - src["offset"] > self.batch_bytes and not proto:
                # Until a chunk only the serial path reads (then one batch here, and back).
                self._read_parallel(fd, size, src, stats)
                if src["offset"] >= size or self._stopping():
                    return
            # The batch's objects are all gone when _read_batch returns, before the
            # collector is back (store/gc_pause.py).
            with gc_pause.paused():
                if not self._read_batch(fd, size, src, stats, proto):
                    return  # only a partial line is there: wait for its newline

    def _read_batch(self, fd: int, size: int, src: dict, stats: TailStats, proto: bool) -> bool:
        """Read, decode and commit one batch from ``src["offset"]``; False if no complete line is there."""
        start = src["offset"]
        if proto:
            lines, new_offset = otlp_files.read_records(fd, start, size, self.batch_bytes)
        else:
            lines, new_offset = otlp_files.group_documents(*read_lines(fd, start, size, self.batch_bytes))
        if new_offset == start:
            return False
        parsed, rejects = decode_lines(lines, proto)
        try:
            prepared = prepare(parsed, src["id"])
        except Exception:  # some line holds a value nothing expected: find it, line by line
            prepared = None
        spans = parsed if any(type(item) is not tuple for item in parsed) else None
        self._commit(fd, size, src, stats, new_offset, prepared, spans, rejects, len(lines), lines)
        return True

    def _read_parallel(self, fd: int, size: int, src: dict, stats: TailStats) -> None:
        """A backlog: worker processes parse chunks ahead while this thread commits them in order."""
        pending: deque = deque()
        next_at = src["offset"]
        # The workers read their byte ranges themselves (store/parallel.py
        # parse_range): through this process's descriptor, so a file renamed
        # meanwhile is still the same inode; by name where there is no /proc.
        st = os.fstat(fd)
        proc_fd = f"/proc/{os.getpid()}/fd/{fd}"
        ref = (src["path"], proc_fd if os.path.exists(proc_fd) else "", st.st_dev, st.st_ino, src["offset"])
        span = min(POOL_CHUNK, self.batch_bytes)

        def submit() -> bool:
            nonlocal next_at
            if next_at >= size:
                return False
            book, token = (self.contracts.book(self.conn), self.contracts.token) if self.contracts else (None, None)
            hi = min(next_at + span, size)
            pending.append((hi, self.parse_pool.submit_range(ref, next_at, hi, size, src["id"], book, token)))
            next_at = hi
            return True

        # Unpickled rows are many small objects and no cycles: the collector
        # only costs here (about 1 us an event, growing with the heap).
        with gc_pause.paused():
            self._read_pooled(fd, size, src, stats, pending, submit)

    def _read_pooled(self, fd: int, size: int, src: dict, stats: TailStats, pending: deque,
                     submit: Callable[[], bool]) -> None:
        # Large transactions into growing indexes: a page cache larger than
        # SQLite's 2 MB default keeps index pages from being spilled to the
        # WAL and read back mid-transaction. Durability settings are untouched.
        cache_was = self.conn.execute("PRAGMA cache_size").fetchone()[0]
        self.conn.execute(f"PRAGMA cache_size = {BULK_CACHE_KIB}")
        checkpoint_was = self.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        # The contract book is asked for every chunk and every batch: its folders are looked at once a second.
        recheck_was = self.contracts.recheck_every if self.contracts else 0.0
        if self.contracts:
            self.contracts.recheck_every = BULK_CONTRACT_RECHECK_S
        if 0 < int(checkpoint_was) < BULK_CHECKPOINT_PAGES:  # (0: checkpoints are off; left so)
            self.conn.execute(f"PRAGMA wal_autocheckpoint = {BULK_CHECKPOINT_PAGES}")
        try:
            while len(pending) < POOL_TXN // POOL_CHUNK + self.parse_pool.workers and submit():
                pass
            while pending and not self._stopping():
                # The next chunk, and those already parsed behind it, in one
                # transaction: when committing is the slower side (post-commit
                # hooks, many parse processes), transactions grow up to
                # POOL_TXN and cost less per event.
                group: list = []
                rejects: list = []
                spans: list | None = None  # a group is all spans (claimed on commit) or all native events
                nlines, new_offset = 0, src["offset"]
                while pending and (not group or (pending[0][1].done() and new_offset - src["offset"] < POOL_TXN)):
                    hi, future = pending.popleft()
                    got = future.result()
                    # None: the worker could not read its range (a line too long, the file replaced);
                    # a range that does not start where the last ended (the file changed under us);
                    # a chunk that is mixed or pretty-printed: the serial path reads from here.
                    if got is None or got[0] != (new_offset if group else src["offset"]) or got[2] is None:
                        pending.appendleft((hi, future))
                        break
                    _, end, done = got
                    if done[0] is None:  # a line the worker could not prepare: this chunk alone, line by line
                        if group:
                            pending.appendleft((hi, future))
                            break
                        self._commit(fd, size, src, stats, end, None, None, [], done[2], None)
                        submit()
                        continue
                    if group and (spans is None) != (done[3] is None):
                        pending.appendleft((hi, future))
                        break
                    group.append(done[0])
                    if done[3] is not None:
                        spans = (spans or []) + done[3]
                    rejects.extend(done[1])
                    nlines += done[2]
                    new_offset = end
                    submit()
                if not group:
                    return
                self._commit(fd, size, src, stats, new_offset, merge(group), spans, rejects, nlines, None)
        finally:
            self.conn.execute(f"PRAGMA cache_size = {int(cache_was)}")
            self.conn.execute(f"PRAGMA wal_autocheckpoint = {int(checkpoint_was)}")
            if self.contracts:
                self.contracts.recheck_every = recheck_was
            for _, future in pending:
                future.cancel()

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def _commit(self, fd, size, src, stats, new_offset, prepared, spans, rejects, nlines, lines) -> None:
        """Commit one batch (bytes ``src["offset"]`` to ``new_offset``) with its derived rows.

        ``prepared`` None: preparing it failed; the batch is committed line
        by line, the line at fault rejected. ``lines``: the batch's lines,
        when in hand (else they are read again if needed).
        """
        start = src["offset"]
        if not src["fp_len"]:
            src["fp_len"] = n = _fingerprint_len(fd, size)
            src["fingerprint"] = _fingerprint(fd, n)

        def reread() -> list:
            return lines if lines is not None else read_lines(fd, start, new_offset, new_offset - start)[0]

        derive = self.contracts.derive if self.contracts is not None else None
        proto = otlp_files.is_proto(src["path"])
        if prepared is None:
            result = commit_lines(self.conn, src, reread(), new_offset=new_offset, lines=nlines, derive=derive,
                                  proto=proto)
        else:
            result = commit(self.conn, src, prepared, rejects, new_offset=new_offset, lines=nlines, spans=spans,
                            derive=derive, reread=reread, proto=proto)
        self.committed_at = time.time()
        if self.on_commit is not None:
            self.on_commit()
        self._note_offset(src)
        if result.problem:
            self._hook_problems["contracts"] = result.problem
        for hook in self.post_commit:
            try:
                hook(self.conn, result)
            except Exception:  # derived work must never stop ingestion
                # Said once per pass in problems, not on stderr (the console draws there).
                self._hook_problems[getattr(hook, "__name__", type(hook).__name__)] = traceback.format_exc(limit=1)
                log.debug("post-commit hook %r failed", hook, exc_info=True)
        batch = TailStats(keep_ids=self.keep_ids)
        batch.add(result, src["path"], new_offset - start, nlines)
        stats.add(result, src["path"], new_offset - start, nlines)
        if self.on_batch is not None:
            self.on_batch(batch)

    # -- following ----------------------------------------------------------

    def watch_roots(self) -> list[str]:
        """Folders to watch: each folder path, and the folder of each file path."""
        roots = set()
        for p in self.paths:
            if p.is_dir():
                roots.add(str(p))
            elif p.parent.is_dir():
                roots.add(str(p.parent))
        return sorted(roots)

    def run(self, stop: threading.Event, *, rescan_ms: int = 1000, debounce_ms: int = DEBOUNCE_MS) -> None:
        """Poll now, then on every change under the paths until ``stop`` is set.

        watchfiles' defaults wait 1.6 s to group changes; a ``debounce_ms`` debounce
        and a step of at most 10 ms bring append-to-commit under 100 ms. Under a
        steady stream of appends (changes more often than the step) every batch
        waits the whole debounce: it is what a line waits before its commit
        begins, at most, and what bounds the commits a second. A timed rescan covers
        what notifications can miss (a folder created later, network mounts).
        Folders are watched rather than files so a file created or renamed
        into place is seen at once.
        """
        import watchfiles

        self._stop = stop
        self._safe_poll()
        while not stop.is_set():
            roots = self.watch_roots()
            if not roots:
                stop.wait(rescan_ms / 1000)
                self._safe_poll()
                continue
            try:
                for _changes in watchfiles.watch(
                    *roots,
                    debounce=debounce_ms,
                    step=min(10, debounce_ms),
                    rust_timeout=rescan_ms,
                    yield_on_timeout=True,
                    stop_event=stop,
                    recursive=False,
                    raise_interrupt=False,
                ):
                    self.woke_at = time.time()
                    self._safe_poll()
                    if self.watch_roots() != roots:
                        break  # a folder came or went; re-establish the watch
            except Exception as exc:  # a watcher failure must not stop ingestion
                log.debug("file watcher failed, polling instead", exc_info=True)
                self.problems = {**self.problems, "(watcher)": f"file notifications failed, polling: {exc}"}
                stop.wait(rescan_ms / 1000)
                self._safe_poll()

    def _safe_poll(self) -> None:
        try:
            self.poll()
        except Exception as exc:  # following must survive anything; say what happened
            log.debug("ingest pass failed", exc_info=True)
            self.problems = {**self.problems, "(ingest)": f"{type(exc).__name__}: {exc}"}
