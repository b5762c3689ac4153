"""The latest canary reports, kept in the store so the Canary screen reads them instead of computing them.

    python -m agentdeck.store.canary_reports --db DB [--ingester ID]   # the analyst, until stdin closes

On a large store one report takes a good fraction of a second of CPU
(``store.canary.analyse`` reads every task of both versions; the
differences read the events of the latest 2,000 tasks of each). The
console's ingest process (console/ingest_process.py) runs a ``CanaryAnalyst``
beside its tailer: after commits, at most once every few times the last
round's cost, it recomputes every agent's default pair for every window with
the very functions ``agentdeck canary`` calls, each report inside one read
snapshot, and replaces the rows (``canary_reports``). The screen then reads
one row and shows the report's age.

Why this stays right:

* Same verdict as ``agentdeck canary``: a stored report *is* ``analyse()``'s
  result at that snapshot and clock, serialised losslessly (``report_to_json``
  and ``report_from_json`` round-trip every field, infinities included).
* Exactly-once across kill -9: the rows are a cache, written in one
  transaction per round (reports, state and clean-up together); a round
  cut short leaves the previous round's rows, and the next round rebuilds everything from tasks and events. Nothing here
  is the only copy of anything.
* The sequential method: its confidence sequences are valid at any stopping
  time, so reading a report a few seconds old is one more look at an earlier
  moment, not a peek that spends alpha; it needs no state between looks
  beyond the counts and values ``analyse`` reads afresh each time.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from agentdeck.store import canary, canary_diff
from agentdeck.store.canary import CanaryReport, MetricResult, Pair
from agentdeck.store.canary_diff import Difference, DiffReport
from agentdeck.store.txn import atomic

log = logging.getLogger(__name__)

METHOD = "sequential"  # what the live screen shows
# A round runs at most this often, and at least this many times its own cost apart.
MIN_INTERVAL_S = 3.0
COST_FACTOR = 3.0
# A console trusts the stored reports while the analyst's ingest process beat this recently (it beats every
# HEARTBEAT_S, store/ingest_status.py) or a round ended this recently.
ALIVE_FOR_S = 20.0
DIFF_TOP = 20
# Metrics whose tasks are kept with the report: the first, which the screen lists on opening.
TASK_METRICS = (canary.DEFAULT_METRICS[0].key,)
# A stored report of a time window (15m, 1h, 24h) is recomputed once this old: the window moves with the clock.
WINDOW_STALE_S = 30.0


@dataclass(frozen=True)
class Stored:
    """One stored report, as the screen reads it."""

    report: CanaryReport
    differences: DiffReport
    computed_at: float
    seconds: float
    stamp: str
    # The tasks behind a metric as the report saw them, by metric key (TASK_METRICS): listed on opening
    # without reading every task of both versions again.
    tasks: dict[str, list[str]] = field(default_factory=dict)


# -- serialising -------------------------------------------------------------------


def _encode(value: Any) -> Any:
    return json.dumps(value, separators=(",", ":"), allow_nan=True)  # inf survives (a zero baseline's +∞ %)


def report_to_json(report: CanaryReport) -> str:
    return _encode(asdict(report))


def report_from_json(text: str) -> CanaryReport:
    data = json.loads(text)
    metrics = []
    for m in data.pop("metrics"):
        if m.get("interval") is not None:
            m["interval"] = tuple(m["interval"])
        metrics.append(MetricResult(**m))
    sparks = {k: (list(v[0]), list(v[1])) for k, v in data.pop("sparklines").items()}
    known = {f.name for f in fields(CanaryReport)}
    return CanaryReport(metrics=metrics, sparklines=sparks, **{k: v for k, v in data.items() if k in known})


def diff_to_json(diff: DiffReport) -> str:
    return _encode(asdict(diff))


def diff_from_json(text: str) -> DiffReport:
    data = json.loads(text)
    data["differences"] = [Difference(**d) for d in data["differences"]]
    return DiffReport(**data)


def pairs_to_json(pairs: Iterable[Pair]) -> str:
    return _encode([asdict(p) for p in pairs])


def pairs_from_json(text: str) -> list[Pair]:
    return [Pair(p["agent"], p["baseline"], p["canary"], tuple(p["versions"])) for p in json.loads(text)]


# -- computing -----------------------------------------------------------------------


# What a report depends on, each an index or rowid lookup (microseconds on any store): new events, pruned
# events, task rows added or changed, contract verdicts, human decisions, promotions and demotions.
_STAMP = """SELECT (SELECT max(id) FROM events), (SELECT min(id) FROM events), (SELECT max(rowid) FROM tasks),
                   (SELECT max(updated_at) FROM tasks), (SELECT max(rowid) FROM violations),
                   (SELECT max(decided_at) FROM escalations), (SELECT count(*) FROM contract_pending),
                   (SELECT max(id) FROM stage_changes)"""


def stamp(conn: sqlite3.Connection) -> str:
    """What the store holds, as far as a canary report goes: equal stamps, equal reports (same clock)."""
    return json.dumps(list(conn.execute(_STAMP).fetchone()))


def compute(conn: sqlite3.Connection, pair: Pair, baseline: str, canary_v: str, window: str, now: float,
            contract: Any, method: str = METHOD) -> Stored:
    """One report and its differences, inside one read snapshot of ``conn`` (a read-only connection)."""
    started = time.perf_counter()
    with atomic(conn, immediate=False):  # BEGIN: every query below sees the same commit
        seen = stamp(conn)
        report = canary.analyse(conn, pair.agent, baseline, canary_v, window=window, now=now, contract=contract,
                                method=method)
        diff = canary_diff.differences(conn, pair.agent, baseline, canary_v, since=report.since,
                                       until=report.until, top=DIFF_TOP)
        tasks = {key: [r["task_id"] for r in canary.tasks_behind(conn, report, key)] for key in TASK_METRICS}
    return Stored(report, diff, now, time.perf_counter() - started, seen, tasks)


def save(conn: sqlite3.Connection, items: Iterable[Stored], *, method: str = METHOD) -> None:
    """Replace these reports' rows (one transaction; a write connection)."""
    rows = [(s.report.agent, s.report.baseline, s.report.canary, s.report.window, method, s.computed_at, s.seconds,
             s.stamp, report_to_json(s.report), diff_to_json(s.differences), _encode(s.tasks)) for s in items]
    with atomic(conn):
        conn.executemany(
            """INSERT OR REPLACE INTO canary_reports (agent, baseline, canary, win, method, computed_at, seconds,
               stamp, report, differences, tasks) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", rows)


def load(conn: sqlite3.Connection, agent: str, baseline: str, canary_v: str, window: str,
         method: str = METHOD) -> Stored | None:
    row = conn.execute(
        """SELECT report, differences, computed_at, seconds, stamp, tasks FROM canary_reports
           WHERE agent = ? AND baseline = ? AND canary = ? AND win = ? AND method = ?""",
        (agent, baseline, canary_v, window, method)).fetchone()
    if row is None:
        return None
    try:
        tasks = {str(k): [str(t) for t in v] for k, v in json.loads(row[5]).items()}
        return Stored(report_from_json(row[0]), diff_from_json(row[1]), row[2], row[3], row[4], tasks)
    except (ValueError, TypeError, KeyError):  # written by another version of agentdeck: compute afresh
        log.warning("stored canary report for %s %s/%s %s unreadable; recomputing", agent, baseline, canary_v, window)
        return None


@dataclass(frozen=True)
class State:
    pairs: list[Pair]
    pairs_at: float
    alive_at: float  # wall clock: when the last round ended, or the analyst's ingest process last beat
    stamp: str  # "" until a round completed
    error: str | None = None  # why the analyst's last round failed


def state(conn: sqlite3.Connection) -> State | None:
    row = conn.execute(
        """SELECT s.pairs, s.pairs_at, max(s.alive_at, coalesce(i.heartbeat_at, 0)), s.stamp, s.error
           FROM canary_state s LEFT JOIN ingesters i ON i.ingester = s.ingester AND i.state = 'running'
           WHERE s.id = 1""").fetchone()
    if row is None:
        return None
    try:
        return State(pairs_from_json(row[0]), row[1], row[2], row[3], row[4])
    except (ValueError, TypeError, KeyError):
        return None


def analyst_alive(st: State | None, wall_now: float) -> bool:
    """Someone (an ingest process's analyst) keeps the stored reports current: it is alive, has finished a
    round, and its last round did not fail."""
    return st is not None and bool(st.stamp) and st.error is None and wall_now - st.alive_at <= ALIVE_FOR_S


def record_error(rw: sqlite3.Connection, error: str | None, ingester: str | None = None) -> None:
    """Say in the store why the analyst's round failed (None: it works again), for every console to show."""
    with atomic(rw):
        rw.execute(
            """INSERT INTO canary_state (id, pairs, pairs_at, alive_at, ingester, error, stamp)
               VALUES (1, '[]', 0, ?, ?, ?, '') ON CONFLICT(id) DO UPDATE SET error = excluded.error""",
            (time.time(), ingester, error))


@dataclass
class Round:
    reports: int = 0
    seconds: float = 0.0
    skipped: bool = False


def refresh(ro: sqlite3.Connection, rw: sqlite3.Connection, now: float, *, contracts: Any,
            windows: Iterable[str] = tuple(canary.WINDOWS), method: str = METHOD,
            stop: threading.Event | None = None, ingester: str | None = None) -> Round:
    """Recompute every agent's default pair for every window and store them (a round of the analyst).

    ``contracts``: a ``store.contract.ContractCheck`` (kept between rounds: it
    re-reads contract files only when they change).
    """
    started = time.perf_counter()
    with atomic(ro, immediate=False):
        pairs = canary.pairs(ro)
        seen = stamp(ro)
    book = contracts.book(ro)
    out: list[Stored] = []
    for pair in pairs:
        for window in windows:
            if stop is not None and stop.is_set():
                return Round(len(out), time.perf_counter() - started, skipped=True)
            out.append(compute(ro, pair, pair.baseline, pair.canary, window, now, book.get(pair.agent), method))
    # One transaction: the round's reports, the state saying they are current, and the old rows' removal
    # become visible together (a reader never sees new reports beside the previous round's stamp).
    with atomic(rw):
        save(rw, out, method=method)  # nests: a savepoint inside this transaction
        conn = rw
        conn.execute(
            """INSERT INTO canary_state (id, pairs, pairs_at, alive_at, ingester, error, stamp)
               VALUES (1, ?, ?, ?, ?, NULL, ?)
               ON CONFLICT(id) DO UPDATE SET pairs = excluded.pairs, pairs_at = excluded.pairs_at,
               alive_at = excluded.alive_at, ingester = excluded.ingester, error = NULL, stamp = excluded.stamp""",
            (pairs_to_json(pairs), now, time.time(), ingester, seen))
        # Reports of pairs nobody computes any more (versions retired) go after a day.
        conn.execute("DELETE FROM canary_reports WHERE computed_at < ?", (now - 86400,))
    return Round(len(out), time.perf_counter() - started)


class CanaryAnalyst:
    """Keeps ``canary_reports`` current from a thread of the ingest process.

    Each tick it reads the store's ``stamp`` (a few index lookups); when that
    changed since the last round, and the last
    round is far enough behind (``MIN_INTERVAL_S``, ``COST_FACTOR`` times its
    cost: on a busy store a round takes seconds of one core, which the tailer
    needs more), it runs a round. Failures are logged and retried next tick,
    never raised: the analyst must not take ingestion down.
    """

    def __init__(self, db: str, *, clock: Callable[[], float] = time.time, tick: float = 0.5,
                 min_interval: float = MIN_INTERVAL_S, ingester: str | None = None) -> None:
        self.db = db
        self.ingester = ingester  # the ingest process it runs in (its heartbeat says the analyst is alive)
        self.clock = clock
        self.tick = tick
        self.min_interval = min_interval
        self.rounds = 0
        self.error: str | None = None
        self.last_cost = 0.0

    def run(self, stop: threading.Event) -> None:
        from agentdeck.store.contract import ContractCheck
        from agentdeck.store.db import connect

        ro = connect(self.db, readonly=True)
        rw = connect(self.db)
        contracts = ContractCheck()
        seen = ""
        next_round = 0.0
        try:
            while not stop.wait(self.tick):
                try:
                    # The stamp, not PRAGMA data_version: heartbeats and our own rounds commit too, and
                    # must not set off a round (seconds of CPU on a large store) when no data changed.
                    newest = stamp(ro)
                    if newest != seen and time.monotonic() >= next_round:
                        r = refresh(ro, rw, self.clock(), contracts=contracts, stop=stop, ingester=self.ingester)
                        self.rounds += 1
                        self.last_cost = r.seconds
                        self.error = None
                        next_round = time.monotonic() + max(self.min_interval, COST_FACTOR * r.seconds)
                        seen = newest  # read before the round: a commit during it sets off the next one
                except Exception as exc:  # noqa: BLE001 - said in the store and retried; ingestion goes on
                    self.error = f"{type(exc).__name__}: {exc}"[:300]
                    log.exception("canary analyst round failed")
                    next_round = time.monotonic() + max(self.min_interval, 5.0)
                    try:
                        record_error(rw, self.error, self.ingester)
                    except sqlite3.Error:
                        log.exception("cannot record the canary analyst's failure")
        finally:
            ro.close()
            rw.close()



# The analyst runs at the default priority, on purpose. It used to run at nice 10,
# but it holds SQLite read snapshots (a round's queries) and, briefly, the write
# lock (to store a round); on a busy machine a niced analyst waited for the CPU
# while holding them, and the tailer beside it waited too: append -> committed
# p95 went from 45 ms to 436 ms with two busy cores (bench/live.py; SCHED_BATCH
# did the same, 453 ms). At the default priority: 92 ms. What bounds its CPU is
# CanaryAnalyst keeping its rounds at least COST_FACTOR times their cost apart.


def main(argv: list[str] | None = None) -> int:
    """The analyst as a process of its own, started by the ingest process (console/ingest_process.py).

    Its own process, not a thread of the ingest process: a round is seconds of
    CPU on a large store, and a thread would hold the tailer's interpreter lock
    for the Python parts. Not niced (see above). Ends on SIGTERM or
    SIGINT, and when its stdin closes (the ingest process is gone, even by
    kill -9).
    """
    import argparse

    from agentdeck.store.processes import stop_on_signals, stop_when_parent_goes

    p = argparse.ArgumentParser(prog="agentdeck-canary-analyst")
    p.add_argument("--db", required=True)
    p.add_argument("--ingester", default=None)
    args = p.parse_args(argv)
    stop = threading.Event()
    stop_on_signals(stop)

    stop_when_parent_goes(stop)
    CanaryAnalyst(args.db, ingester=args.ingester).run(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
