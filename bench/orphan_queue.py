"""Benchmark: the pending escalation queue with orphaned ones listed last (console/service/reach.py).

    .venv/bin/python bench/orphan_queue.py [--pending 5000] [--decided 15000] [--runs 7]

Builds a throwaway store with PENDING pending escalations (a third with no
callback URL, the rest over 50 callback origins) and DECIDED decided ones (some
failed as unreachable), then times ``DeckService.escalation_queue`` (no outbox:
orphans exist) beside the bare baseline ``store.decisions.pending`` (500 rows,
no orphan logic). Prints medians of RUNS runs and the load average.
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
from agentdeck.store import decisions
from agentdeck.store.db import connect


def build(db: Path, pending: int, decided: int) -> None:
    conn = connect(db)
    rows = []
    for i in range(pending + decided):
        is_pending = i < pending
        url = f"http://127.0.0.1:{9000 + i % 50}/decide" if i % 3 else None
        failed = not is_pending and i % 7 == 0
        rows.append((f"esc-{i}", f"t-{i}", 1000.0 + i, 2000.0 + i, url, "pending" if is_pending else "approved",
                     None if is_pending else 1500.0 + i,
                     None if is_pending else ("failed" if failed else "delivered"),
                     "ConnectError: [Errno 111] Connection refused" if failed else None))
    with conn:
        conn.executemany(
            "INSERT INTO escalations (escalation_id, task_id, seq, ts, risk, risk_rank, deadline, proposed_action, "
            "callback_url, status, decided_at, delivery, delivery_error) VALUES (?, ?, 0, ?, 'low', 1, ?, '{}', ?, ?, ?, ?, ?)",
            rows)
    conn.close()


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pending", type=int, default=5000)
    ap.add_argument("--decided", type=int, default=15000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "s.db"
        build(db, args.pending, args.decided)
        deck = DeckService(for_tests(db, allow_hosts=frozenset({"127.0.0.1"})), clock=lambda: 1500.0)
        conn = deck.reader()
        bare = median_ms(lambda: decisions.pending(conn), args.runs)
        queue = median_ms(lambda: deck.escalation_queue(False), args.runs)
        shown = deck.escalation_queue(False)
        orphaned = sum(r.orphaned for r in shown.reach.values())
        print(f"{args.pending:,} pending, {args.decided:,} decided; load average {os.getloadavg()[0]:.2f}")
        print(f"bare pending query (500 rows): {bare:7.1f} ms")
        print(f"escalation_queue (orphans last): {queue:7.1f} ms  ({queue / bare:.1f}x)  "
              f"[{orphaned} of {len(shown.rows)} shown orphaned]")


if __name__ == "__main__":
    main()
