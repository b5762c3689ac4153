"""The console's 1-second health check, with and without the contract files, beside a bare query.

    python bench/health_check.py [--store /tmp/agentdeck-bench-console.db] [--sources 50000] [--folders 500]

Copies ``--store`` to a temporary folder (the original is never written), adds ``--sources`` rows to its
``sources`` table in ``--folders`` trace folders (a fleet writing a trace file per run; 0: the store as it is),
then times, median of ``--repeat`` calls each: a bare ``SELECT 1``, ``health.check`` as before contracts were
checked, and ``health.check(contracts=ContractCheck())`` as the console's store watcher calls it (the same
ContractCheck every second: its book re-read only when a contract file or a trace folder changes).
Prints each in ms, the ratio with/without, and the load average (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from agentdeck.store import health
from agentdeck.store.contract import ContractCheck
from agentdeck.store.db import connect
from agentdeck.store.txn import atomic


def _median_ms(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", default="/tmp/agentdeck-bench-console.db")
    p.add_argument("--sources", type=int, default=50_000)
    p.add_argument("--folders", type=int, default=500)
    p.add_argument("--repeat", type=int, default=15)
    args = p.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "store.db"
        shutil.copy(args.store, db)
        conn = connect(db)
        if args.sources:
            with atomic(conn):
                conn.executemany(
                    "INSERT INTO sources (path, dev, inode, first_seen, updated_at) VALUES (?, 0, -1, 0, 0)",
                    [(f"{tmp}/fleet/d{i % args.folders}/run-{i}.jsonl",) for i in range(args.sources)])
        events, sources = conn.execute("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM sources)").fetchone()
        contracts = ContractCheck()
        health.check(conn, time.time(), contracts=contracts)  # the first: the contract files are read
        bare = _median_ms(lambda: conn.execute("SELECT 1").fetchone(), args.repeat)
        without = _median_ms(lambda: health.check(conn, time.time()), args.repeat)
        with_contracts = _median_ms(lambda: health.check(conn, time.time(), contracts=contracts), args.repeat)
        conn.close()
    print(f"{events:,} events, {sources:,} trace files in the store; median of {args.repeat} calls")
    print(f"bare SELECT 1            {bare:9.3f} ms")
    print(f"health.check             {without:9.3f} ms")
    print(f"  with contracts         {with_contracts:9.3f} ms  ({with_contracts / without:.1f}x)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
