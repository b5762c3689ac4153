"""An OTLP receiver as the console sees it: an ingester in the store, with its refusals as problems.

A receiver answers its senders, not the operator: a request refused for a
wrong token, sent to a path it does not serve, or turned away busy is known
only to the sender (which may drop it for good: SDKs do not retry a 401 or a
404) and to the receiver's own counters. ``ReceiverStatus`` registers the
receiver in the ``ingesters`` table (store/ingest_status.py), beats with its
counts, and reports what it refused in the last ``window`` seconds as
problems: any console on the store shows them in its header and Problems
view (store/health.py), and a receiver that dies without a word shows there
as stalled once its heartbeats stop.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from agentdeck.store.db import connect
from agentdeck.store.ingest_status import HEARTBEAT_S, StatusRecorder, ingester_id

log = logging.getLogger(__name__)

WINDOW_S = 60.0  # refusals this recent are a problem; older ones are history (the receiver's log has them)
TICK_S = 1.0  # how often the counters are looked at: a refusal shows within about this long (plus a beat)

# Statuses by what they mean for the spans, in the order shown: what happened.
LOST = {401: "no valid token (401)", 404: "no such path (404)", 405: "wrong method (405)", 411: "no Content-Length (411)"}
RETRIED = {503: "receiver or store busy (503)", 429: "over the sender's budget (429)", 408: "request too slow (408)"}
UNKEPT = {-1: "kept only in the receiver's log, the store busy"}  # (otlp_receiver.NOT_KEPT: spans or bodies, not requests)
# 400, 413, 415 and 500 keep the refused body in the rejects table, which Problems already lists (so does a request whose
# framing is bad, a wrong Content-Length or chunk size: with no body, as none could be read).


class _Stats(Protocol):
    busy: int
    refusals: dict[int, int]
    latest_refusal: dict[int, str]


# What a problem's detail says the requests were (``problems`` writes it, store/health.py advises by it).
VERBS = {"lost": "refused", "retried": "turned away", "unkept": "not kept in rejects"}
SOURCE_PREFIX = "OTLP receiver "


def problems(source: str, now_counts: dict[int, int], before: dict[int, int], latest: dict[int, str],
             window: float) -> dict[str, str]:
    """Problems (source -> detail) for the refusals counted between ``before`` and ``now_counts``: one for
    requests whose spans the senders drop (``source``), one for those they retry (``source (busy)``)."""
    out: dict[str, str] = {}
    for group, kind, key in ((LOST, "lost", source), (RETRIED, "retried", f"{source} (busy)"),
                             (UNKEPT, "unkept", f"{source} (rejects)")):
        parts, refused, total = [], set(), 0
        for status, what in group.items():
            n = now_counts.get(status, 0) - before.get(status, 0)  # (counts only grow: never below 0)
            if n > 0:
                parts.append(f"{n} {what}")
                refused.add(status)
                total += n
        if parts:
            # ``latest`` is newest last (ReceiverStats.noted): the group's status refused last names its sender.
            newest = next((latest[s] for s in reversed(latest) if s in refused), "")
            noun = ("refused span or body", "refused spans or bodies") if kind == "unkept" else ("request", "requests")
            out[key] = (f"{total} {noun[total != 1]} {VERBS[kind]} in the last {window:.0f} s: "
                        f"{', '.join(parts)}; newest: {newest}")
    return out


def refusal_kind(source: str, detail: str) -> str | None:
    """``"lost"``, ``"retried"`` or ``"unkept"`` for a receiver's refusals problem (as ``problems`` words it); None for any other."""
    if source.startswith(SOURCE_PREFIX):
        for kind, verb in VERBS.items():
            if f" {verb} in the last " in detail:
                return kind
    return None


def counts(stats: _Stats) -> dict[int, int]:
    """The receiver's refusals by status; connections refused for being too many count as 503s."""
    out = dict(stats.refusals)
    if stats.busy:
        out[503] = out.get(503, 0) + stats.busy
    return out


class ReceiverStatus:
    """Keeps a receiver's row in ``ingesters`` and its problems up to date from a thread of its own."""

    def __init__(self, db_path: str | Path, endpoint: str, stats: _Stats, *, window: float = WINDOW_S,
                 tick: float = TICK_S, heartbeat: float = HEARTBEAT_S, clock: Callable[[], float] = time.time,
                 ingester: str | None = None) -> None:
        self.db_path = Path(db_path)
        self.stats = stats
        self.window = window
        self.tick_s = tick
        self.clock = clock
        self._conn: sqlite3.Connection | None = None
        self.recorder: StatusRecorder | None = None
        self.source = f"{SOURCE_PREFIX}{endpoint}"
        self.ingester = ingester or ingester_id()
        self.heartbeat = heartbeat
        self._seen: deque[tuple[float, dict[int, int]]] = deque()  # (when, counts) within the window
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # The receiver calls on_commit from each request's thread, outside its own lock, several at once:
        # the recorder's ``+=`` on its counts would lose some without one.
        self._counting = threading.Lock()

    def on_commit(self, result) -> None:
        """The receiver committed a batch (its ``on_commit``): counts and the last commit's time."""
        if self.recorder is not None:
            with self._counting:
                self.recorder.on_batch(result)

    def start(self) -> ReceiverStatus:
        self._conn = connect(self.db_path)
        self.recorder = StatusRecorder(self._conn, [self.source], ingester=self.ingester, heartbeat=self.heartbeat,
                                       clock=self.clock, follows_files=False)
        self.recorder.start()
        self._thread = threading.Thread(target=self._run, name="receiver-status", daemon=True)
        self._thread.start()
        return self

    def check(self) -> bool:
        """Look at the counters now and write if the problems changed or a heartbeat is due. True if written."""
        assert self.recorder is not None
        now = self.clock()
        current = counts(self.stats)
        self._seen.append((now, current))
        while len(self._seen) > 1 and self._seen[1][0] <= now - self.window:
            self._seen.popleft()  # keep one sample at or before the window's start: the base to count from
        oldest_at, oldest = self._seen[0]
        # Counted from the last look before the window began; all of them if the receiver is younger than that.
        base = oldest if oldest_at <= now - self.window else {}
        found = problems(self.source, current, base, dict(self.stats.latest_refusal), self.window)
        # Each new count is the same problem going on (its since stays when refusals began).
        return self.recorder.tick(found, ongoing=found)

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.check()
            except Exception:  # the status must never stop the receiver; the next tick tries again
                log.exception("receiver status check failed")

    def close(self, state: str = "stopped", detail: str | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.recorder is not None:
            self.recorder.finish(state, detail)
        if self._conn is not None:
            self._conn.close()
