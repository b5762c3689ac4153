"""Escalation queue reads, decision commits and outbox appends at scale, beside bare baselines.

    python bench/escalations.py [--escalations 200000] [--pending 2000] [--decisions 300] [--outbox-lines 50000]

1. Queue: a store with ``--escalations`` escalations, ``--pending`` of them
   pending. Times ``decisions.pending`` (the Escalations screen's query, 500
   rows) and ``decisions.decided`` (200 rows), beside a bare
   ``SELECT escalation_id FROM escalations WHERE status='pending' LIMIT 500``.
2. Decide: ``--decisions`` decisions with ``decisions.decide`` (BEGIN
   IMMEDIATE, first-wins UPDATE, hash-chained audit record, COMMIT), beside a
   bare ``UPDATE`` of the same rows, one transaction each.
3. Outbox: ``outbox.append_once`` (flock, write, fsync; on a retry after a
   crash also a key check over the whole file) into an outbox already holding
   ``--outbox-lines`` lines, beside a bare append + fsync.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


from agentdeck.store import decisions, outbox
from agentdeck.store.db import connect

RISKS = ("low", "medium", "high", "critical")


def build(path: Path, total: int, pending: int) -> None:
    conn = connect(path)
    now = time.time()
    rows = []
    for i in range(total):
        is_pending = i >= total - pending
        risk = RISKS[i % 4]
        rows.append((
            f"esc-{i:07d}", f"task-{i:07d}", 0, now - 3600 + i * 0.01, "bench-agent", risk, i % 4, "above the limit",
            now + 600 + (i % 900), "pol-1", "because", '{"system":"iam","operation":"grant_role","params":{}}', None,
            "pending" if is_pending else ("approved" if i % 3 else "denied"),
            None if is_pending else "alice", None if is_pending else now - 3600 + i * 0.01,
        ))
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        """INSERT INTO escalations (escalation_id, task_id, seq, ts, agent, risk, risk_rank, reason, deadline, policy_id,
           justification, proposed_action, callback_url, status, decided_by, decided_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        rows,
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def report(name: str, ours: list[float], bare: list[float]) -> None:
    a, b = statistics.median(ours), statistics.median(bare)
    print(f"  {name:<34} median {a:8.3f} ms   p95 {sorted(ours)[int(len(ours) * 0.95) - 1]:8.3f} ms"
          f"   bare {b:8.3f} ms   ratio {a / b if b else float('inf'):6.1f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--escalations", type=int, default=200_000)
    ap.add_argument("--pending", type=int, default=2_000)
    ap.add_argument("--decisions", type=int, default=300)
    ap.add_argument("--outbox-lines", type=int, default=50_000)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        t = time.perf_counter()
        build(db, args.escalations, args.pending)
        print(f"store: {args.escalations:,} escalations, {args.pending:,} pending (built in {time.perf_counter() - t:.1f} s)")
        ro = connect(db, readonly=True)

        print("1. queue reads (20 runs)")
        report("decisions.pending (500 rows)", timed(lambda: decisions.pending(ro), 20),
               timed(lambda: ro.execute("SELECT escalation_id FROM escalations WHERE status = 'pending' LIMIT 500").fetchall(), 20))
        report("decisions.decided (200 rows)", timed(lambda: decisions.decided(ro), 20),
               timed(lambda: ro.execute("SELECT escalation_id FROM escalations WHERE status != 'pending' LIMIT 200").fetchall(), 20))

        print(f"2. decisions ({args.decisions} each)")
        rw = connect(db)
        ids = [r[0] for r in rw.execute("SELECT escalation_id FROM escalations WHERE status = 'pending' LIMIT ?",
                                        (args.decisions * 2,))]
        ours_ids, bare_ids = ids[: args.decisions], ids[args.decisions: args.decisions * 2]
        it = iter(ours_ids)
        ours = timed(lambda: decisions.decide(rw, next(it), "approve", by="bench", reason="ok", now=time.time()),
                     len(ours_ids))
        it2 = iter(bare_ids)

        def bare_update() -> None:
            rw.execute("BEGIN IMMEDIATE")
            rw.execute("UPDATE escalations SET status = 'approved', decided_by = 'bench' WHERE escalation_id = ? AND status = 'pending'",
                       (next(it2),))
            rw.execute("COMMIT")

        report("decisions.decide (+audit)", ours, timed(bare_update, len(bare_ids)))

        print(f"3. outbox append ({args.outbox_lines:,} lines already there, 100 appends)")
        box = Path(tmp) / "outbox.jsonl"
        line = outbox.OutboxLine(escalation_id="esc-x", task_id="t", decision="approve", decided_by="alice",
                                 decided_at="2026-11-24T15:00:00.000Z", reason="ok", idempotency_key="k")
        with open(box, "w") as f:
            for i in range(args.outbox_lines):
                f.write(line.model_copy(update={"escalation_id": f"esc-{i}", "idempotency_key": f"agentdeck-dec-{i:032d}"}).to_json() + "\n")
        bare_box = Path(tmp) / "bare.jsonl"
        bare_box.write_bytes(box.read_bytes())
        n = iter(range(10**9))
        ours = timed(lambda: outbox.append_once(box, line.model_copy(update={"idempotency_key": f"new-{next(n)}"}),
                                                check=False), 100)
        checked = timed(lambda: outbox.append_once(box, line.model_copy(update={"idempotency_key": f"new-{next(n)}"})), 20)
        payload = line.to_json().encode() + b"\n"

        def bare_append() -> None:
            fd = os.open(bare_box, os.O_WRONLY | os.O_APPEND)
            os.write(fd, payload)
            os.fsync(fd)
            os.close(fd)

        bare = timed(bare_append, 100)
        report("outbox append (first attempt)", ours, bare)
        report("outbox append (retry: key check)", checked, bare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
