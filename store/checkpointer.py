"""WAL checkpoints on a thread of their own, not inside the tailer's commits.

SQLite's default (``wal_autocheckpoint``, 1000 pages) runs a checkpoint in
whichever commit pushes the WAL past the limit. While the canary analyst
holds a read transaction for seconds the WAL cannot restart, every commit
after that point is over the limit, and about one tailer commit in ten paid a
20-77 ms checkpoint (bench/README.md). Here the writer's connection stops
checkpointing (``wal_autocheckpoint = 0``) and this thread runs PASSIVE
checkpoints on its own connection: PASSIVE never takes the write lock nor
waits for readers, so commits go on while it copies pages; SQLite restarts
the WAL from its start at the next commit once every frame is copied and no
reader needs it, and ``journal_size_limit`` (set on the writer, which does
the restart) gives the file back past that size. The WAL is as bounded as
with autocheckpoint: by what readers pin, never by this thread falling
behind (it copies everything it may each round).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

CHECKPOINT_EVERY_S = 0.25  # a round: at 200 events/s a few hundred KB of WAL at most between rounds
WAL_LIMIT_BYTES = 16 * 1024 * 1024  # the WAL file is cut back to this when SQLite restarts it


def hand_over(writer: sqlite3.Connection) -> None:
    """The writer's commits no longer checkpoint; the WAL file is cut back when the writer restarts it."""
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")


class Checkpointer(threading.Thread):
    """PASSIVE checkpoints of ``db`` every ``every`` seconds until ``stop`` is set (then one last)."""

    def __init__(self, db: str | Path, stop: threading.Event, *, every: float = CHECKPOINT_EVERY_S) -> None:
        super().__init__(name="checkpointer", daemon=True)
        self.db, self.stop, self.every = str(db), stop, every
        self.rounds = 0
        self.error: str | None = None  # the last failure (the next round tries again); None once one succeeds
        self.failing_since: float | None = None  # monotonic: since when every round failed

    def problem(self, *, after: float = 5.0) -> str | None:
        """What the operator must hear: no checkpoints for ``after`` seconds (the WAL then only grows,
        since the writers no longer checkpoint), or the thread gone. None while it works."""
        if self.ident is not None and not self.is_alive() and not self.stop.is_set():  # started, then ended
            return f"WAL checkpoints stopped ({self.error or 'the thread ended'}): the WAL file grows until restart"
        if self.error and self.failing_since is not None and time.monotonic() - self.failing_since >= after:
            return f"WAL checkpoints failing for {time.monotonic() - self.failing_since:.0f} s: {self.error}"
        return None

    def run(self) -> None:
        try:
            conn = sqlite3.connect(self.db, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            return
        try:
            conn.execute("PRAGMA busy_timeout = 1000")
            while True:
                stopping = self.stop.wait(self.every)
                self.checkpoint(conn)
                if stopping:
                    return
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # busy or locked for a moment: the next round does it
            self.error = f"{type(exc).__name__}: {exc}"
            if self.failing_since is None:
                self.failing_since = time.monotonic()
        else:
            self.error = None
            self.failing_since = None
        self.rounds += 1
