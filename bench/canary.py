"""Benchmark: all canary panels over a store of ~1,000,000 events (~100k tasks).

    .venv/bin/python bench/canary.py [--events 1000000] [--db PATH] [--rebuild]

Builds (once, then reuses) a store by writing sample-fleet traces and
ingesting them with the real tailer (contract checks included), then times
``store.canary.analyse`` — every metric, test and sparkline for one agent's
baseline and canary — beside bare baselines over the same tables:
``SELECT count(*) FROM tasks`` and ``SELECT count(*) FROM events``.
Target: under 1 s per agent's panels.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from typing import Any
from datetime import datetime, timedelta, UTC
from pathlib import Path


from agentdeck.sample_data.driver import TaskRun
from agentdeck.sample_data.scenarios import random_spec
from agentdeck.store import canary, contract
from agentdeck.store.db import connect
from agentdeck.store.tailer import Tailer

START = datetime(2026, 11, 1, tzinfo=UTC)


def write_traces(folder: Path, events: int) -> int:
    """Sample-fleet tasks over ~a day, until ``events`` lines are written."""
    rng = random.Random(42)
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: (folder / f"{name}.jsonl").open("w") for name in ("approval-agent", "records-agent")}
    written = i = 0
    try:
        while written < events:
            spec = random_spec(rng, canary_share=0.2)
            run = TaskRun(spec, f"b{i:07d}")
            ts = START + timedelta(seconds=i * 0.8)
            out = files[run.agent]
            while True:
                event = run.step(ts)
                if event is None and run.waiting is not None:
                    ts += timedelta(seconds=rng.uniform(30, 300))
                    event = run.decide(spec.decision, "bench", "", ts)
                if event is None:
                    break
                out.write(json.dumps(event, separators=(",", ":")) + "\n")
                written += 1
                ts += timedelta(milliseconds=rng.uniform(100, 2000))
            i += 1
    finally:
        for f in files.values():
            f.close()
    return written


def build(db: Path, events: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        traces = Path(tmp) / "traces"
        t0 = time.perf_counter()
        n = write_traces(traces, events)
        t1 = time.perf_counter()
        conn = connect(db)
        Tailer(conn, [traces]).poll()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("ANALYZE")
        conn.close()
        t2 = time.perf_counter()
    print(f"built {db}: {n:,} events written in {t1 - t0:.1f} s, ingested (with contract checks) in {t2 - t1:.1f} s")


def best(fn, repeat: int = 5) -> tuple[float, float, Any]:
    """Fastest of ``repeat`` runs: wall seconds, CPU seconds of this process, result."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus), result


def line(label: str, wall: float, cpu: float, extra: str = "") -> None:
    print(f"{label:56} {wall * 1000:8.1f} ms wall {cpu * 1000:8.1f} ms cpu  {extra}".rstrip())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--db", default=str(Path(tempfile.gettempdir()) / "agentdeck-bench-canary.db"))
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    db = Path(args.db)
    if args.rebuild or not db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        build(db, args.events)
    conn = connect(db, readonly=True)
    events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    tasks = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    print(f"store: {events:,} events, {tasks:,} tasks")
    now = conn.execute("SELECT max(started) FROM tasks").fetchone()[0]
    book = contract.load_book(contract.contract_dirs([]))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.1f} on {os.cpu_count()} cpus (wall times stretch under load; cpu times do not)")
    w, c, _ = best(lambda: conn.execute("SELECT count(*) FROM tasks").fetchone())
    line("baseline: SELECT count(*) FROM tasks", w, c)
    w, c, _ = best(lambda: conn.execute("SELECT count(*) FROM events").fetchone())
    line("baseline: SELECT count(*) FROM events", w, c)
    w, c, pairs = best(lambda: canary.pairs(conn))
    line("agent/version pairs (screen selector)", w, c)
    worst = worst_cpu = 0.0
    for pair in pairs:
        for window in ("all", "24h", "1h"):
            w, c, report = best(lambda: canary.analyse(conn, pair.agent, pair.baseline, pair.canary, window=window,
                                                        now=now, contract=book.get(pair.agent)))
            worst, worst_cpu = max(worst, w), max(worst_cpu, c)
            line(f"all panels {pair.agent} {pair.baseline}/{pair.canary} window {window}", w, c,
                 f"({report.n_baseline:,}+{report.n_canary:,} tasks, {report.verdict})")
        w, c, _ = best(lambda: canary.tasks_behind(conn, report, "latency"))
        line("  tasks behind latency (window 1h)", w, c)
    verdict = "OK" if worst < 1 else "over target (see load above)" if worst_cpu < 1 else "TOO SLOW"
    print(f"slowest panel set: {worst * 1000:.0f} ms wall, {worst_cpu * 1000:.0f} ms cpu (target < 1000 ms): {verdict}")


if __name__ == "__main__":
    main()
