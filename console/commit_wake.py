"""A pipe that wakes the console's store watcher the moment its ingest process commits.

The watcher (console/ingest_service.py) notices commits by ``PRAGMA data_version``;
polling alone makes every commit wait for the next look, and every look wakes a
thread that competes with the UI for the interpreter. With this pipe the ingest
process writes a byte after each commit (``--wake-fd``, passed to it by the
supervisor), and the watcher waits on the pipe instead of sleeping: it looks
at once, and polls only seldom for the commits nobody writes to the pipe for
(another console, a receiver, ``agentdeck ingest`` run by hand).

A byte is a hint, never the news itself: the watcher still compares
``data_version``, so a lost or extra byte neither hides nor invents a commit.
Both ends are non-blocking: a full pipe already holds a wake-up, so the
writer drops the byte, and the ingest process never waits on the console.
No textual import: the ingest process imports this.
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WakePipe:
    """One pipe for a store watcher's run: the watcher reads it; anyone (any thread, a child process) writes it.

    Only the watcher's thread waits and closes (after its last wait: a descriptor closed under a ``poll``
    is not reliably noticed). ``poke`` and ``close`` hold a lock, so a poke never writes to a descriptor
    number closed and perhaps reused by then for some file of ours.
    """

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()  # (not inherited: a child gets write_fd through pass_fds)
        for fd in (self.read_fd, self.write_fd):
            os.set_blocking(fd, False)  # (the child's copy too: the flag belongs to the pipe, not the number)
        self.closed = False
        self._lock = threading.Lock()
        # poll, not select: select refuses descriptors numbered 1024 and up, and the watcher would then spin.
        self._poll = select.poll()
        self._poll.register(self.read_fd, select.POLLIN)

    def poke(self) -> None:
        """Wake the reader (from any thread); nothing once closed."""
        with self._lock:
            if not self.closed:
                poke_fd(self.write_fd)

    def with_write_fd(self, use: Callable[[int | None], T]) -> T:
        """``use(write_fd)``, or ``use(None)`` once closed, holding the lock: a child process started in ``use``
        never inherits a descriptor number this pipe no longer owns."""
        with self._lock:
            return use(None if self.closed else self.write_fd)

    def wait(self, timeout: float) -> bool:
        """Until poked or ``timeout`` seconds pass; True if poked. Every byte waiting is taken: one wake-up for all."""
        if self.closed:
            return False
        try:
            ready = self._poll.poll(max(0.0, timeout) * 1000)
        except (OSError, ValueError):  # closed under us (the console is quitting)
            return False
        if not ready:
            return False
        try:
            while os.read(self.read_fd, 4096):
                pass
        except BlockingIOError:
            pass  # drained
        except OSError:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            for fd in (self.read_fd, self.write_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass


def poke_fd(fd: int) -> bool:
    """Write one wake-up byte to ``fd``; False if the reader is gone (the byte is only a hint: never raises)."""
    try:
        os.write(fd, b"\0")
    except BlockingIOError:
        return True  # full: a wake-up is already waiting
    except OSError:
        return False  # the console closed its end (it is quitting, or gone)
    return True


def committer(fd: int | None) -> Callable[[], None] | None:
    """For the ingest process: a callable that pokes ``fd`` after a commit (None: no pipe given)."""
    if fd is None:
        return None
    alive = [True]

    def wake() -> None:
        if alive[0]:
            alive[0] = poke_fd(fd)  # a console gone stays gone: no write per commit into a broken pipe

    return wake
