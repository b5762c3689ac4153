"""OTLP ingestion rate: spans/s through the receiver and through the file path,
beside native JSONL ingestion of the same events in the same run.

    .venv/bin/python bench/otlp.py [--traces 2000] [--batch 120] [--runs 3]

Each path runs ``--runs`` times; the median is printed, with the load average
before and after (a loaded machine slows every path, the ratio less so).
Target (issue 11): every OTLP path at 0.6x the native rate or better.

Each trace is one agent span with two model calls and three tool calls (one
failing) and an agentdeck.action span event: 6 spans, 11 native events.
Requests and file lines hold ``--batch`` spans each, as a Collector's batch
processor would send them. Files are read twice: by the tailer alone (as the
console follows them) and with the parse processes ``agentdeck ingest`` uses
for a backlog (store/parallel.py); the latter is compared with native events
read the same way.

On a loaded machine wall time mostly measures the scheduler, so the two
tailer rows also print the CPU time this process spent (all of the work there
is in it; not so with parse processes) and its ratio. The HTTP rows print it
too: the receiver's and its clients' (httpx, threads of this process: the
same work whichever receiver serves them), against the native tailer's.

Two more receiver rows send from a client in its own process, as an exporter
sends from its agent's: there the clients' Python does not share this
process's interpreter lock, and the CPU column is the receiver's alone. The
second sends the batches the OpenTelemetry SDK sends by default (its
BatchSpanProcessor exports up to 512 spans a request; the Collector's batch
processor 8192): 510 spans, the most whole traces that fit. ``--batch`` (120
by default, as a Collector flushing often sends) stays what the other rows use.

``--stages`` then prints the CPU of each stage of the same work, OTLP lines
beside native ones (JSON parse, spans, mapping and validation, store), and the
ratio the OTLP path would reach with the mapping, or the mapping and the span
claims, costing nothing: how far any one change can take it.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any


import httpx
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentdeck.store import otlp
from agentdeck.store.db import connect
from agentdeck.store.otlp_receiver import Receiver
from agentdeck.store.parallel import ParsePool, default_workers
from agentdeck.store.tailer import Tailer

T0 = 1_795_600_000_000_000_000
POOL_BASE = "native JSONL, ingest + parse procs (base)"
BASE = "native JSONL, tailer (baseline)"


def _attr(key, value):
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def trace_spans(n: int) -> list[dict]:
    trace = f"{n + 1:032x}"
    root = f"{(n << 8) + 1:016x}"
    t = T0 + n * 5_000_000_000

    def span(i, name, attrs, start, end, parent=root, error=False, events=()):
        s = {"traceId": trace, "spanId": f"{(n << 8) + i:016x}", "name": name,
             "startTimeUnixNano": str(t + start * 1_000_000), "endTimeUnixNano": str(t + end * 1_000_000),
             "attributes": [_attr(k, v) for k, v in attrs.items()], "events": list(events),
             "status": {"code": 2, "message": "timed out"} if error else {"code": 1}}
        if parent:
            s["parentSpanId"] = parent
        return s

    action = {"name": "agentdeck.action", "timeUnixNano": str(t + 3_500_000_000), "attributes": [
        _attr("agentdeck.action_id", f"act-{n}"), _attr("agentdeck.system", "payments"), _attr("agentdeck.operation", "refund"),
        _attr("agentdeck.before", '{"refunded": false}'), _attr("agentdeck.after", '{"refunded": true}')]}
    return [
        span(2, "chat gpt-4.1", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4.1",
                                 "gen_ai.usage.input_tokens": 800, "gen_ai.usage.output_tokens": 90}, 10, 900),
        span(3, "execute_tool lookup", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup",
                                        "gen_ai.tool.call.id": f"c{n}-1", "gen_ai.tool.call.arguments": '{"order": 1042}',
                                        "gen_ai.tool.call.result": '{"amount": 80.5}'}, 1000, 1400),
        span(4, "execute_tool charge", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "charge",
                                        "gen_ai.tool.call.id": f"c{n}-2"}, 1500, 2500, error=True),
        span(5, "execute_tool charge", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "charge",
                                        "gen_ai.tool.call.id": f"c{n}-3", "agentdeck.retry": 1}, 2600, 3000),
        span(6, "chat gpt-4.1", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4.1",
                                 "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 40}, 3100, 3400),
        span(1, "invoke_agent refund-agent", {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "refund-agent",
                                              "gen_ai.request.model": "gpt-4.1", "agentdeck.cohort": "canary"},
             0, 3600, parent=None, events=[action]),
    ]


def requests(spans: list[dict], batch: int) -> list[dict]:
    return [{"resourceSpans": [{"resource": {"attributes": [_attr("service.name", "bench")]},
                                "scopeSpans": [{"scope": {"name": "bench"}, "spans": spans[i:i + batch]}]}]}
            for i in range(0, len(spans), batch)]


def to_protobuf(doc: dict) -> bytes:
    doc = json.loads(json.dumps(doc))
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in s:
                        s[key] = base64.b64encode(bytes.fromhex(s[key])).decode()
    return json_format.ParseDict(doc, ExportTraceServiceRequest()).SerializeToString()


CPU: dict[str, list[float]] = {}  # label -> this process's CPU seconds per run (tailer and HTTP rows)


def tail_rate(folder: Path, db: Path, pool: ParsePool | None = None, label: str = "") -> tuple[float, int]:
    conn = connect(db)
    cpu = time.process_time()
    started = time.perf_counter()
    stats = Tailer(conn, [folder], post_commit=[], parse_pool=pool).poll()
    seconds = time.perf_counter() - started
    if label and pool is None:
        CPU.setdefault(label, []).append(time.process_time() - cpu)
    assert stats.rejects == 0, conn.execute("SELECT error FROM rejects LIMIT 1").fetchone()[0]
    conn.close()
    return seconds, stats.events


def post_all(endpoint: str, bodies: list[bytes], content_type: str, clients: int) -> float:
    chunks = [bodies[i::clients] for i in range(clients)]
    errors: list[str] = []

    def client(chunk):
        with httpx.Client(timeout=60) as http:
            for body in chunk:
                r = http.post(endpoint, content=body, headers={"Content-Type": content_type})
                if r.status_code != 200:
                    errors.append(r.text)

    threads = [threading.Thread(target=client, args=(c,)) for c in chunks]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    assert not errors, errors[0]
    return seconds


# A client in its own process, as an exporter is in its agent's: the receiver's process then does
# the receiver's work only (with httpx threads beside it, both share one interpreter lock).
_CLIENT = r"""
import struct, sys, time, httpx
endpoint, path, ctype = sys.argv[1:4]
data, bodies, at = open(path, "rb").read(), [], 0
while at < len(data):
    (n,) = struct.unpack_from(">I", data, at)
    bodies.append(data[at + 4:at + 4 + n])
    at += 4 + n
with httpx.Client(timeout=60) as http:
    # An empty export request (no spans: nothing stored) opens the connection before the clock starts.
    assert http.post(endpoint, content=b"", headers={"Content-Type": "application/x-protobuf"}).status_code == 200
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    for body in bodies:
        r = http.post(endpoint, content=body, headers={"Content-Type": ctype})
        assert r.status_code == 200, r.text
    print(time.perf_counter() - started, flush=True)
"""


def post_from_process(endpoint: str, bodies: list[bytes], content_type: str, path: Path) -> float:
    """Seconds from the first request to the last answer, sent by one client in another process."""
    path.write_bytes(b"".join(struct.pack(">I", len(b)) + b for b in bodies))
    proc = subprocess.Popen([sys.executable, "-c", _CLIENT, endpoint, str(path), content_type],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.stdin.write("go\n")
    proc.stdin.flush()
    seconds = float(proc.stdout.readline())
    assert proc.wait(60) == 0
    return seconds


def receiver_run(db: Path, label: str, post: Callable[[str], float], n_events: int) -> float:
    """Seconds ``post`` takes to send through a fresh receiver on ``db`` (its CPU noted under ``label``),
    every event stored."""
    with Receiver(db, "127.0.0.1", 0, post_commit=[]) as receiver:
        cpu = time.process_time()
        seconds = post(receiver.endpoint)
        CPU.setdefault(label, []).append(time.process_time() - cpu)
    conn = connect(db)
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == n_events
    conn.close()
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--traces", type=int, default=2000)
    p.add_argument("--batch", type=int, default=120, help="spans per request / file line")
    p.add_argument("--runs", type=int, default=3, help="runs of each path (the median is shown)")
    p.add_argument("--stages", action="store_true",
                   help="also print where the CPU goes, stage by stage, OTLP lines beside native ones")
    args = p.parse_args()
    pool = ParsePool(default_workers())  # forked now, before the receiver's threads (as `agentdeck ingest` does)
    load_before = os.getloadavg()
    spans = [s for n in range(args.traces) for s in trace_spans(n)]
    docs = requests(spans, args.batch)
    lines = [json.dumps(d, separators=(",", ":")) for d in docs]
    native = [payload for line in lines for _e, payload in otlp.decode_line(line.encode())]
    pb_bodies = [to_protobuf(d) for d in docs]
    json_bodies = [line.encode() for line in lines]
    # The OpenTelemetry SDK's BatchSpanProcessor exports up to 512 spans a request: 510 is
    # the most whole 6-span traces that fit (a trace split over two requests is also fine for
    # the receiver, not for this bench's counts).
    sdk_batch = 510
    sdk_bodies = [to_protobuf(d) for d in requests(spans, sdk_batch)] if args.batch != sdk_batch else []
    n_spans, n_events = len(spans), len(native)
    print(f"{args.traces} traces, {n_spans} spans -> {n_events} events; {len(docs)} batches of {args.batch} spans")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "native").mkdir()
        (tmp / "native" / "events.jsonl").write_text("\n".join(native) + "\n")
        (tmp / "otlp").mkdir()
        (tmp / "otlp" / "otel.json").write_text("\n".join(lines) + "\n")

        rows: list[tuple[str, float]] = []
        times: dict[str, list[float]] = {}
        # A store of its own for every receiver row of every run (named by len(times), every row after the first
        # run's shared one: it sent its events to a store already holding them, a re-send, not an ingest).
        receiver_dbs = itertools.count()
        for run in range(args.runs):
            seconds, events = tail_rate(tmp / "native", tmp / f"native-{run}.db", label=BASE)
            assert events == n_events
            times.setdefault(BASE, []).append(seconds)
            seconds, events = tail_rate(tmp / "otlp", tmp / f"file-{run}.db", label="OTLP JSON lines, tailer")
            assert events == n_events
            times.setdefault("OTLP JSON lines, tailer", []).append(seconds)
            seconds, events = tail_rate(tmp / "native", tmp / f"native-pool-{run}.db", pool)
            assert events == n_events
            times.setdefault(POOL_BASE, []).append(seconds)
            seconds, events = tail_rate(tmp / "otlp", tmp / f"file-pool-{run}.db", pool)
            assert events == n_events
            times.setdefault("OTLP JSON lines, ingest + parse procs", []).append(seconds)
            for label, bodies, ctype, clients in (
                ("OTLP/HTTP protobuf, 1 client", pb_bodies, "application/x-protobuf", 1),
                ("OTLP/HTTP protobuf, 4 clients", pb_bodies, "application/x-protobuf", 4),
                ("OTLP/HTTP JSON, 1 client", json_bodies, "application/json", 1),
            ):
                post = partial(post_all, bodies=bodies, content_type=ctype, clients=clients)
                db = tmp / f"recv-{next(receiver_dbs)}.db"
                times.setdefault(label, []).append(receiver_run(db, label, post, n_events))
            extra = [("OTLP/HTTP protobuf, client process", pb_bodies)]
            if sdk_bodies:
                extra.append((f"  same, {sdk_batch} spans a request (SDK)", sdk_bodies))
            for label, bodies in extra:
                post = partial(post_from_process, bodies=bodies, content_type="application/x-protobuf",
                               path=tmp / "bodies")
                db = tmp / f"recv-{next(receiver_dbs)}.db"
                times.setdefault(label, []).append(receiver_run(db, label, post, n_events))
        rows = [(label, statistics.median(ts)) for label, ts in times.items()]

    pool.close()
    base = rows[0][1]
    pool_base = dict(rows)[POOL_BASE]
    print(f"median of {args.runs} runs; load average before {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f}, after {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} cores")
    print(f"{'path':38} {'seconds':>8} {'spans/s':>10} {'events/s':>10} {'vs native':>9} {'CPU s':>6} {'CPU vs':>6}")
    cpu_base = statistics.median(CPU[BASE])
    for label, seconds in rows:
        # Rows through the parse processes are compared with native events through them.
        against = pool_base if "parse procs" in label else base
        cpu_text = f" {statistics.median(CPU[label]):6.2f} {cpu_base / statistics.median(CPU[label]):5.2f}x" \
            if label in CPU else ""
        print(f"{label:38} {seconds:8.2f} {n_spans / seconds:10,.0f} {n_events / seconds:10,.0f} "
              f"{against / seconds:8.2f}x{cpu_text}")
    if args.stages:
        stages(lines, native, args.runs)


def stages(lines: list[str], native: list[str], runs: int) -> None:
    """CPU seconds of each stage of ingesting the same events, OTLP JSON lines beside native lines
    (least of ``runs``, collector paused as the ingest paths pause it): what an OTLP path would
    still cost with any one stage made free."""
    from agentdeck.store import events as ev
    from agentdeck.store.gc_pause import paused
    from agentdeck.store.ingest import commit, prepare

    raw = [line.encode() for line in lines]
    raw_native = [line.encode() for line in native]

    def least(work) -> tuple[float, Any]:
        best, out = float("inf"), None
        for _ in range(runs):
            with paused():
                started = time.process_time()
                out = work()
                best = min(best, time.process_time() - started)
        return best, out

    def store(items: list, spans: bool) -> float:
        with tempfile.TemporaryDirectory() as tmp_name:
            conn = connect(Path(tmp_name) / "stages.db")
            started = time.process_time()
            for i in range(0, len(items), 2750):  # (the tailer's transactions hold about this many events)
                batch = items[i:i + 2750]
                commit(conn, None, prepare(batch, None), [], spans=batch if spans else None)
            seconds = time.process_time() - started
            conn.close()
        return seconds

    t_json, docs = least(lambda: [json.loads(line) for line in raw])
    t_spans, spans = least(lambda: [otlp.spans_from_json(d) for d in docs])
    t_map, batches = least(lambda: [otlp.to_events(s) for s in spans])
    items = [item for batch in batches for item in batch]
    t_store = min(store(items, True) for _ in range(runs))
    validate = ev.event_adapter.validator.validate_json
    t_validate, events = least(lambda: [(validate(line), line.decode()) for line in raw_native])
    t_native_store = min(store(events, False) for _ in range(runs))
    otlp_total, native_total = t_json + t_spans + t_map + t_store, t_validate + t_native_store
    print(f"CPU by stage, least of {runs}, {len(items)} events (reading files and HTTP left out):")
    print(f"  OTLP   json.loads {t_json:.3f}  spans {t_spans:.3f}  mapping + validation {t_map:.3f}  "
          f"store (claim + rows) {t_store:.3f}  = {otlp_total:.3f} s")
    print(f"  native validation {t_validate:.3f}  store (rows) {t_native_store:.3f}  = {native_total:.3f} s")
    print(f"  native / OTLP {native_total / otlp_total:.2f}x; with the mapping free "
          f"{native_total / (otlp_total - t_map):.2f}x; with mapping and claims free "
          f"{native_total / (t_json + t_spans + t_native_store):.2f}x")


if __name__ == "__main__":
    main()
