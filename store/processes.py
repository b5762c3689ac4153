"""Is the process that left a mark in the store (a lease, a note) still running on this host?

A pid alone can be reused after the process dies; ``identity`` adds the process's start time
(clock ticks after boot, from /proc) so a mark from a dead process never matches a new one.
``stop_when_parent_goes`` is the other direction: a child process (the ingest process, the
canary analyst) ends when the process that started it is gone.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading


def alive(pid: int) -> bool:
    """A process with this pid runs on this host (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def identity(pid: int) -> str | None:
    """host:pid:start of a live process on this host, None when there is no such process.

    Without /proc the start is "?": the pid alone then decides."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        if os.path.isdir("/proc"):
            if not os.path.exists(f"/proc/{pid}"):
                return None  # /proc lists every process: this one has ended
        elif not alive(pid):
            return None
        start = "?"
    return f"{socket.gethostname()}:{pid}:{start}"


def gone(owner: str) -> bool:
    """The process an ``identity`` names has ended. One on another host is taken as running."""
    host, pid, _start = owner.rsplit(":", 2)
    return host == socket.gethostname() and identity(int(pid)) != owner


def stop_when_parent_goes(stop: threading.Event) -> threading.Thread:
    """Set ``stop`` once stdin closes: the parent started this process with stdin a pipe it keeps open.

    The pipe's end closes whenever the parent ends, kill -9 included (no signal reaches the child
    then), so reading it to the end is how a child learns it is orphaned. The read runs on a
    daemon thread; it returns the thread (started)."""

    def watch() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):  # stdin closed or never a pipe: the parent is gone as far as we know
            pass
        stop.set()

    thread = threading.Thread(target=watch, name="parent", daemon=True)
    thread.start()
    return thread


def stop_on_signals(stop: threading.Event, signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """Set ``stop`` on any of ``signals``, from a thread of its own.

    A handler that calls ``stop.set()`` itself can hang the process for good: it runs on the main thread between
    two bytecodes, possibly while that thread holds the Event's lock (inside ``stop.wait()``), and ``set`` takes
    that same non-reentrant lock. Seen: a console's ingest process stopped with SIGTERM, its three threads all
    waiting on that lock, the store held open. Here the handler only writes a byte to a pipe (no lock), and a
    daemon thread reading it sets the event.
    """
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def watch() -> None:
        os.read(read_end, 1)
        stop.set()

    def handler(signum, frame) -> None:
        try:
            os.write(write_end, b"\0")
        except BlockingIOError:  # (the pipe full of earlier signals: one is enough)
            pass

    threading.Thread(target=watch, name="signals", daemon=True).start()
    for sig in signals:
        signal.signal(sig, handler)
