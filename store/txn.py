"""One transaction helper for every write to the store.

``with atomic(conn):`` opens ``BEGIN IMMEDIATE`` (the write lock is taken at
once, so two writers queue on ``busy_timeout`` instead of failing half way),
commits when the block ends and rolls back when it raises. The rollback never
hides the error that caused it: SQLite may already have rolled back on its own
(a full disk, an I/O error), and a second ``ROLLBACK`` would replace the real
message with "cannot rollback - no transaction is active".

Errors that an operator can act on are re-raised as :class:`StoreError`
subclasses whose message says what happened and what to do; the original
``sqlite3`` error is kept as ``__cause__``.

``atomic`` nests: inside an open transaction it uses a savepoint, so a helper
that writes can be called on its own or as part of a larger transaction.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path


class StoreError(sqlite3.OperationalError):
    """A store write failed for a reason the operator can act on."""

    what = "the store failed"
    todo = ""

    def __init__(self, detail: str, path: str | None = None) -> None:
        self.detail = detail
        self.path = path
        where = f" ({path})" if path else ""
        todo = f"; {self.todo}" if self.todo else ""
        super().__init__(f"{self.what}{where}: {detail}{todo}")


class StoreFull(StoreError):
    what = "the store's disk is full"
    todo = "free space on that file system (or move the store with --db), then retry"


class StoreReadOnly(StoreError):
    what = "the store is read-only"
    todo = "check the file's and its folder's permissions (SQLite writes -wal and -shm files beside it)"


class StoreLocked(StoreError):
    what = "the store is locked by another process"
    todo = "another writer held it past the busy timeout; retry, or find the process holding it"


class StoreCorrupt(StoreError):
    what = "the store file is damaged or not an agentdeck store"
    todo = "restore it from a copy or start a new one with --db"


class StoreTooNew(StoreError):
    what = "the store was written by a newer agentdeck"
    todo = "upgrade agentdeck to open it (an older version would miss what the newer one records there)"


def classify(exc: sqlite3.Error, path: str | None = None) -> sqlite3.Error:
    """The operator-facing error for ``exc`` (``exc`` itself when none applies)."""
    if isinstance(exc, StoreError):
        return exc
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc).lower()
    if primary == sqlite3.SQLITE_FULL or "database or disk is full" in text:
        return StoreFull(str(exc), path)
    if primary == sqlite3.SQLITE_READONLY or "readonly database" in text or "read-only" in text:
        return StoreReadOnly(str(exc), path)
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "database is locked" in text:
        return StoreLocked(str(exc), path)
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in text or "not a database" in text:
        return StoreCorrupt(str(exc), path)
    return exc


def store_path(conn: sqlite3.Connection) -> str | None:
    """The main database file of ``conn`` (None for in-memory)."""
    try:
        for _seq, name, file in conn.execute("PRAGMA database_list"):
            if name == "main":
                return str(Path(file)) if file else None
    except sqlite3.Error:
        pass
    return None


_savepoints = itertools.count()


@contextlib.contextmanager
def atomic(conn: sqlite3.Connection, *, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """Run the block as one transaction (a savepoint when one is already open).

    The connection must be in autocommit mode (``isolation_level=None``), as
    :func:`agentdeck.store.db.connect` opens it.
    """
    if conn.in_transaction:
        name = f"atomic_{next(_savepoints)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
            raise
        else:
            conn.execute(f"RELEASE {name}")
        return
    try:
        conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    except sqlite3.Error as exc:
        raise classify(exc, store_path(conn)) from exc
    try:
        yield conn
    except BaseException as exc:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # the original error matters, not this one
                conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            better = classify(exc, store_path(conn))
            if better is not exc:
                raise better from exc
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise classify(exc, store_path(conn)) from exc
