"""Prune throughput and store size before/after, beside a bare DELETE + VACUUM of the same rows.

    python bench/prune.py [--events 100000] [--repeat 3] [--no-archive]

Builds a store of ``--events`` events (tasks of ~10 events, started over the
last 60 days; one task in five carries an escalation and an action), created
with ``auto_vacuum = INCREMENTAL``. Each round copies it twice:

* ``prune``: ``run_prune`` with the default rules (raw 30 days, notable 365):
  archive + record + delete in steps + incremental vacuum;
* ``bare``: the same tasks' rows removed with one ``DELETE`` a table in one
  transaction, then ``VACUUM`` (what a hand-written cleanup would do; no
  archive, and the store is locked throughout).

A writer thread inserts a row every 10 ms during both, as ingest would: the
longest it waited is how long each blocked other writers. Prints events/s,
the ratio prune/bare, sizes (file + WAL) before and after, the longest
writer wait, and the load average before and after (the machine is shared).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agentdeck.store.db import connect
from agentdeck.store.prune import file_bytes, run_prune
from agentdeck.store.retention import RetentionPolicy, plan
from agentdeck.store.tailer import Tailer

DAY = 86_400.0


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def generate(path: Path, total: int, now: float, seed: int = 7) -> int:
    """Tasks in the order they happened (as a store is filled), spread evenly over the last 60 days."""
    rng = random.Random(seed)
    written = 0
    n = 0
    tasks = total // 10 + 1
    with path.open("w") as f:
        while written < total:
            tid = f"task-{n:08d}"
            t0 = datetime.fromtimestamp(now - 60 * DAY * (1 - n / tasks) + rng.uniform(0, 60), UTC)
            notable = rng.random() < 0.2
            seq = 0

            def add(kind: str, **fields) -> None:
                nonlocal seq, written
                f.write(json.dumps({"v": 1, "kind": kind, "ts": _iso(t0 + timedelta(seconds=seq)), "task_id": tid,
                                    "seq": seq, **fields}, separators=(",", ":")) + "\n")
                seq += 1
                written += 1

            add("task_start", request_id=f"req-{n}", agent="bench-agent", agent_version={"id": "v1"},
                request=f"reset the password of user {n} and tell them")
            add("plan", summary="look the user up, reset, notify", steps=["lookup", "reset", "notify"])
            for i in range(3):
                add("tool_call", call_id=f"c{i}", tool="directory.lookup", input={"user": n, "fields": ["mail", "mfa"]})
                add("tool_result", call_id=f"c{i}", tool="directory.lookup", latency_ms=12.5,
                    output={"mail": f"user{n}@example.com", "mfa": True, "groups": ["staff", "vpn"]})
            if notable:
                add("escalation", escalation_id=f"esc-{n}", risk="high", reason="admin role",
                    deadline=_iso(t0 + timedelta(hours=1)),
                    proposed_action={"system": "iam", "operation": "grant_role", "params": {"role": "admin"}})
                add("decision", escalation_id=f"esc-{n}", decision="approve", decided_by="maria", reason="ok")
                add("action", action_id=f"act-{n}", system="iam", operation="grant_role", params={"role": "admin"},
                    compensation={"type": "handler", "handler": "revoke", "idempotency_key": f"undo-{n}"})
            add("task_end", outcome="success", tokens_in=1200, tokens_out=300, cost_usd=0.004, latency_ms=9000)
            n += 1
    return written


def build(folder: Path, events: int, now: float) -> Path:
    trace = folder / "traces" / "bench.jsonl"
    trace.parent.mkdir(parents=True)
    generate(trace, events, now)
    db = folder / "base.db"
    # New stores would be created so (a one-line PRAGMA before the first table): the file can then shrink in steps.
    raw = sqlite3.connect(db)
    raw.execute("PRAGMA auto_vacuum = INCREMENTAL")
    raw.execute("VACUUM")
    raw.close()
    from agentdeck.store.parallel import ParsePool, default_workers

    conn = connect(db)
    pool = ParsePool(default_workers())
    try:
        Tailer(conn, [trace.parent], parse_pool=pool, post_commit=[]).poll()
    finally:
        pool.close()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return db


class LockTimer:
    """The longest write transaction the prune held (its write lock), timed around ``atomic``."""

    def __init__(self) -> None:
        self.longest = 0.0

    @contextlib.contextmanager
    def wrap(self):
        from agentdeck.store import archive, prune, txn

        real = txn.atomic

        @contextlib.contextmanager
        def timed(conn, *, immediate=True):
            t0 = time.perf_counter()
            with real(conn, immediate=immediate) as c:
                yield c
            if immediate:
                self.longest = max(self.longest, time.perf_counter() - t0)

        prune.atomic = archive.atomic = timed  # type: ignore[assignment]
        try:
            yield self
        finally:
            prune.atomic = archive.atomic = real  # type: ignore[assignment]


class Writer(threading.Thread):
    """Stands for ingest: a short write every 10 ms; notes the longest wait for the write lock."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.stop = threading.Event()
        self.waits: list[float] = []

    def run(self) -> None:
        conn = sqlite3.connect(self.db, isolation_level=None, timeout=600)
        conn.execute("CREATE TABLE IF NOT EXISTS bench_ticks (t REAL)")
        while not self.stop.is_set():
            t0 = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO bench_ticks VALUES (?)", (t0,))
            conn.execute("COMMIT")
            self.waits.append(time.perf_counter() - t0)
            self.stop.wait(0.01)
        conn.close()


def bare(db: Path, tasks: list[str]) -> float:
    conn = sqlite3.connect(db, isolation_level=None)
    started = time.perf_counter()
    ids = json.dumps(tasks)
    conn.execute("BEGIN IMMEDIATE")
    for table in ("events", "escalations", "actions", "compensations", "violations", "tasks"):
        conn.execute(f"DELETE FROM {table} WHERE task_id IN (SELECT value FROM json_each(?))", (ids,))
    conn.execute("COMMIT")
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


def one_round(base: Path, work: Path, now: float, policy: RetentionPolicy) -> dict:
    for old in work.glob("r-*"):
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    a, b = work / "r-prune.db", work / "r-bare.db"
    shutil.copy(base, a)
    shutil.copy(base, b)
    conn = connect(b)
    p = plan(conn, policy, now)
    tasks = [c.task_id for c in p.remove]
    conn.close()
    out: dict = {"events": p.events, "tasks": len(tasks), "before": file_bytes(a)}

    w = Writer(a)
    w.start()
    cpu = time.process_time()
    with LockTimer().wrap() as lock:
        report = run_prune(a, policy.model_copy(update={"archive_dir": work / "r-archive"}), now)
    out["prune_cpu"] = time.process_time() - cpu
    w.stop.set()
    w.join()
    assert report.removed_events == p.events, (report.removed_events, p.events)
    out.update(prune_lock=lock.longest, prune_s=report.seconds, prune_after=file_bytes(a), prune_wait=max(w.waits or [0]),
               archive=sum(f.stat().st_size for f in (work / "r-archive").glob("*")) if policy.archive else 0)

    w = Writer(b)
    w.start()
    cpu = time.process_time()
    out["bare_s"] = bare(b, tasks)  # its lock is held throughout: DELETE, then VACUUM
    out["bare_cpu"] = time.process_time() - cpu
    w.stop.set()
    w.join()
    out.update(bare_after=file_bytes(b), bare_wait=max(w.waits or [0]))
    return out


def mb(n: float) -> str:
    return f"{n / 1e6:8.1f} MB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-archive", action="store_true")
    ap.add_argument("--keep", metavar="DIR", help="work here and keep the files")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="prune-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    now = time.time()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (before building)")
    t0 = time.perf_counter()
    base = build(work, args.events, now)
    print(f"built {args.events:,} events in {time.perf_counter() - t0:.1f} s: {mb(file_bytes(base))}")
    policy = RetentionPolicy(archive=not args.no_archive)
    rounds = []
    for i in range(args.repeat):
        la = os.getloadavg()[0]
        r = one_round(base, work, now, policy)
        rounds.append(r)
        print(f"round {i + 1}: load {la:.2f}; {r['tasks']:,} tasks / {r['events']:,} events removed\n"
              f"  prune (archive={policy.archive}): {r['prune_s']:6.2f} s = {r['events'] / r['prune_s']:9,.0f} ev/s"
              f" (cpu {r['prune_cpu']:.2f} s)"
              f"  size {mb(r['before'])} -> {mb(r['prune_after'])}  archive {mb(r['archive'])}"
              f"  longest writer wait {r['prune_wait'] * 1000:7.1f} ms (longest prune write txn "
              f"{r['prune_lock'] * 1000:.1f} ms)\n"
              f"  bare DELETE + VACUUM : {r['bare_s']:6.2f} s = {r['events'] / r['bare_s']:9,.0f} ev/s"
              f" (cpu {r['bare_cpu']:.2f} s)"
              f"  size {mb(r['before'])} -> {mb(r['bare_after'])}"
              f"                      longest writer wait {r['bare_wait'] * 1000:7.1f} ms")
    med = statistics.median
    ratio = med(r["bare_s"] / r["prune_s"] for r in rounds)
    print(f"median over {len(rounds)}: prune {med(r['events'] / r['prune_s'] for r in rounds):,.0f} ev/s, "
          f"bare {med(r['events'] / r['bare_s'] for r in rounds):,.0f} ev/s, prune/bare throughput {ratio:.2f}; "
          f"longest prune write txn {med(r['prune_lock'] for r in rounds) * 1000:.1f} ms; "
          f"longest writer wait prune {med(r['prune_wait'] for r in rounds) * 1000:.1f} ms vs bare "
          f"{med(r['bare_wait'] for r in rounds) * 1000:.1f} ms")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (after)")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
