"""What a one-shot pass left unread at the end of each file.

Tailing waits for a line's newline before committing it, which is right for a
file still being written but means a one-shot run (``agentdeck check``,
``agentdeck ingest``) silently skips a last line that has none. After such a
run, ``unread_tails`` compares each file's size with the offset committed for
it in the ``sources`` table, so the command can say what it did not read.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable

SCAN = 1024 * 1024  # bytes read at a time when looking for a newline in the unread tail


@dataclass(frozen=True)
class UnreadTail:
    path: str
    offset: int  # everything before this byte is in the store
    size: int  # the file's size when it was checked
    has_newline: bool  # complete lines among the unread bytes: the file grew after the pass

    @property
    def nbytes(self) -> int:
        return self.size - self.offset

    def describe(self) -> str:
        if self.has_newline:
            return f"{self.path} grew while it was read: {self.nbytes} bytes after byte {self.offset} not ingested"
        return f"{self.nbytes} bytes at the end of {self.path} have no newline yet (not ingested)"


def committed_offsets(conn: sqlite3.Connection) -> dict[tuple[int, int], int]:
    """(dev, inode) → offset committed for that file, counting what was read through copies of its stream.

    A copy of a stream (same fingerprint) is read only past the stream's
    furthest offset, so that offset is what counts for every file holding it.
    """
    stream_offsets: dict[tuple[int, str], int] = {}
    rows = conn.execute("SELECT dev, inode, fingerprint, fp_len, offset FROM sources").fetchall()
    for _dev, _inode, fingerprint, fp_len, offset in rows:
        if fp_len:
            key = (fp_len, fingerprint)
            stream_offsets[key] = max(offset, stream_offsets.get(key, 0))
    live: dict[tuple[int, int], int] = {}
    for dev, inode, fingerprint, fp_len, offset in rows:
        if inode > 0:  # retired rows keep inode = -id
            live[(dev, inode)] = max(offset, stream_offsets.get((fp_len, fingerprint), 0)) if fp_len else offset
    return live


def unread_tails(conn: sqlite3.Connection, files: Iterable[str | Path]) -> list[UnreadTail]:
    """The files among ``files`` with bytes past their committed offset.

    A file the store has no source for is skipped: it was empty, appeared
    after the pass, or could not be read (the tailer's problems say so).
    """
    offsets = committed_offsets(conn)
    tails: list[UnreadTail] = []
    for path in files:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            offset = offsets.get((st.st_dev, st.st_ino))
            if offset is None or st.st_size <= offset:
                continue
            state = _tail_state(fd, offset, st.st_size)
            if state != "blank":
                tails.append(UnreadTail(str(path), offset, st.st_size, state == "lines"))
        except OSError:
            continue
        finally:
            os.close(fd)
    return tails


def _tail_state(fd: int, start: int, end: int) -> str:
    """``lines`` (a newline in it), ``blank`` (only whitespace: no event lost) or ``partial``."""
    pos = start
    blank = True
    while pos < end:
        block = os.pread(fd, min(SCAN, end - pos), pos)
        if not block:
            break
        if b"\n" in block:
            return "lines"
        blank = blank and not block.strip()
        pos += len(block)
    return "blank" if blank else "partial"
