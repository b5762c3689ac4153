"""Ingest beside the UI: the console's ingest process, and noticing what it commits.

* ``IngestSupervisor`` runs ``python -m agentdeck.console.ingest_process``
  (its own interpreter: parsing and commits never hold the UI's GIL),
  keeps its last stderr lines, and restarts it with backoff when it stops.
  It stops it on quit; if the console dies, the process sees its stdin close
  and stops too.
* ``StoreWatcher`` polls ``PRAGMA data_version`` on its own read connection
  every few milliseconds (a few microseconds each: no query runs unless
  another connection committed) and posts ``Ingested``, at most once per
  ``refresh_every`` (the throttle lives here, off the UI thread); about once a second,
  and soon after a change, it runs the health check (store/health.py) and
  posts ``HealthChecked`` when the answer changed.

Both run on thread workers in the group "ingest"; neither touches widgets.
"""

from __future__ import annotations

import math
import shlex
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App

from agentdeck.console.commit_wake import WakePipe
from agentdeck.console.messages import HealthChecked, Ingested
from agentdeck.console.service.ingest_settings import BACKOFF_S, IngestSettings
from agentdeck.store import health as health_mod
from agentdeck.store.db import connect
from agentdeck.store.health import ChildState
from agentdeck.store.ingest_status import HEARTBEAT_S, ingester_id, mark_gone

if TYPE_CHECKING:
    from agentdeck.store.contract import ContractCheck

CONTRACTS_EVERY_S = 1.0  # the health check looks at the contract files at most this often

HEALTHY_AFTER_S = 60.0  # a run this long resets the backoff
IDLE_AFTER_S = 2.0  # no commit posted for this long: the store watcher polls every IDLE_POLL_S
# ... and always, while its ingest process is running: that one pokes the watcher's pipe after each commit
# (console/commit_wake.py), so polling is only for commits by others (another console, a receiver).
IDLE_POLL_S = 0.02
STOP_TIMEOUT_S = 5.0  # on quit: then it is killed (safe: a batch is committed whole or not at all)
STDERR_LINES = 12


class IngestSupervisor:
    """Starts, watches and restarts one ingest process."""

    def __init__(self, db_path: Path, paths: Sequence[Path], *, heartbeat: float = HEARTBEAT_S,
                 backoff: Sequence[float] = BACKOFF_S, healthy_after: float = HEALTHY_AFTER_S,
                 python: str = sys.executable, on_change: Callable[[], None] = lambda: None,
                 batch_wait: float | None = None, wake: WakePipe | None = None) -> None:
        self.db_path = Path(db_path)
        self.paths = [Path(p) for p in paths]
        self.heartbeat = heartbeat
        self.backoff = tuple(backoff)
        self.healthy_after = healthy_after
        self.python = python
        self.on_change = on_change
        self.batch_wait = batch_wait
        self.wake = wake  # the store watcher's pipe: the process pokes it after each commit (console/commit_wake.py)
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._restart = threading.Event()
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._reader = threading.Thread()
        self._state = ChildState(running=False, command=self.command_line())

    def command(self, wake_fd: int | None = None) -> list[str]:
        return [self.python, "-m", "agentdeck.console.ingest_process", "--db", str(self.db_path),
                "--heartbeat", str(self.heartbeat), "--with-parent",
                *(["--batch-wait", str(self.batch_wait)] if self.batch_wait is not None else []),
                *(["--wake-fd", str(wake_fd)] if wake_fd is not None else []), *map(str, self.paths)]

    def command_line(self) -> str:
        """What an operator can run by hand to see why it stops (without --with-parent)."""
        return shlex.join(["agentdeck", "ingest", "--follow", "--db", str(self.db_path), *map(str, self.paths)])

    def state(self) -> ChildState:
        with self._lock:
            return self._state

    def _set(self, **changes) -> None:
        with self._lock:
            self._state = ChildState(**{**self._state.__dict__, **changes})
        self.on_change()

    def restart_now(self) -> None:
        """Start it again now: after a stop (no waiting out the backoff), or kill and restart a running one."""
        self._restart.set()

    def _spawn(self) -> subprocess.Popen[bytes]:
        def popen(wake_fd: int | None) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                self.command(wake_fd), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                # Its own session: a signal meant for the console's terminal does not reach it.
                start_new_session=True, pass_fds=() if wake_fd is None else (wake_fd,),
            )

        proc = popen(None) if self.wake is None else self.wake.with_write_fd(popen)
        self._reader = threading.Thread(target=self._read_stderr, args=(proc,), name="ingest-stderr", daemon=True)
        self._reader.start()
        return proc

    def _read_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        """Keep its last lines (and drain the pipe, so it never blocks writing); ends at its exit."""
        assert proc.stderr is not None
        try:
            with proc.stderr:
                for raw in proc.stderr:
                    self._stderr.append(raw.decode("utf-8", "replace").rstrip("\n"))
        except (OSError, ValueError):
            pass

    def run(self, stop: threading.Event) -> None:
        """Thread body: keep one process running until ``stop`` is set. Never ends silently."""
        while not stop.is_set():
            try:
                self._supervise(stop)
            except Exception as exc:  # a bug here must show, not end supervision unseen
                self._set(running=False, stderr_tail=(f"the console's ingest supervisor failed: {type(exc).__name__}: {exc}",),
                          stopped_at=time.time(), restart_at=time.time() + self.backoff[-1])
                self._restart.wait(self.backoff[-1])

    def _supervise(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            self._restart.clear()
            self._stderr.clear()
            started = time.monotonic()
            try:
                proc = self.proc = self._spawn()
            except OSError as exc:
                self._stderr.append(f"cannot start {self.python}: {exc.strerror or exc}")
                code: int | None = None
            else:
                self._set(running=True, ingester=ingester_id(proc.pid), restart_at=None)
                # 50 ms: a stopped process shows within that, plus one health check.
                while proc.poll() is None and not stop.is_set() and not self._restart.is_set():
                    stop.wait(0.05)
                if proc.poll() is None:  # asked to stop or restart
                    self._terminate(proc)
                    if stop.is_set():
                        break
                code = proc.wait()
                self._reader.join(1.0)  # its last lines, which say why
                self._record_exit(proc.pid, code)
            ran = time.monotonic() - started
            failures = 0 if ran >= self.healthy_after else failures + 1
            delay = 0.0 if self._restart.is_set() else self.backoff[max(0, min(failures, len(self.backoff)) - 1)]
            now = time.time()
            self._set(running=False, exit_code=code, stderr_tail=tuple(self._stderr),
                      restarts=self._state.restarts + 1, stopped_at=now, restart_at=now + delay)
            self._restart.wait(delay)  # close() sets it too, so quitting never waits out a backoff

    def _record_exit(self, pid: int, code: int | None) -> None:
        """Say in the store that it ended, if it could not (killed): other consoles see it at once."""
        from agentdeck.store.health import exit_description

        try:
            conn = connect(self.db_path)
            try:
                mark_gone(conn, ingester_id(pid), time.time(), f"{exit_description(code)}; restarted by its console")
            finally:
                conn.close()
        except sqlite3.Error:  # the store itself may be the problem; the console shows the exit anyway
            pass

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            return
        try:
            proc.send_signal(signal.SIGTERM)  # stops between batches
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        except OSError:
            pass

    def close(self) -> None:
        """Stop the process now (on quit; ``stop`` is set): the run loop ends."""
        self._restart.set()
        proc = self.proc
        if proc is not None:
            self._terminate(proc)


def data_version(conn) -> int:
    return conn.execute("PRAGMA data_version").fetchone()[0]


def same_health(a: health_mod.Health, b: health_mod.Health | None) -> bool:
    """The same problems and figures, whenever each was checked.

    Posting a check that only moved ``checked_at`` made every screen watching
    ``app.health`` rebuild once a second for nothing; ages on screen count from
    the app's clock instead.
    """
    return b is not None and replace(a, checked_at=0.0) == replace(b, checked_at=0.0)


class StoreWatcher:
    """Notices commits by any connection, and checks health, for one app.

    It is also the refresh throttle: at most one ``Ingested`` every ``refresh_every``
    seconds (the first commit after a quiet window at once, the rest of a burst when the
    window ends), so a busy fleet's 50-odd commits a second wake the UI thread 20 times,
    not 50, and every wake has something to draw. No commit is left unposted: one noticed
    inside a window is held, and posted when the window ends.
    """

    def __init__(self, app: App, db_path: Path, supervisor: IngestSupervisor | None = None, *,
                 poll_s: float = 0.005, health_every: float = 1.0, wall_clock: Callable[[], float] = time.time,
                 stall_after: float = health_mod.STALL_AFTER_S, refresh_every: float = 0.05) -> None:
        self.app = app
        self.db_path = Path(db_path)
        self.supervisor = supervisor
        self.poll_s = poll_s
        self.health_every = health_every
        self.refresh_every = refresh_every
        # Real time, not the app's clock: heartbeats written by the ingest process are real times.
        self.wall_clock = wall_clock
        self.stall_after = stall_after
        self._health_now = False  # check health now (the ingest process stopped or started)
        # A commit this process made (the in-app receiver): news even if it landed before this watcher read its
        # first data_version (a receiver answering before the watcher's thread is up).
        self._heard = False
        # Ends a wait early: poke, heard, close, and the ingest process after each commit. Opened by open_pipe
        # (IngestService.start, before its process is started: it is handed the pipe), else as the thread starts.
        self.pipe: WakePipe | None = None
        self.last: health_mod.Health | None = None
        self.skip_first = False  # the app's first check runs on a worker of its own
        self.posted = 0  # Ingested messages posted (commits a second are many more under load)
        self.watching = threading.Event()  # set once every commit from then on is noticed

    def poke(self) -> None:
        """Check health now (from any thread)."""
        self._health_now = True
        self.wake()

    def heard(self) -> None:
        """A commit made in this process (from any thread): posted within the throttle, as one noticed."""
        self._heard = True
        self.wake()

    def wake(self) -> None:
        """End the current wait (``stop`` was set: the thread ends at once, not at its next poll).

        Before the thread has its pipe, nothing to end: what was asked is in the flags its first look reads.
        """
        pipe = self.pipe
        if pipe is not None:
            pipe.poke()

    def open_pipe(self) -> WakePipe:
        """The pipe that wakes this watcher (for its ingest process to be handed); closed when ``run`` ends."""
        if self.pipe is None or self.pipe.closed:
            self.pipe = WakePipe()
        return self.pipe

    def _fed(self) -> bool:
        """Its own ingest process is running, and so pokes the pipe after each commit."""
        return self.supervisor is not None and self.supervisor.wake is self.pipe and self.supervisor.state().running

    def check(self, conn) -> health_mod.Health:
        from agentdeck.store.contract import ContractCheck

        child = self.supervisor.state() if self.supervisor is not None else None
        # The watcher thread and the first check's worker may both be here: one ContractCheck, one at a time
        # (two interleaved reloads could keep an old book under the new files' signature).
        with self._check_lock:
            if self._contracts is None:  # (the same folders the ingest process checks against: store/contract.py)
                self._contracts = ContractCheck()
                # A fleet's commits bring a check every 0.25 s; the contract folders (each trace folder's
                # contracts/: ~9 ms for 500 of them) are looked at once a second of those.
                self._contracts.recheck_every = CONTRACTS_EVERY_S
            return health_mod.check(conn, self.wall_clock(), child=child, db=str(self.db_path),
                                    stall_after=self.stall_after, contracts=self._contracts)

    _contracts: ContractCheck | None = None
    _check_lock = threading.Lock()  # (per class: watchers of one process take turns, a check is ~1 ms)

    def run(self, stop: threading.Event) -> None:
        """Thread body. Survives anything: a failure is shown as a problem and it starts over."""
        pipe = self.open_pipe()
        try:
            while not stop.is_set():
                try:
                    self._watch(stop, pipe)
                except Exception as exc:
                    self.last = health_mod.Health("error", (health_mod.Problem(
                        "store-watch", "error", "the console cannot read the store", f"{type(exc).__name__}: {exc}",
                        self.wall_clock(), "screens are not refreshed meanwhile; it retries every second "
                        "(a moved or deleted store needs a restart of the console)"),), checked_at=self.wall_clock())
                    self.app.post_message(HealthChecked(self.last))
                    pipe.wait(1.0)
        finally:
            self.release_primed()  # (stopped before its first look)
            pipe.close()  # (the ingest process's copy: its pokes fail from now on, and it stops trying)

    def _check_health(self, conn) -> None:
        try:
            health = self.check(conn)
        except Exception as exc:  # the check must not end the watcher; say it instead
            health = health_mod.Health("error", (health_mod.Problem(
                "health", "error", "the health check failed", f"{type(exc).__name__}: {exc}",
                self.wall_clock(), "the store may be damaged or locked; see the message"),))
        if not same_health(health, self.last):
            self.last = health
            self.app.post_message(HealthChecked(health))

    def prime(self) -> None:
        """Take the store's version now, before the screens' first reads (the app's constructor: ~1 ms).

        The thread starts after the first frame (its ingest process must not compete with the first paint),
        so its own first look comes after those reads; from a version taken before them, a commit landing in
        between is news to it, and no refresh is needed at its start for what may have been missed.
        """
        try:
            conn = connect(self.db_path, readonly=True)
            self._primed = (conn, data_version(conn))
        except Exception:
            self._primed = None  # (no store yet, unreadable: the thread's start says so, and refreshes once)

    _primed: tuple[sqlite3.Connection, int] | None = None

    def release_primed(self) -> None:
        """Close the connection ``prime`` opened if no look took it (the watcher never ran, or stopped first)."""
        primed, self._primed = self._primed, None
        if primed is not None:
            primed[0].close()

    def _watch(self, stop: threading.Event, pipe: WakePipe) -> None:
        primed, self._primed = self._primed, None
        conn = primed[0] if primed is not None else connect(self.db_path, readonly=True)
        try:
            version = primed[1] if primed is not None else data_version(conn)
            self.watching.set()
            next_check = time.monotonic() + (self.health_every if self.skip_first else 0.0)
            posted_at = -math.inf  # monotonic time of the last Ingested posted
            # A commit noticed and not posted yet (its window has not ended). At the start that is "maybe":
            # a commit by another process after the screens' first read and before the version above was
            # read changed nothing this connection will see, and stayed off screen until the next commit (on
            # a quiet fleet, for good). Primed before any read, the version covers it; else (not primed, or
            # starting over after a failure, when commits may have been missed) one refresh does.
            held = primed is None
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_check or self._health_now:
                    self._health_now = False
                    self._check_health(conn)
                    next_check = now + self.health_every
                heard, self._heard = self._heard, False
                current = data_version(conn)
                if current != version or heard:
                    version = current
                    if not held:
                        # Rejects, deliveries and ingest problems come in commits: look soon,
                        # but not on every commit of a busy fleet.
                        next_check = min(next_check, now + 0.25)
                    held = True
                if held and now >= posted_at + self.refresh_every:
                    # The screens' reads begin after this, so they cover every commit up to here.
                    held = False
                    posted_at = now
                    self.posted += 1
                    seq = getattr(self.app, "next_change_seq", lambda: 0)()  # after the commits it reports
                    self.app.post_message(Ingested(committed_at=self.wall_clock(), seq=seq))
                # Nothing can be posted before the window ends: no look at the store until then (a
                # burst's commits meanwhile are all in the next post, held or not).
                # Quiet for a while: look less often (the first commit after a quiet spell is heard up to
                # IDLE_POLL_S later; a steady stream is looked for every poll_s). An idle console polled
                # 200 times a second, ~2.5 % of a core. Fed by its ingest process's pokes, its commits are
                # seen at once: polling is for others' commits, every IDLE_POLL_S.
                # A commit held: posted when its window ends (a poll later than that made it wait the poll too).
                slow = now - posted_at >= IDLE_AFTER_S or self._fed()
                poll = max(self.poll_s, IDLE_POLL_S) if slow else self.poll_s
                window_ends = posted_at + self.refresh_every
                wake_at = min(window_ends if held else max(now + poll, window_ends), next_check)
                pipe.wait(wake_at - time.monotonic())
        finally:
            conn.close()


class IngestService:
    """The app's ingest: a supervised process when following paths, and the store watcher always.

    Tuned by ``Settings.ingest`` (the config file's ``[ingest]`` table).
    """

    def __init__(self, app: App, db_path: Path, paths: Sequence[Path], *, follow: bool = True,
                 tuning: IngestSettings | None = None) -> None:
        t = tuning or IngestSettings()
        self.app = app
        self.stop = threading.Event()
        self.supervisor = (IngestSupervisor(db_path, paths, heartbeat=t.heartbeat, backoff=t.backoff,
                                            healthy_after=t.healthy_after, on_change=self._changed,
                                            batch_wait=t.batch_wait)
                           if follow and paths else None)
        self.watcher = StoreWatcher(app, db_path, self.supervisor, poll_s=t.poll, health_every=t.health_every,
                                    stall_after=t.stall_after, refresh_every=t.refresh_every)
        self.watcher.prime()
        self.started = False  # start() ran: the watcher's thread owns the primed connection from then on

    def _changed(self) -> None:
        self.watcher.poke()

    def start(self) -> None:
        # Plain daemon threads, not Textual workers: they live as long as the
        # app, and tests that wait for all workers to complete must not wait on them.
        self.started = True
        if self.supervisor is not None:
            # Its process pokes the watcher's pipe after each commit (opened now: handed to each process started).
            self.supervisor.wake = self.watcher.open_pipe()
            threading.Thread(target=self.supervisor.run, args=(self.stop,), name="ingest-process", daemon=True).start()
        self.watcher.skip_first = True
        threading.Thread(target=self.watcher.run, args=(self.stop,), name="store-watch", daemon=True).start()
        # The first check is a worker that completes, so the first screen (and
        # a snapshot taken once workers settle) already shows the health.
        self.app.run_worker(self._first_check, thread=True, group="health", name="health-first")

    def _first_check(self) -> None:
        conn = connect(self.watcher.db_path, readonly=True)
        try:
            health = self.watcher.check(conn)
        finally:
            conn.close()
        self.app.post_message(HealthChecked(health))

    def restart(self) -> None:
        if self.supervisor is not None:
            self.supervisor.restart_now()

    def close(self) -> None:
        self.stop.set()
        self.watcher.wake()
        if not self.started:  # (the app quit before its first frame started the watcher, which would close it)
            self.watcher.release_primed()
        if self.supervisor is not None:
            self.supervisor.close()

