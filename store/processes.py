"""Is the process that left a mark in the store (a lease, a note) still running on this host?

A pid alone can be reused after the process dies; ``identity`` adds the process's start time
(clock ticks after boot, from /proc) so a mark from a dead process never matches a new one.
``stop_when_parent_goes`` is the other direction: a child process (the ingest process, the
canary analyst) ends when the process that started it is gone.
"""

from __future__ import annotations

import os
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
