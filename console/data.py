"""Store access for the console: one read connection per worker thread."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from store.db import connect


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
