"""Is the process that left a mark in the store (a lease, a note) still running on this host?

A pid alone can be reused after the process dies; ``identity`` adds the process's start time
(clock ticks after boot, from /proc) so a mark from a dead process never matches a new one.
"""

from __future__ import annotations

import os
import socket


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
