"""Following trace files into the store, exactly once.

A *source* is one file's content stream, known by device, inode and a
fingerprint of its first bytes (so a reused inode is not mistaken for an old
file). Its offset is committed with the events read up to it
(``store.ingest.apply_batch``), which is what makes a kill -9 at any moment
safe.

Rotation and truncation:

* rename rotation (``app.jsonl`` → ``app.jsonl.1``, new ``app.jsonl``): the
  renamed file keeps its inode, so it is read on to its end under its new
  name; the new file is a new source read from 0.
* copytruncate: the file shrinks or its first bytes change. Any file in the
  same folder with the old fingerprint is the copy; it inherits the old
  offset so the lines written between our last read and the truncation are
  read from it, once. The truncated file then starts again from 0.

A file matching the patterns whose fingerprint equals a known source's is a
copy of it and also inherits that offset, so a rotated copy with a matching
name is never read twice.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from store import formats, postcommit
from store.ingest import BatchResult, OffsetMoved, Reject, apply_batch, describe_error
from store.reader import CHUNK, MAX_LINE, read_lines

log = logging.getLogger(__name__)

PATTERNS = ("*.jsonl", "*.ndjson", "*.json")
FP_LEN = 1024


@dataclass
class TailStats:
    events: int = 0
    rejects: int = 0
    lines: int = 0
    bytes: int = 0
    tasks: set[str] = field(default_factory=set)
    escalations: list[str] = field(default_factory=list)
    files: set[str] = field(default_factory=set)

    def add(self, result: BatchResult, path: str, nbytes: int, nlines: int) -> None:
        self.events += result.events
        self.rejects += result.rejects
        self.lines += nlines
        self.bytes += nbytes
        self.tasks |= result.tasks
        self.escalations.extend(result.escalations)
        self.files.add(path)


def _fingerprint(fd: int, length: int) -> str | None:
    data = os.pread(fd, length, 0)
    if len(data) < length:
        return None
    return hashlib.sha1(data).hexdigest()


def decode_lines(lines) -> tuple[list, list[Reject]]:
    parsed: list = []
    rejects: list[Reject] = []
    for line in lines:
        if line.oversized:
            rejects.append(Reject(line.offset, f"line too long ({line.oversized} bytes, limit {MAX_LINE})", line.data))
            continue
        try:
            parsed.extend(formats.decode(line.data))
        except Exception as exc:  # any bad line is a reject, never a crash
            rejects.append(Reject(line.offset, describe_error(exc), line.data))
    return parsed, rejects


class Tailer:
    """Reads every trace file under some paths into one store.

    Not thread-safe: one thread calls ``poll`` (or ``run``). The connection
    should be this tailer's own.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        paths: Iterable[str | Path],
        *,
        patterns: Iterable[str] = PATTERNS,
        batch_bytes: int = CHUNK,
        on_batch: Callable[[TailStats], None] | None = None,
        post_commit: Iterable[Callable[[sqlite3.Connection, BatchResult], None]] | None = None,
    ) -> None:
        self.conn = conn
        self.paths = [Path(p) for p in paths]
        self.patterns = tuple(patterns)
        self.batch_bytes = batch_bytes
        self.on_batch = on_batch
        # Work derived from a committed batch (e.g. contract checks). Runs on
        # this tailer's thread and connection, after the commit.
        self.post_commit = list(postcommit.default() if post_commit is None else post_commit)
        self.problems: dict[str, str] = {}
        self.sources: dict[tuple[int, int], dict] = {}
        self._load_sources()

    # -- source bookkeeping -------------------------------------------------

    def _load_sources(self) -> None:
        self.sources.clear()
        for row in self.conn.execute("SELECT * FROM sources ORDER BY id"):
            self.sources[(row["dev"], row["inode"])] = dict(row)

    def _new_source(self, path: Path, st: os.stat_result, offset: int = 0, fingerprint=None, fp_len=0) -> dict:
        now = time.time()
        cur = self.conn.execute(
            """INSERT INTO sources (path, dev, inode, fingerprint, fp_len, offset, first_seen, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            (str(path), st.st_dev, st.st_ino, fingerprint, fp_len, offset, now, now),
        )
        row = dict(self.conn.execute("SELECT * FROM sources WHERE id = ?", (cur.lastrowid,)).fetchone())
        self.sources[(st.st_dev, st.st_ino)] = row
        return row

    def _matches(self, name: str) -> bool:
        return any(fnmatch.fnmatch(name, p) for p in self.patterns)

    # -- one pass -----------------------------------------------------------

    def files(self) -> list[tuple[Path, os.stat_result]]:
        """Files to look at now: matching files, plus renamed files we already follow."""
        found: dict[tuple[int, int], tuple[Path, os.stat_result]] = {}
        for root in self.paths:
            try:
                st = root.stat()
            except FileNotFoundError:
                self.problems[str(root)] = "no such file or directory (waiting for it)"
                continue
            except OSError as exc:
                self.problems[str(root)] = f"cannot read: {exc.strerror}"
                continue
            self.problems.pop(str(root), None)
            if stat_mod.S_ISREG(st.st_mode):
                found[(st.st_dev, st.st_ino)] = (root, st)
                continue
            try:
                entries = list(os.scandir(root))
            except OSError as exc:
                self.problems[str(root)] = f"cannot list: {exc.strerror}"
                continue
            for entry in entries:
                try:
                    if not entry.is_file():
                        continue
                    st = entry.stat()
                except OSError:
                    continue
                key = (st.st_dev, st.st_ino)
                if key in self.sources or self._matches(entry.name):
                    found[key] = (Path(entry.path), st)
        # Known (possibly rotated) files first, so their tails are read before
        # a copy could be mistaken for something new.
        return sorted(found.values(), key=lambda ps: ((ps[1].st_dev, ps[1].st_ino) not in self.sources, str(ps[0])))

    def poll(self) -> TailStats:
        """Read everything new in every file; returns what was ingested."""
        stats = TailStats()
        for path, st in self.files():
            try:
                self._poll_file(path, st, stats)
            except FileNotFoundError:
                continue  # vanished between listing and opening: next pass sees the truth
            except PermissionError as exc:
                self.problems[str(path)] = f"permission denied: {exc.strerror}"
            except OffsetMoved:
                self._load_sources()  # another ingester is ahead; take its state
        return stats

    def _poll_file(self, path: Path, st: os.stat_result, stats: TailStats) -> None:
        key = (st.st_dev, st.st_ino)
        fd = os.open(path, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            src = self.sources.get(key)
            if src is not None and src["fp_len"]:
                replaced = st.st_size < src["offset"] or _fingerprint(fd, src["fp_len"]) != src["fingerprint"]
                if replaced:
                    self._handle_replaced(src, path, key, stats)
                    src = None
            if src is None:
                if st.st_size == 0:
                    return
                src = self._adopt_or_create(path, fd, st)
            if src["path"] != str(path):
                src["path"] = str(path)
            self.problems.pop(str(path), None)
            self._read_to_end(fd, st.st_size, src, stats)
        finally:
            os.close(fd)

    def _adopt_or_create(self, path: Path, fd: int, st: os.stat_result) -> dict:
        """A file we have not seen: a copy of a known source, or a new stream."""
        fp_cache: dict[int, str | None] = {}
        for other in list(self.sources.values()):
            n = other["fp_len"]
            if not n or st.st_size < other["offset"]:
                continue
            if n not in fp_cache:
                fp_cache[n] = _fingerprint(fd, n)
            if fp_cache[n] == other["fingerprint"]:
                return self._new_source(path, st, other["offset"], other["fingerprint"], n)
        return self._new_source(path, st)

    def _handle_replaced(self, src: dict, path: Path, key, stats: TailStats) -> None:
        """The file under this inode was truncated or rewritten in place."""
        # Look for the copy (copytruncate) among this folder's files and read
        # its tail from the offset we had reached.
        folder = path.parent
        try:
            entries = list(os.scandir(folder))
        except OSError:
            entries = []
        for entry in entries:
            try:
                st = entry.stat()
            except OSError:
                continue
            k = (st.st_dev, st.st_ino)
            if k == key or k in self.sources or not entry.is_file() or st.st_size < src["offset"]:
                continue
            fd = os.open(entry.path, os.O_RDONLY)
            try:
                if _fingerprint(fd, src["fp_len"]) == src["fingerprint"]:
                    copy = self._new_source(Path(entry.path), st, src["offset"], src["fingerprint"], src["fp_len"])
                    self._read_to_end(fd, st.st_size, copy, stats)
                    break
            finally:
                os.close(fd)
        # The old stream under this inode is over; forget it so the file is new.
        # (The row stays for history under a tombstone inode.)
        self.conn.execute("UPDATE sources SET inode = -id WHERE id = ?", (src["id"],))
        self.sources.pop(key, None)

    def _read_to_end(self, fd: int, size: int, src: dict, stats: TailStats) -> None:
        while src["offset"] < size:
            start = src["offset"]
            lines, new_offset = read_lines(fd, start, size, self.batch_bytes)
            if new_offset == start:
                return  # only a partial line is there: wait for its newline
            if not src["fp_len"]:
                n = min(size, FP_LEN)
                src["fp_len"] = n
                src["fingerprint"] = _fingerprint(fd, n)
            parsed, rejects = decode_lines(lines)
            result = apply_batch(self.conn, src, parsed, rejects, new_offset=new_offset, lines=len(lines))
            for hook in self.post_commit:
                try:
                    hook(self.conn, result)
                except Exception:  # derived work must never stop ingestion
                    log.exception("post-commit hook %r failed", hook)
            batch = TailStats()
            batch.add(result, src["path"], new_offset - start, len(lines))
            stats.add(result, src["path"], new_offset - start, len(lines))
            if self.on_batch is not None:
                self.on_batch(batch)

    # -- following ----------------------------------------------------------

    def run(self, stop: threading.Event, *, rescan_ms: int = 1000) -> None:
        """Poll now, then on every change under the paths until ``stop`` is set.

        watchfiles' defaults wait 1.6 s to group changes; a 50 ms debounce and
        10 ms step bring append-to-commit under 100 ms. A timed rescan covers
        what notifications can miss (a folder created later, network mounts).
        """
        import watchfiles

        self.poll()
        while not stop.is_set():
            watch_roots = [str(p) for p in self.paths if p.exists()]
            if not watch_roots:
                stop.wait(rescan_ms / 1000)
                self.poll()
                continue
            try:
                for _changes in watchfiles.watch(
                    *watch_roots,
                    debounce=50,
                    step=10,
                    rust_timeout=rescan_ms,
                    yield_on_timeout=True,
                    stop_event=stop,
                    recursive=False,
                    raise_interrupt=False,
                ):
                    self.poll()
                    if any(not p.exists() for p in self.paths):
                        break  # a root went away; re-establish the watch
            except Exception as exc:  # a watcher failure must not stop ingestion
                log.warning("file watcher failed, polling instead: %s", exc)
                stop.wait(rescan_ms / 1000)
                self.poll()
