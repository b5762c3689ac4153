"""The store watcher's refresh throttle (console/ingest_service.py), below the UI: no Pilot, no sleep.

The watcher is the only thing that tells screens the store changed. It posts at most one ``Ingested``
per ``refresh_every``; what a user relies on is that a screen re-reading on the last notice of a burst
shows the burst's last commit (a commit is never left without a notice after it), and that the UI
thread is woken once per window, not once per commit.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from agentdeck.console.ingest_service import StoreWatcher
from agentdeck.console.messages import Ingested
from agentdeck.store.db import connect
from agentdeck.store.txn import atomic

WAIT_S = 20.0  # bound on every wait for a condition (a loaded machine), never a sleep


class FakeApp:
    """Takes the watcher's messages; on each Ingested reads the store as a screen's reload would."""

    def __init__(self, db) -> None:
        self.db = db
        self.cond = threading.Condition()
        self.posts: list[tuple[float, int]] = []  # (monotonic time posted, rows the read after it saw)
        self.reader: sqlite3.Connection | None = None

    def post_message(self, message) -> bool:
        if isinstance(message, Ingested):
            if self.reader is None:  # (the watcher's thread: its own connection, as a screen's worker has)
                self.reader = connect(self.db, readonly=True)
            seen = self.reader.execute("SELECT count(*) FROM probe").fetchone()[0]
            with self.cond:
                self.posts.append((time.monotonic(), seen))
                self.cond.notify_all()
        return True

    def wait_for(self, condition, what: str) -> None:
        with self.cond:
            assert self.cond.wait_for(condition, WAIT_S), f"not within {WAIT_S:.0f} s: {what}; posts {self.posts}"


@pytest.fixture
def store(tmp_path):
    db = tmp_path / "store.db"
    conn = connect(db)
    with atomic(conn):
        conn.execute("CREATE TABLE probe (n INTEGER)")
    yield db, conn
    conn.close()


def commit(conn, n: int) -> None:
    with atomic(conn):
        conn.execute("INSERT INTO probe VALUES (?)", (n,))


def start(watcher: StoreWatcher, first_notice: bool = False) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    watcher.skip_first = True
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    assert watcher.watching.wait(WAIT_S)  # commits before it read its first data_version are not news to it
    app = watcher.app
    if first_notice:
        return stop, thread  # the test waits for it
    # Its first notice, for whatever was committed before it looked (see the test below); the tests after it
    # count the notices that commits made from here on cause.
    app.wait_for(lambda: bool(app.posts), "the notice a start posts")  # type: ignore[attr-defined]
    with app.cond:  # type: ignore[attr-defined]
        app.posts.clear()  # type: ignore[attr-defined]
    return stop, thread


def finish(watcher: StoreWatcher, stop: threading.Event, thread: threading.Thread) -> None:
    stop.set()
    watcher.wake()
    thread.join(WAIT_S)
    assert not thread.is_alive()


@contextmanager
def running(watcher: StoreWatcher, first_notice: bool = False) -> Iterator[None]:
    """The watcher's thread for the block (``start``), stopped after it (``finish``)."""
    stop, thread = start(watcher, first_notice)
    try:
        yield
    finally:
        finish(watcher, stop, thread)


def test_the_last_commit_of_a_burst_is_always_posted_and_the_window_holds(store):
    db, conn = store
    app = FakeApp(db)
    window = 0.2
    watcher = StoreWatcher(app, db, poll_s=0.002, refresh_every=window)  # type: ignore[arg-type]
    with running(watcher):
        commits = 60
        for n in range(commits):
            commit(conn, n)
        # No commit comes after the burst: only the held notice can show the last one.
        app.wait_for(lambda: app.posts and app.posts[-1][1] == commits, "a notice whose read shows the last commit")
    times = [t for t, _ in app.posts]
    # (times taken in the fake, after its read: a little jitter against the watcher's own clock)
    assert all(b - a >= window * 0.9 for a, b in zip(times, times[1:])), f"posts closer than the window: {times}"
    assert len(app.posts) < commits  # coalesced: the UI is woken per window, not per commit


def test_a_commit_inside_the_window_is_held_then_posted_when_it_ends(store):
    db, conn = store
    app = FakeApp(db)
    window = 0.5
    watcher = StoreWatcher(app, db, poll_s=0.002, refresh_every=window)  # type: ignore[arg-type]
    with running(watcher):
        commit(conn, 1)
        app.wait_for(lambda: len(app.posts) == 1, "the first commit after a quiet spell, posted at once")
        first_at = app.posts[0][0]
        commit(conn, 2)
        committed_at = time.monotonic()
        assert committed_at < first_at + window, "the second commit was meant to land inside the window"
        app.wait_for(lambda: len(app.posts) == 2, "the held notice, when the window ends")
    assert app.posts[1][1] == 2  # its read shows the held commit
    assert app.posts[1][0] >= first_at + window * 0.9  # not before the window ended


def test_a_commit_after_a_quiet_window_is_posted_at_once_and_heard_wakes_the_watcher(store):
    db, conn = store
    app = FakeApp(db)
    # A poll far longer than the wait bound: only heard() (the in-app receiver's nudge) can explain a post.
    watcher = StoreWatcher(app, db, poll_s=60.0, health_every=3600, refresh_every=0.0)  # type: ignore[arg-type]
    stop, thread = start(watcher)
    try:
        for n in (1, 2, 3):
            commit(conn, n)
            watcher.heard()
            app.wait_for(lambda n=n: bool(app.posts) and app.posts[-1][1] == n, f"commit {n} posted after heard()")
    finally:
        begun = time.monotonic()
        finish(watcher, stop, thread)
    assert time.monotonic() - begun < WAIT_S  # wake() ends its wait: closing does not wait out a poll
    # One post a commit; at most one more each, when the watcher saw the change itself before heard() came (a
    # heard commit is news whatever the watcher saw: one that landed before its first look must not be missed).
    assert 3 <= len(app.posts) <= 6


@pytest.mark.parametrize("primed", [True, False], ids=["primed", "not primed"])
def test_a_commit_by_another_process_before_the_watcher_looks_is_posted_without_a_later_commit(store, primed):
    # The screens' first read, then another process commits, then the watcher's thread (started after the
    # first frame) takes its first look at data_version: for it that commit is no change. It stayed off screen
    # until the next commit (on a quiet fleet, for good). Primed before the reads (as IngestService does), the
    # version is from before it; not primed (or started over after a failure), the start posts a notice.
    db, conn = store
    app = FakeApp(db)
    watcher = StoreWatcher(app, db, poll_s=0.002, health_every=3600, refresh_every=0.0)  # type: ignore[arg-type]
    if primed:
        watcher.prime()
    commit(conn, 1)  # (no heard(): another process)
    with running(watcher, first_notice=True):
        app.wait_for(lambda: bool(app.posts) and app.posts[-1][1] == 1, "a notice whose read shows the commit")


def test_a_commit_heard_before_the_watcher_is_up_is_posted(store):
    # The in-app receiver can answer (and commit) before the watcher's thread has read its first
    # data_version: for the watcher that commit is no change, but heard() says it is news.
    db, conn = store
    app = FakeApp(db)
    watcher = StoreWatcher(app, db, poll_s=0.002, health_every=3600, refresh_every=0.0)  # type: ignore[arg-type]
    commit(conn, 1)
    watcher.heard()
    with running(watcher, first_notice=True):
        app.wait_for(lambda: bool(app.posts) and app.posts[-1][1] == 1, "the commit heard before the start posted")


def _closed(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
    except sqlite3.ProgrammingError:
        return True
    return False


def test_a_console_that_quits_before_its_watcher_starts_closes_the_primed_connection(store):
    # The app's constructor primes the watcher (a read connection on the store); its thread starts after the
    # first frame. A console quitting before that (q at once, a --receive that fails) left that connection open.
    from agentdeck.console.ingest_service import IngestService

    db, _ = store
    service = IngestService(FakeApp(db), db, [], follow=False)  # type: ignore[arg-type]
    assert service.watcher._primed is not None
    conn = service.watcher._primed[0]
    service.close()
    assert _closed(conn)


def test_a_watcher_stopped_before_its_first_look_closes_the_primed_connection(store):
    db, _ = store
    watcher = StoreWatcher(FakeApp(db), db, poll_s=0.002, health_every=3600)  # type: ignore[arg-type]
    watcher.prime()
    assert watcher._primed is not None
    conn = watcher._primed[0]
    stop = threading.Event()
    stop.set()
    watcher.run(stop)
    assert _closed(conn)
