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
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sample_data.driver import TaskRun  # noqa: E402
from sample_data.scenarios import random_spec  # noqa: E402
from store import canary, contract  # noqa: E402
from store.db import connect  # noqa: E402
from store.tailer import Tailer  # noqa: E402

START = datetime(2026, 11, 1, tzinfo=timezone.utc)


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


def best(fn, repeat: int = 5) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


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

    t_tasks, _ = best(lambda: conn.execute("SELECT count(*) FROM tasks").fetchone())
    t_events, _ = best(lambda: conn.execute("SELECT count(*) FROM events").fetchone())
    print(f"{'baseline: SELECT count(*) FROM tasks':58} {t_tasks * 1000:8.1f} ms")
    print(f"{'baseline: SELECT count(*) FROM events':58} {t_events * 1000:8.1f} ms")
    t_pairs, pairs = best(lambda: canary.pairs(conn))
    print(f"{'agent/version pairs (screen selector)':58} {t_pairs * 1000:8.1f} ms")
    worst = 0.0
    for pair in pairs:
        for window in ("all", "24h", "1h"):
            t, report = best(lambda: canary.analyse(conn, pair.agent, pair.baseline, pair.canary, window=window,
                                                     now=now, contract=book.get(pair.agent)))
            worst = max(worst, t)
            label = f"all panels {pair.agent} {pair.baseline}/{pair.canary} window {window}"
            print(f"{label:58} {t * 1000:8.1f} ms  ({report.n_baseline:,}+{report.n_canary:,} tasks, {report.verdict})")
        t, _ = best(lambda: canary.tasks_behind(conn, report, "latency"))
        print(f"{'  tasks behind latency (window 1h)':58} {t * 1000:8.1f} ms")
    print(f"slowest panel set: {worst * 1000:.0f} ms (target < 1000 ms): {'OK' if worst < 1 else 'TOO SLOW'}")


if __name__ == "__main__":
    main()
