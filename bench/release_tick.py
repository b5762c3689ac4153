"""Benchmark: the console's release tick (verdicts -> promotion / roll back items, stage publishing).

    .venv/bin/python bench/release_tick.py [--events 200000] [--db PATH] [--rebuild]

Builds (once, then reuses) a sample-fleet store as bench/canary.py does, then
times ``DeckService.release_tick`` beside bare baselines of the same run:

* a tick that computes every agent's live verdict and raises its item (the
  items are removed again between repeats, so each repeat does the whole work);
* an idle tick: nothing ingested since the last one, so verdicts are skipped;
* ``store.canary.analyse`` for every pair (the verdicts the tick computes);
* bare ``SELECT count(*) FROM tasks``.

The tick runs on a worker thread every 15 s; the figure that matters for the
console is the idle tick (most ticks) and the full tick's CPU while data streams.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from agentdeck.console.service.deck import DeckService
from agentdeck.console.service.settings import for_tests
from agentdeck.store import canary, contract
from agentdeck.store.db import connect

from siblings import sibling  # (bench/siblings.py: these scripts run by path)


def median(fn, repeat: int = 5, before=lambda: None) -> tuple[float, float]:
    """Median wall and CPU seconds of ``repeat`` runs (``before`` runs untimed ahead of each)."""
    walls, cpus = [], []
    for _ in range(repeat):
        before()
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def line(label: str, wall: float, cpu: float, base: float) -> None:
    print(f"{label:52} {wall * 1000:8.1f} ms wall {cpu * 1000:8.1f} ms cpu  ({wall / base:,.0f}x the bare count)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--db", default=str(Path(tempfile.gettempdir()) / "agentdeck-bench-release.db"))
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    db = Path(args.db)
    if args.rebuild or not db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        sibling("canary").build(db, args.events)
    conn = connect(db)
    now = conn.execute("SELECT max(started) FROM tasks").fetchone()[0]
    events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    tasks = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"store: {events:,} events, {tasks:,} tasks; load average {load:.1f} on {os.cpu_count()} cpus")

    with tempfile.TemporaryDirectory() as tmp:
        deck = DeckService(for_tests(db, outbox=Path(tmp) / "outbox" / "decisions.jsonl", operator="bench"),
                           clock=lambda: now)

        def fresh() -> None:  # as if no tick had run: every verdict computed, every item raised again
            with conn:
                conn.execute("DELETE FROM release_items")
                conn.execute("DELETE FROM stage_changes")
                conn.execute("DELETE FROM escalations WHERE kind = 'release'")
            deck._release_seen = None

        base, base_cpu = median(lambda: conn.execute("SELECT count(*) FROM tasks").fetchone())
        line("baseline: SELECT count(*) FROM tasks", base, base_cpu, base)
        book = contract.book_for_store(conn)
        pairs = canary.pairs(conn)
        w, c = median(lambda: [canary.analyse(conn, p.agent, p.baseline, p.canary, now=now, window="all",
                                              contract=book.get(p.agent), sparklines=False) for p in pairs])
        line(f"verdicts of {len(pairs)} agents (canary.analyse, window all)", w, c, base)
        w, c = median(deck.release_tick, before=fresh)
        line("release tick: verdicts, items raised, stages published", w, c, base)
        items = conn.execute("SELECT count(*) FROM release_items").fetchone()[0]
        deck.release_tick()
        w, c = median(deck.release_tick)
        line("release tick, nothing new since the last (idle)", w, c, base)
        print(f"items raised by one tick: {items} (verdicts: "
              + ", ".join(f"{p.agent} {p.canary}" for p in pairs) + ")")
        fresh()


if __name__ == "__main__":
    main()
