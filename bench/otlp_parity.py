"""Every table after ingesting the same OpenTelemetry traces in several ways, as text, to diff
before and after a change to the OTLP path (a speed-up must store exactly the same rows).

    .venv/bin/python bench/otlp_parity.py before.txt          # on main (or the commit before)
    .venv/bin/python bench/otlp_parity.py after.txt           # on the branch
    diff before.txt after.txt                                 # nothing: the same rows

The traces: every captured framework fixture (tests/fixtures/otel), each as one
request, in requests of 3 spans (its log records first), of 2 spans reversed and
1 span shuffled, then half of it again (duplicates); and bench/otlp.py's traces
through the tailer, the tailer with parse processes, the receiver (protobuf from
one sender, then JSON from another, reversed) and in reversed requests of 7 spans.
Columns that hold wall-clock times (``updated_at``, ``created_at``) and tables
about the ingesters themselves are left out; everything else is printed. The
span parts recorded a trace a row (``otlp_claims``) are printed as the
``otlp_spans`` rows they stand for, so stores before and after that change compare.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import otel_fixtures as fixtures  # noqa: E402  (tests/otel_fixtures.py)
import otlp as bench  # noqa: E402  (bench/otlp.py)

from agentdeck.store import otlp, otlp_logs  # noqa: E402
from agentdeck.store.db import connect  # noqa: E402
from agentdeck.store.ingest import apply_batch  # noqa: E402
from agentdeck.store.otlp_receiver import Receiver  # noqa: E402
from agentdeck.store.parallel import ParsePool  # noqa: E402
from agentdeck.store.tailer import Tailer  # noqa: E402

SKIP_TABLES = {"sources", "schema_migrations", "ingest_status", "receiver_status"}
SKIP_COLUMNS = {"updated_at", "created_at"}


def dump(conn, label: str, out, order_free: bool = False) -> None:
    """``order_free``: events sorted, without their ids (requests that were committed at once,
    in an order that differs from run to run), no task's last tool (the last to arrive), and no span parts (which parts a trace's
    spans claim depends on the order they come in: a step frames its task until its agent
    span comes)."""
    out.write(f"=== {label}\n")
    claims = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'otlp_claims'").fetchone()
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
        if table in SKIP_TABLES or table.startswith("sqlite") or table == "otlp_claims" or \
                (order_free and table == "otlp_spans"):
            continue
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] not in SKIP_COLUMNS
                and not (order_free and (table, r[1]) in (("events", "id"), ("tasks", "last_tool")))]
        rows = [repr(tuple(r)) for r in conn.execute(f"SELECT {', '.join(cols)} FROM {table}")]
        if table == "otlp_spans" and claims:  # the parts claimed a trace a row, as the rows they stand for
            names = ("trace_id", "span_id", "part", "source", "step_seq", "bare")
            rows += [repr(tuple(dict(zip(names, row))[c] for c in cols))
                     for trace, parts in conn.execute("SELECT trace_id, parts FROM otlp_claims")
                     for row in otlp._part_rows(trace, parts)]
        if table == "meta":  # (schema versions: a migration that only moves rows changes them)
            rows = [r for r in rows if not r.startswith("('schema:")]
        if table != "events" or order_free:  # (events in insertion order: the order a task's equal seqs show in)
            rows.sort()
        out.write(f"-- {table} ({len(rows)})\n")
        out.writelines(r + "\n" for r in rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--traces", type=int, default=300, help="bench/otlp.py traces")
    args = p.parse_args()
    pool = ParsePool(2)  # (forked before the receiver's threads)
    tmp = Path(tempfile.mkdtemp(prefix="otlp-parity-"))
    stores = iter(range(1_000_000))

    def store():
        return tmp / f"{next(stores)}.db"

    with args.out.open("w") as out:
        for framework in sorted(d.name for d in fixtures.FIXTURES.iterdir() if d.is_dir() and d.name != "capture"):
            spans = fixtures.spans(framework)
            logs = next(iter(sorted((fixtures.FIXTURES / framework).glob("*.logs.otlp.pb"))), None)
            for label, order, batch in (("whole", spans, None), ("by 3", spans, 3), ("reversed by 2", spans[::-1], 2),
                                        ("shuffled by 1", random.Random(7).sample(spans, len(spans)), 1)):
                conn = connect(store())
                if logs and label == "by 3":  # the log records before their spans
                    for body in fixtures.requests(logs):
                        apply_batch(conn, None, otlp_logs.decode_protobuf(body, partial=True), [])
                fixtures.ingest_spans(conn, order, batch)
                if logs and label == "whole":  # and after them
                    for body in fixtures.requests(logs):
                        apply_batch(conn, None, otlp_logs.decode_protobuf(body, partial=True), [])
                fixtures.ingest_spans(conn, order[: len(order) // 2], batch)  # sent again
                dump(conn, f"{framework}, {label}", out)
                conn.close()

        spans = [s for n in range(args.traces) for s in bench.trace_spans(n)]
        docs = bench.requests(spans, 50)
        folder = tmp / "files"
        folder.mkdir()
        (folder / "otel.json").write_text("".join(json.dumps(d, separators=(",", ":")) + "\n" for d in docs))
        for label, parse_pool in (("bench traces, tailer", None), ("bench traces, parse processes", pool)):
            conn = connect(store())
            Tailer(conn, [folder], post_commit=[], parse_pool=parse_pool).poll()
            dump(conn, label, out)
            conn.close()
        path = store()
        with Receiver(path, "127.0.0.1", 0, post_commit=[]) as receiver:
            for d in docs:
                receiver.ingest(bench.to_protobuf(d), "application/x-protobuf", source="one")
            for d in docs[::-1]:
                receiver.ingest(json.dumps(d).encode(), "application/json", source="other")
        conn = connect(path)
        dump(conn, "bench traces, receiver", out)
        conn.close()
        # Four clients at once, requests of 7 spans (traces split across them) each sent twice:
        # requests that arrive while another is written share its transaction.
        path = store()
        bodies = [bench.to_protobuf(d) for d in bench.requests(spans[::-1], 7)] * 2
        with Receiver(path, "127.0.0.1", 0, post_commit=[]) as receiver:
            with ThreadPoolExecutor(4) as clients:
                list(clients.map(lambda body: receiver.ingest(body, "application/x-protobuf", source="four"), bodies))
        conn = connect(path)
        dump(conn, "bench traces, receiver, 4 clients at once", out, order_free=True)
        conn.close()
        conn = connect(store())
        for d in bench.requests(spans[::-1], 7):
            apply_batch(conn, None, otlp.decode_json(json.dumps(d).encode()), [])
        dump(conn, "bench traces, reversed by 7", out)
        conn.close()
    pool.close()
    print(f"{args.out}: {sum(1 for _ in args.out.open())} lines")


if __name__ == "__main__":
    main()
