"""Ingest throughput against bare SQLite, and append-to-commit latency under a live fleet.

    python bench/ingest.py [--events 1000000] [--latency-seconds 10] [--rate 500]

1. Bulk: writes ``--events`` realistic trace events (the sample scenarios,
   every kind) over four files, ingests them with the real tailer into a
   fresh store, then inserts the same rows (task_id, seq, kind, ts,
   source_id, payload) into the events table of another fresh store with
   one bare ``sqlite3.executemany`` in one transaction, rows prepared
   beforehand. Prints events/s for both and the ratio (target >= 50%).
2. Latency: the sample fleet writes ``--rate`` events/s from another process
   while the tailer follows the folder (as ``agentdeck ingest --follow`` and
   the console do). Each event's ``ts`` is taken just before it is appended;
   a post-commit hook notes when each event became visible. Prints
   p50/p95/max of append-to-commit (target p95 <= 100 ms).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, UTC
from pathlib import Path


from agentdeck.store.db import connect
from agentdeck.store.ingest import epoch
from agentdeck.store.tailer import Tailer

FILES = 4


def generate(folder: Path, total: int, seed: int = 1) -> int:
    """Write ``total`` events: a base set from the driver, repeated under fresh ids."""
    from agentdeck.sample_data.driver import TaskRun
    from agentdeck.sample_data.scenarios import random_spec

    rng = random.Random(seed)
    base: list[tuple[bytes, bytes]] = []  # (key, line)
    ts = datetime(2026, 11, 24, 9, tzinfo=UTC)
    i = 0
    want = min(total, 100_000)
    while len(base) < want:
        key = f"k{i:07d}"
        run = TaskRun(random_spec(rng), key)
        i += 1
        while True:
            event = run.step(ts)
            if event is None and run.waiting is not None:
                event = run.decide("approve", "bench", "ok", ts)
            if event is None:
                break
            base.append((key.encode(), json.dumps(event, separators=(",", ":")).encode() + b"\n"))
            ts += timedelta(milliseconds=3)
    files = [open(folder / f"agent-{n}.jsonl", "wb") for n in range(FILES)]
    written = 0
    copy = 0
    while written < total:
        for key, line in base:
            if written == total:
                break
            if copy:
                line = line.replace(key, key + b"c%d" % copy)
            files[int(key[1:]) % FILES].write(line)
            written += 1
        copy += 1
    for f in files:
        f.close()
    return written


def bulk_ingest(folder: Path, db: Path, workers: int, hooks: bool) -> tuple[int, float]:
    """The tailer as ``agentdeck ingest`` runs it, timed end to end (``hooks``: with the post-commit hooks)."""
    from agentdeck.store.parallel import ParsePool

    conn = connect(db)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time()
    started = time.perf_counter()
    pool = ParsePool(workers) if workers else None
    try:
        stats = Tailer(conn, [folder], parse_pool=pool, post_commit=None if hooks else []).poll()
    finally:
        if pool:
            pool.close()  # waits for the workers, so their CPU time is counted below
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    conn.close()
    return stats.events, seconds, cpu, worker_cpu


def bare_insert(folder: Path, db: Path) -> tuple[int, float]:
    """The same rows with one executemany in one transaction (rows built beforehand, untimed)."""
    rows = []
    for source_id, path in enumerate(sorted(folder.glob("*.jsonl")), 1):
        for raw in path.read_bytes().splitlines():
            e = json.loads(raw)
            ts = epoch(datetime.fromisoformat(e["ts"].replace("Z", "+00:00")))
            rows.append((e["task_id"], e["seq"], e["kind"], ts, source_id, raw.decode()))
    conn = connect(db)
    cpu = time.process_time()
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO events (task_id, seq, kind, ts, source_id, payload) VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    conn.close()
    return len(rows), seconds, cpu


def bulk_round(traces: Path, work: Path, n: int, args) -> dict[str, float]:
    """Bare, each ingest run, bare again; returns each run's rate as a fraction of the bare mean."""
    # The machine may be busy with other work: bare runs before and after,
    # and the ratio uses their mean. The load average says how busy it was.
    print(f"load average {os.getloadavg()[0]:.2f} (before)")
    for old in work.glob("*.db*"):
        old.unlink()
    rows, bare_secs, bare_cpu = bare_insert(traces, work / "bare-1.db")
    print(f"{'bare executemany':<28}: {rows:,} rows   in {bare_secs:6.2f} s = {rows / bare_secs:9,.0f} rows/s"
          f"   cpu {bare_cpu / rows * 1e6:.1f} us/row")
    runs = [(f"ingest ({args.workers} parse proc)", args.workers, False)]
    if args.serial:
        runs.append(("ingest (serial)", 0, False))
    if args.hooks:
        runs.append(("ingest + post-commit hooks", args.workers, True))
    results = []
    for i, (label, workers, hooks) in enumerate(runs):
        events, secs, cpu, worker_cpu = bulk_ingest(traces, work / f"ingest-{i}.db", workers, hooks)
        assert events == rows == n, (events, rows, n)
        results.append((label, events, secs, cpu, worker_cpu))
        print(f"{label:<28}: {events:,} events in {secs:6.2f} s = {events / secs:9,.0f} events/s"
              f"   cpu {cpu / events * 1e6:.1f} us/event" + (
                  f" + parse procs {worker_cpu / events * 1e6:.1f} us/event" if worker_cpu else ""))
    rows2, bare_secs2, bare_cpu2 = bare_insert(traces, work / "bare-2.db")
    print(f"{'bare executemany (again)':<28}: {rows2:,} rows   in {bare_secs2:6.2f} s = "
          f"{rows2 / bare_secs2:9,.0f} rows/s   cpu {bare_cpu2 / rows2 * 1e6:.1f} us/row")
    bare = 2 * rows / (bare_secs + bare_secs2)
    ratios = {}
    for label, events, secs, cpu, worker_cpu in results:
        ratios[label] = events / secs / bare
        # CPU, unlike wall time, hardly depends on what else the machine runs.
        total = (cpu + worker_cpu) / events
        print(f"ratio {label:<22}: {ratios[label]:4.0%} of bare (target >= 50%);"
              f" CPU {total * 1e6:.1f} us/event, {(bare_cpu + bare_cpu2) / (rows + rows2) / total:.0%} of bare's")
    print(f"load average {os.getloadavg()[0]:.2f} (after)")
    return ratios


def _fleet(folder: str, rate: float, seconds: float) -> None:
    from agentdeck.sample_data.fleet import Fleet

    # Enough concurrent tasks that those waiting on a human never stall the rate.
    Fleet(Path(folder), rate=rate, concurrency=400, seed=7).run(duration=seconds)


def latency(folder: Path, db: Path, rate: float, seconds: float) -> list[float]:
    conn = connect(db)
    samples: list[float] = []
    last_id = [0]

    def note_commit(c, result) -> None:
        committed = time.time()
        rows = c.execute("SELECT id, ts FROM events WHERE id > ?", (last_id[0],)).fetchall()
        if rows:
            last_id[0] = rows[-1][0]
            samples.extend(committed - ts for _, ts in rows)

    tailer = Tailer(conn, [folder], post_commit=[note_commit])
    stop = threading.Event()
    follower = threading.Thread(target=tailer.run, args=(stop,), daemon=True)
    follower.start()
    fleet = multiprocessing.get_context("spawn").Process(target=_fleet, args=(str(folder), rate, seconds))
    fleet.start()
    fleet.join()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # let the last appends land
        written = sum(p.read_bytes().count(b"\n") for p in folder.glob("*.jsonl"))
        if len(samples) >= written:
            break
        time.sleep(0.05)
    stop.set()
    follower.join(5)
    conn.close()
    return samples


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=500.0, help="fleet events/s for the latency run")
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=None, help="parse processes (default: as agentdeck ingest)")
    ap.add_argument("--serial", action="store_true", help="also time ingestion without parse processes")
    ap.add_argument("--hooks", action="store_true",
                    help="also time ingestion with the post-commit hooks (contract checks) agentdeck ingest runs")
    ap.add_argument("--repeat", type=int, default=1, help="bulk rounds (bare, ingest runs, bare) to run; prints the median")
    ap.add_argument("--skip-bulk", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()
    if args.workers is None:
        from agentdeck.store.parallel import default_workers

        args.workers = default_workers()
    work = Path(tempfile.mkdtemp(prefix="agentdeck-bench-"))
    try:
        if not args.skip_bulk:
            traces = work / "traces"
            traces.mkdir()
            t = time.perf_counter()
            n = generate(traces, args.events)
            size = sum(p.stat().st_size for p in traces.iterdir())
            print(f"generated {n:,} events ({size / 1e6:.0f} MB, {FILES} files) in {time.perf_counter() - t:.1f} s")
            ratios: dict[str, list[float]] = {}
            for round_ in range(1, args.repeat + 1):
                if args.repeat > 1:
                    print(f"-- round {round_} of {args.repeat}")
                for label, ratio in bulk_round(traces, work, n, args).items():
                    ratios.setdefault(label, []).append(ratio)
            if args.repeat > 1:
                for label, rs in ratios.items():
                    print(f"ratio {label:<22}: median {statistics.median(rs):4.0%} of bare over {len(rs)} rounds "
                          f"(min {min(rs):.0%}, max {max(rs):.0%})")
        if not args.skip_latency:
            live = work / "live"
            live.mkdir()
            samples = latency(live, work / "live.db", args.rate, args.latency_seconds)
            ms = [s * 1000 for s in samples]
            print(f"append-to-commit : {len(ms):,} events at {args.rate:.0f}/s for {args.latency_seconds:.0f} s: "
                  f"p50 {statistics.median(ms):.1f} ms, p95 {pct(ms, 95):.1f} ms, max {max(ms):.1f} ms "
                  f"(target p95 <= 100 ms)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
