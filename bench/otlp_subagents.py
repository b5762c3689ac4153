"""CPU of storing OpenInference-shaped openai-agents traces with message content, beside a bare
``json.loads`` + ``executemany`` of the same lines in the same run.

    .venv/bin/python bench/otlp_subagents.py [--traces 1000] [--runs 3]

Each trace is what OpenInference's openai-agents instrumentation sends for a handoff: a
triage AGENT, its "turn" CHAIN and model call, then a refund AGENT (no input or output of its
own, as that instrumentation logs it) with a turn holding two model calls and a tool: 8 spans,
120 to a Collector file line, stored by the serial file path (decode_line + apply_batch). What
it exercises beyond bench/otlp.py: message content, parent links through turn spans, and the
sub-agent step filled from its model calls (store/otlp.py ``_inner``, docs/otel.md). Prints the
median CPU time of this process over ``--runs`` runs (the work is all in it) and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import time

from agentdeck.store import otlp
from agentdeck.store.db import connect
from agentdeck.store.ingest import apply_batch

T0 = 1_795_600_000_000_000_000


def _attr(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


def trace_spans(n: int) -> list[dict]:
    trace = f"{n + 1:032x}"

    def sid(k: int) -> str:
        return f"{(n << 8) + k:016x}"

    def span(k: int, parent: int | None, name: str, attrs: dict, start: int, end: int) -> dict:
        s = {"traceId": trace, "spanId": sid(k), "name": name, "startTimeUnixNano": str(T0 + start * 10**6),
             "endTimeUnixNano": str(T0 + end * 10**6), "attributes": [_attr(a, v) for a, v in attrs.items()],
             "status": {"code": 1}}
        if parent:
            s["parentSpanId"] = sid(parent)
        return s

    def llm(k: int, parent: int, start: int, end: int, asked: str, said: str) -> dict:
        return span(k, parent, "response", {
            "openinference.span.kind": "LLM", "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": asked, "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": said}, start, end)

    return [
        span(1, None, "triage_agent", {"openinference.span.kind": "AGENT", "agent.name": "triage_agent"}, 0, 1000),
        span(2, 1, "turn", {"openinference.span.kind": "CHAIN"}, 10, 400),
        llm(3, 2, 20, 300, f"Refund order {n} for alice, it arrived broken.", "transfer_to_refund_agent()"),
        span(4, 1, "refund_agent", {"openinference.span.kind": "AGENT", "agent.name": "refund_agent"}, 410, 990),
        span(5, 4, "turn", {"openinference.span.kind": "CHAIN"}, 420, 980),
        llm(6, 5, 430, 700, f"Refund order {n} for alice, it arrived broken.", f"issue_refund(order-{n})"),
        span(7, 5, "issue_refund", {"openinference.span.kind": "TOOL", "tool.name": "issue_refund",
                                    "input.value": f'{{"order": {n}}}', "output.value": '{"ok": true}'}, 710, 720),
        llm(8, 5, 730, 970, f"Refund order {n} for alice, it arrived broken.", f"Done. Refunded order {n}."),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--traces", type=int, default=1000)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    spans = [s for n in range(args.traces) for s in trace_spans(n)]
    lines = [json.dumps({"resourceSpans": [{"resource": {"attributes": [_attr("service.name", "bench")]},
                                            "scopeSpans": [{"spans": spans[k:k + 120]}]}]}).encode()
             for k in range(0, len(spans), 120)]

    def stored() -> float:
        conn = connect(":memory:")
        c0 = time.process_time()
        for line in lines:
            apply_batch(conn, None, otlp.decode_line(line), [])
        return time.process_time() - c0

    def bare() -> float:
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE spans (payload TEXT)")
        c0 = time.process_time()
        for line in lines:
            doc = json.loads(line)
            with conn:
                conn.executemany("INSERT INTO spans VALUES (?)",
                                 [(json.dumps(s),) for s in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]])
        return time.process_time() - c0

    before = os.getloadavg()
    runs = [(stored(), bare()) for _ in range(args.runs)]
    after = os.getloadavg()
    s, b = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    print(f"{len(spans)} spans in {len(lines)} lines; median of {args.runs} runs; load average "
          f"before {before[0]:.2f} {before[1]:.2f}, after {after[0]:.2f} {after[1]:.2f}")
    print(f"stored (OTLP JSON lines, serial)  {s:6.3f} s CPU  {len(spans) / s:8,.0f} spans/s")
    print(f"bare json.loads + executemany     {b:6.3f} s CPU  {len(spans) / b:8,.0f} spans/s  (x{s / b:.1f} of bare)")


if __name__ == "__main__":
    main()
