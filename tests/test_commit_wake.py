"""The pipe the console's ingest process pokes after each commit (console/commit_wake.py), below the UI.

What an operator relies on: a row committed by the console's ingest process is noticed at once, not at the
store watcher's next poll; a commit nobody pokes for (another console, a receiver) is still noticed by the
poll the watcher keeps; and the pipe never makes the ingest process wait on the console. No sleeps: every
wait is on a condition with a bound.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from agentdeck.console.commit_wake import WakePipe, committer, poke_fd
from agentdeck.console.ingest_service import IngestSupervisor, StoreWatcher
from agentdeck.console.messages import Ingested
from agentdeck.store.db import connect
from agentdeck.store.health import ChildState

from tests.test_store_watcher import WAIT_S, FakeApp, commit, finish, running, start, store  # noqa: F401 (fixture)


def test_a_poke_from_another_thread_ends_a_wait_and_many_pokes_wake_once():
    pipe = WakePipe()
    try:
        assert pipe.wait(0.0) is False  # nothing poked: a zero wait answers at once
        threading.Thread(target=pipe.poke).start()
        assert pipe.wait(WAIT_S) is True
        for _ in range(50):
            pipe.poke()
        assert pipe.wait(WAIT_S) is True
        assert pipe.wait(0.0) is False  # the fifty were one wake-up: all taken by the wait before
    finally:
        pipe.close()


def test_a_full_pipe_never_blocks_the_writer_and_a_closed_reader_stops_the_ingest_process_writing():
    pipe = WakePipe()
    wake = committer(pipe.write_fd)
    assert wake is not None
    done = threading.Event()

    def flood() -> None:
        for _ in range(200_000):  # far more than a pipe holds (64 KiB): a blocking write would hang here
            wake()
        done.set()

    threading.Thread(target=flood, daemon=True).start()
    assert done.wait(WAIT_S), "a poke blocked on a full pipe: the ingest process would wait on the console"
    assert pipe.wait(0.0) is True
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    assert poke_fd(write_fd) is False  # the console is gone: said, not raised (and no SIGPIPE death)
    os.close(write_fd)
    pipe.close()
    pipe.poke()  # closed: nothing written to a descriptor number it no longer owns
    assert pipe.with_write_fd(lambda fd: fd) is None
    assert committer(None) is None


class TasksApp(FakeApp):
    """Notes, for each notice, whether the read after it shows task t-1 (as the Tasks screen's reload would)."""

    def post_message(self, message) -> bool:
        if isinstance(message, Ingested):
            if self.reader is None:
                self.reader = connect(self.db, readonly=True)
            seen = len(self.reader.execute("SELECT 1 FROM tasks WHERE task_id = 't-1'").fetchall())
            with self.cond:
                self.posts.append((time.monotonic(), seen))
                self.cond.notify_all()
        return True


def test_a_commit_by_the_consoles_ingest_process_is_posted_at_once_with_no_poll(store, tmp_path):
    # The watcher polls once a minute here: only the ingest process's poke can explain a notice within the bound.
    db, _ = store
    app = TasksApp(db)
    watcher = StoreWatcher(app, db, poll_s=60.0, health_every=3600, refresh_every=0.0)  # type: ignore[arg-type]
    folder = tmp_path / "traces"
    folder.mkdir()
    supervisor = IngestSupervisor(db, [folder], wake=watcher.open_pipe())
    stop_ingest = threading.Event()
    stop, thread = start(watcher)
    threading.Thread(target=supervisor.run, args=(stop_ingest,), daemon=True).start()
    reader = connect(db, readonly=True)
    try:
        bound = time.monotonic() + WAIT_S
        while not reader.execute("SELECT 1 FROM ingesters WHERE state = 'running'").fetchone():
            assert time.monotonic() < bound, f"the ingest process did not start: {supervisor.state()}"
            stop_ingest.wait(0.05)  # (a look at the condition every 50 ms, within the bound)
        (folder / "a.jsonl").write_text('{"v":1,"kind":"task_start","ts":"2026-11-30T10:00:00Z","task_id":"t-1",'
                                        '"seq":0,"request_id":"req-1","agent":"a","agent_version":{"id":"v1"}}\n')
        app.wait_for(lambda: bool(app.posts) and app.posts[-1][1] == 1, "a notice whose read shows t-1")
    finally:
        reader.close()
        stop_ingest.set()
        supervisor.close()
        finish(watcher, stop, thread)


class RunningSupervisor:
    """An ingest process that is running and pokes ``wake`` (the watcher then polls only for others' commits)."""

    def __init__(self, wake) -> None:
        self.wake = wake

    def state(self) -> ChildState:
        return ChildState(running=True, command="agentdeck ingest --follow")


def test_a_commit_nobody_pokes_for_is_still_posted_while_the_ingest_process_feeds_the_pipe(store):
    # Another console's decision, a receiver in another process: no poke comes; the watcher's slower poll
    # (the pipe's fallback) must still post it, and a commit must never stay off screen.
    db, conn = store
    app = FakeApp(db)
    watcher = StoreWatcher(app, db, poll_s=0.002, health_every=3600, refresh_every=0.0)  # type: ignore[arg-type]
    watcher.supervisor = RunningSupervisor(watcher.open_pipe())  # type: ignore[assignment]
    assert watcher._fed()
    with running(watcher):
        for n in (1, 2, 3):
            commit(conn, n)  # (no poke)
            app.wait_for(lambda n=n: bool(app.posts) and app.posts[-1][1] == n, f"commit {n} posted by the poll")
    assert watcher.pipe is not None and watcher.pipe.closed  # the run closed its pipe as it ended


def test_a_poked_commit_inside_the_window_is_posted_when_the_window_ends_not_at_the_next_poll(store):
    # Fed by pokes the watcher polls seldom (here once a minute): a commit held for the window's end must be
    # posted then, not when the poll comes round (it waited the poll on top, a new row late by up to a poll).
    db, conn = store
    app = FakeApp(db)
    window = 1.0
    watcher = StoreWatcher(app, db, poll_s=60.0, health_every=3600, refresh_every=window)  # type: ignore[arg-type]
    watcher.supervisor = RunningSupervisor(watcher.open_pipe())  # type: ignore[assignment]
    with running(watcher):
        commit(conn, 1)
        watcher.wake()  # (as the ingest process's poke)
        app.wait_for(lambda: len(app.posts) == 1, "the first commit after a quiet spell, posted at once")
        commit(conn, 2)
        watcher.wake()
        assert time.monotonic() < app.posts[0][0] + window, "the second commit was meant to land inside the window"
        app.wait_for(lambda: len(app.posts) == 2, "the held commit, posted when the window ends")
    assert app.posts[1][1] == 2
    assert app.posts[1][0] >= app.posts[0][0] + window * 0.9  # not before the window ended


def test_a_pipe_numbered_past_1024_still_waits_and_wakes():
    """A console with many files open gets a pipe numbered 1024 or more: select() refuses those, so the watcher's
    wait returned at once, over and over (a core spent polling)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2048), hard))
    fillers: list[int] = []
    try:
        try:
            while len(fillers) < 1030:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pytest.skip("this machine lets a process open too few files")
        pipe = WakePipe()
        try:
            assert pipe.read_fd >= 1024
            started = time.monotonic()
            assert pipe.wait(0.2) is False
            assert time.monotonic() - started >= 0.15, "the wait returned at once"
            pipe.poke()
            assert pipe.wait(5.0) is True
        finally:
            pipe.close()
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
