"""How long one notification tick takes on a store, beside the bare queries behind it.

    .venv/bin/python bench/notify.py [--db STORE] [--runs 7]

Without --db, a copy of the bundled sample data is built in a temporary folder.
Adds --pending escalations, then prints medians over --runs of: a tick with nothing new to send (the steady
state: every rule evaluated, every alert already recorded) beside the bare
pending-escalations query, and the canary analysis (run at most once a minute
by the tick) beside it. Routes point at a local receiver on 127.0.0.1.
Report the load average with the figures (printed at the end).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def timed(fn, runs: int) -> float:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="an existing store (copied; never written)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--pending", type=int, default=500, help="pending escalations to add (default 500)")
    args = ap.parse_args()

    from notify_support import Receiver

    from agentdeck.console.notify import NotifySettings, tick
    from agentdeck.console.notify import rules as notify_rules
    from agentdeck.store.db import connect

    work = Path(tempfile.mkdtemp(prefix="agentdeck-bench-notify-"))
    try:
        db = work / "bench.db"
        if args.db:
            shutil.copy(args.db, db)
        else:
            from agentdeck.store.tailer import Tailer

            conn = connect(db)
            Tailer(conn, [ROOT / "sample_data" / "traces"]).poll()
            conn.close()
        now = time.time()
        if args.pending:
            import json

            from test_escalations_support import _task

            from agentdeck.store.tailer import Tailer

            path = work / "pending" / "pending.jsonl"
            path.parent.mkdir()
            with path.open("w") as f:
                for i in range(args.pending):
                    for e in _task(f"bench-{i}", raised=now - 60, deadline=now + 3600 + i, risk="high", system="iam",
                                   operation="grant_role", params={"user": f"u{i}"}):
                        f.write(json.dumps(e) + "\n")
            conn = connect(db)
            Tailer(conn, [path]).poll()
            conn.close()
        conn = connect(db)
        with Receiver() as rx:
            settings = NotifySettings.model_validate({"routes": [rx.url()], "rules": {"canary": "off"}})
            first = tick(conn, settings, now, allow_hosts={rx.host})  # records and sends what is due
            drain = time.perf_counter()
            ticks, sent = 1, first.sent
            while (r := tick(conn, settings, now, allow_hosts={rx.host})).sent:  # up to 50 sends a tick
                ticks, sent = ticks + 1, sent + r.sent
            drain = time.perf_counter() - drain
            steady = timed(lambda: tick(conn, settings, now, allow_hosts={rx.host}), args.runs)
        bare = timed(lambda: conn.execute(
            "SELECT escalation_id, risk, deadline FROM escalations WHERE status = 'pending'").fetchall(), args.runs)
        canary_settings = NotifySettings.model_validate({"routes": [rx.url()]})
        analysis = timed(lambda: notify_rules.canary_reports(conn, canary_settings.rules, now), max(args.runs // 2, 1))
        pending = conn.execute("SELECT count(*) FROM escalations WHERE status = 'pending'").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        print(f"store: {events:,} events, {pending:,} pending escalations; {sent} sent in {ticks} ticks "
              f"({drain * 1000 / max(sent - first.sent, 1):.2f} ms a send after the first tick)")
        print(f"tick, nothing new (median of {args.runs}):   {steady:8.2f} ms")
        print(f"bare pending-escalations query:          {bare:8.2f} ms   ratio {steady / max(bare, 1e-6):.1f}x")
        print(f"canary analysis (once a minute at most): {analysis:8.2f} ms")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
