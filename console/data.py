"""Store access for the console: one read connection per worker thread, and the
Tasks screen's paging (plain functions, called on worker threads)."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from agentdeck.store import queries
from agentdeck.store.db import connect


class StoreAccess:
    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self._local = threading.local()
        connect(self.db_path).close()  # create and migrate before any reader opens it

    def reader(self) -> sqlite3.Connection:
        """This thread's read-only connection (call from workers, not the UI thread)."""
        conn = getattr(self._local, "ro", None)
        if conn is None:
            conn = self._local.ro = connect(self.db_path, readonly=True)
        return conn

    def writer(self) -> sqlite3.Connection:
        """This thread's read-write connection, for human decisions and audit records."""
        conn = getattr(self._local, "rw", None)
        if conn is None:
            conn = self._local.rw = connect(self.db_path)
        return conn


# -- what the Tasks screen asks for, computed on a worker thread -------------

WINDOW = 200  # rows the Tasks table holds at most


@dataclass
class TaskPage:
    """One window of the Tasks list and what lies beyond it."""

    rows: list[sqlite3.Row]
    older: bool  # matching tasks exist before the first row
    newer: int  # matching tasks after the last row (counted up to a cap)


def task_page(conn: sqlite3.Connection, filt: queries.TaskFilter, anchor: queries.TaskKey | None,
              limit: int = WINDOW) -> TaskPage:
    """The newest ``limit`` tasks (anchor None: follow), or ``limit`` from ``anchor`` on."""
    if anchor is None:
        rows = queries.tasks_newest(conn, filt, limit)
        newer = 0
    else:
        rows = queries.tasks_from(conn, filt, anchor, limit)
        newer = queries.count_after(conn, filt, queries.task_key(rows[-1])) if rows else 0
    older = bool(rows) and queries.key_before(conn, filt, queries.task_key(rows[0]), 1) is not None
    return TaskPage(rows, older, newer)


def older_anchor(conn: sqlite3.Connection, filt: queries.TaskFilter, first: queries.TaskKey,
                 steps: int) -> queries.TaskKey:
    """Where a window starts that reaches ``steps`` tasks before ``first``."""
    return queries.key_before(conn, filt, first, steps) or first
