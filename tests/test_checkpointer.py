"""The ingest's WAL checkpoints run on their own thread: commits stop checkpointing, the WAL stays bounded."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest

from agentdeck.store import checkpointer
from agentdeck.store.checkpointer import Checkpointer, hand_over
from agentdeck.store.db import connect
from agentdeck.store.txn import atomic

MB = 1024 * 1024


def wal_size(db) -> int:
    try:
        return os.path.getsize(f"{db}-wal")
    except FileNotFoundError:
        return 0


def commit_mb(conn: sqlite3.Connection, n: int) -> None:
    for _ in range(n):
        with atomic(conn):
            conn.execute("INSERT INTO blobs (b) VALUES (?)", (os.urandom(MB),))


def wait_rounds(cp: Checkpointer, more: int, timeout: float = 10.0) -> None:
    want = cp.rounds + more
    deadline = time.monotonic() + timeout
    while cp.rounds < want:
        assert time.monotonic() < deadline, "the checkpointer made no round"
        time.sleep(0.005)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpointer, "WAL_LIMIT_BYTES", 4 * MB)
    db = tmp_path / "store.db"
    conn = connect(db)
    conn.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)")
    yield db, conn
    conn.close()


def test_commits_no_longer_checkpoint_once_handed_over(store):
    db, writer = store
    hand_over(writer)
    commit_mb(writer, 12)  # ~3000 pages: SQLite's default would have checkpointed and restarted the WAL
    assert wal_size(db) > 12 * MB
    assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0


def test_wal_stays_bounded_with_the_checkpointer(store):
    db, writer = store
    hand_over(writer)
    stop = threading.Event()
    cp = Checkpointer(db, stop, every=0.01)
    cp.start()
    try:
        biggest = 0
        for _ in range(30):  # 30 MB committed in all
            commit_mb(writer, 1)
            wait_rounds(cp, 2)  # a whole round after the commit: the next commit restarts the WAL
            biggest = max(biggest, wal_size(db))
        assert biggest <= 4 * MB
        assert cp.error is None
    finally:
        stop.set()
        cp.join(5)
    assert writer.execute("SELECT count(*) FROM blobs").fetchone()[0] == 30


def test_wal_comes_back_under_the_limit_after_a_long_reader(store):
    """A reader holding one snapshot (the canary analyst's report) pins the WAL; once it is done, the
    checkpointer copies everything and the writer's next commit cuts the file back to the limit."""
    db, writer = store
    hand_over(writer)
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM blobs").fetchone()  # the snapshot is taken here
    stop = threading.Event()
    cp = Checkpointer(db, stop, every=0.01)
    cp.start()
    try:
        commit_mb(writer, 10)
        wait_rounds(cp, 2)
        assert wal_size(db) > 10 * MB  # pinned by the reader: nothing lost, the file grows meanwhile
        reader.execute("COMMIT")
        wait_rounds(cp, 2)  # everything copied, no reader left in the WAL
        commit_mb(writer, 1)  # restarts the WAL, and cuts the file back (journal_size_limit)
        assert wal_size(db) <= 4 * MB
    finally:
        stop.set()
        cp.join(5)
        reader.close()
    assert connect(db, readonly=True).execute("SELECT count(*) FROM blobs").fetchone()[0] == 11


def test_checkpoints_that_keep_failing_or_a_dead_thread_are_a_problem_to_show(tmp_path):
    """The writers no longer checkpoint: a checkpointer that cannot work must be said (ingest problems), not kept."""
    import sqlite3 as sq
    import threading as th

    from agentdeck.store.checkpointer import Checkpointer
    from agentdeck.store.health import _source_advice

    stop = th.Event()
    cp = Checkpointer(tmp_path / "no-such-dir" / "s.db", stop)  # cannot open: the thread ends at once
    cp.start()
    cp.join(5)
    assert cp.problem() is not None and "stopped" in cp.problem()
    assert _source_advice("(checkpoints)", cp.problem())[0] == "warn"
    stop.set()
    assert cp.problem() is None  # stopping on purpose is not a problem

    ok = Checkpointer(tmp_path / "s.db", th.Event())
    conn = sq.connect(tmp_path / "s.db")
    conn.execute("PRAGMA journal_mode = wal")

    class Broken:
        def execute(self, *_):
            raise sq.OperationalError("disk I/O error")

    ok.checkpoint(Broken())
    assert ok.problem(after=3600) is None  # one failed round: the next may do it
    assert (ok.problem(after=0.0) or "").startswith("WAL checkpoints failing")
    ok.checkpoint(conn)
    assert ok.error is None and ok.failing_since is None
