"""OpenTelemetry spans from the real Python SDK reach the store the same way
over OTLP/HTTP (the receiver) and through a file in the Collector's file
exporter format (the tailer), exactly once, and show up in the console."""

from __future__ import annotations

from conftest import HTTP

import asyncio
import base64
import gzip
import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from agentdeck.console.widgets.task_table import TaskTable
from agentdeck.store import otlp
from agentdeck.store.db import connect
from agentdeck.store.otlp_receiver import Receiver
from agentdeck.store.tailer import Tailer


def run_agent(provider: TracerProvider) -> None:
    """What an instrumented agent emits: GenAI spans, OpenInference spans and agentdeck span events."""
    tracer = provider.get_tracer("refund-service")
    with tracer.start_as_current_span("invoke_agent refund-agent", kind=SpanKind.INTERNAL, attributes={
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "refund-agent",
        "gen_ai.agent.id": "agt-7",
        "gen_ai.request.model": "gpt-4.1",
        "gen_ai.conversation.id": "conv-42",
        "gen_ai.usage.input_tokens": 900,
        "gen_ai.usage.output_tokens": 120,
        "agentdeck.agent_version": "v2",
        "agentdeck.agent_version.prompt": "p9",
        "agentdeck.cohort": "canary",
        "agentdeck.stage": "assisted",
        "agentdeck.request": "Refund order 1042 for alice",
    }) as agent:
        with tracer.start_as_current_span("chat gpt-4.1", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4.1",
            "gen_ai.usage.input_tokens": 500, "gen_ai.usage.output_tokens": 60,
        }):
            pass
        with tracer.start_as_current_span("execute_tool lookup_order", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order",
            "gen_ai.tool.call.id": "call-1", "gen_ai.tool.call.arguments": '{"order": 1042}',
            "gen_ai.tool.call.result": '{"amount": 80.5, "customer": "alice"}',
        }):
            pass
        with tracer.start_as_current_span("execute_tool charge_card", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "charge_card",
            "gen_ai.tool.call.id": "call-2",
        }) as failing:
            failing.set_status(Status(StatusCode.ERROR, "card processor timed out"))
        with tracer.start_as_current_span("refund-policy", attributes={
            "openinference.span.kind": "GUARDRAIL", "agentdeck.policy_id": "refund-limit",
            "agentdeck.policy_version": "2026.11", "agentdeck.verdict": "allow",
        }):
            pass
        agent.add_event("agentdeck.action", {
            "agentdeck.action_id": "act-1", "agentdeck.system": "payments", "agentdeck.operation": "refund",
            "agentdeck.amount": 80.5, "agentdeck.before": '{"refunded": false}', "agentdeck.after": '{"refunded": true}',
            "agentdeck.compensation": json.dumps({"type": "handler", "handler": "reverse_refund",
                                                  "args": {"order": 1042}, "idempotency_key": "rev-1042"}),
        })


def provider_with(*exporters) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "refund-service"}))
    for exporter in exporters:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def file_exporter_line(spans) -> str:
    """One line as the Collector's file exporter writes it: lowerCamelCase keys, hex ids."""
    doc = json.loads(json_format.MessageToJson(encode_spans(spans), indent=None))
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(doc, separators=(",", ":"))


def stored(db: Path) -> list[tuple]:
    conn = connect(db)
    try:
        return [tuple(r) for r in conn.execute("SELECT task_id, seq, kind, payload FROM events ORDER BY task_id, seq, kind, payload")]
    finally:
        conn.close()


def task_row(db: Path) -> dict:
    conn = connect(db)
    try:
        rows = conn.execute("SELECT * FROM tasks").fetchall()
        assert len(rows) == 1
        return dict(rows[0])
    finally:
        conn.close()


@pytest.fixture
def receiver(tmp_path):
    with Receiver(tmp_path / "received.db", "127.0.0.1", 0) as r:
        yield r


@pytest.fixture
def spans_both_ways(receiver, tmp_path):
    """Run the agent once, exporting to the receiver (one request a span, gzip) and to memory."""
    memory = InMemorySpanExporter()
    http = OTLPSpanExporter(endpoint=receiver.endpoint, compression=Compression.Gzip, timeout=10)
    provider = provider_with(http, memory)
    run_agent(provider)
    provider.shutdown()
    return memory.get_finished_spans()


def test_sdk_spans_over_http_and_from_a_file_become_the_same_task(receiver, spans_both_ways, tmp_path):
    spans = spans_both_ways
    assert receiver.stats.requests == len(spans) == 5  # the SDK posted each span on its own, root last
    # The file holds the same spans in another grouping and order: root first, then the rest in one line.
    traces = tmp_path / "traces"
    traces.mkdir()
    root = [s for s in spans if s.parent is None]
    rest = [s for s in spans if s.parent is not None]
    (traces / "otel.json").write_text(file_exporter_line(root) + "\n" + file_exporter_line(rest[::-1]) + "\n")
    file_db = tmp_path / "file.db"
    conn = connect(file_db)
    Tailer(conn, [traces], post_commit=[]).poll()
    assert conn.execute("SELECT count(*) FROM rejects").fetchone()[0] == 0
    conn.close()

    over_http = stored(receiver.db_path)
    assert over_http == stored(file_db)

    task_id = otlp.task_id(format(root[0].context.trace_id, "032x"))
    kinds = [kind for t, _seq, kind, _p in over_http]
    assert {t for t, *_ in over_http} == {task_id}
    assert sorted(kinds) == sorted(["task_start", "reasoning", "tool_call", "tool_result", "tool_call",
                                    "tool_result", "policy_check", "action", "task_end"])
    by_seq = [kind for _t, _s, kind, _p in sorted(over_http, key=lambda r: r[1])]
    assert by_seq[0] == "task_start" and by_seq[-1] == "task_end"

    task = task_row(receiver.db_path)
    # Same summary row, except what the tasks upsert takes from the latest batch to arrive.
    arrival = {"updated_at": task["updated_at"], "last_tool": task["last_tool"]}
    assert task == {**task_row(file_db), **arrival}
    assert (task["agent"], task["version"], task["cohort"], task["stage"]) == ("refund-agent", "v2", "canary", "assisted")
    assert task["request_id"] == "conv-42" and task["request"] == "Refund order 1042 for alice"
    assert task["tool_calls"] == 2 and task["tool_errors"] == 1 and task["actions"] == 1
    assert task["outcome"] == "success" and task["tokens"] == 1020
    assert task["latency_ms"] == pytest.approx((root[0].end_time - root[0].start_time) / 1e6)

    payloads = {kind: json.loads(p) for _t, _s, kind, p in over_http if kind in ("task_start", "action", "reasoning")}
    assert payloads["task_start"]["agent_version"] == {"id": "v2", "prompt": "p9", "model": "gpt-4.1"}
    assert payloads["reasoning"]["tokens_in"] == 500 and payloads["reasoning"]["model"] == "gpt-4.1"
    assert payloads["action"]["after"] == {"refunded": True}
    assert payloads["action"]["compensation"]["idempotency_key"] == "rev-1042"
    results = [json.loads(p) for _t, _s, kind, p in over_http if kind == "tool_result"]
    assert {(r["tool"], r["status"]) for r in results} == {("lookup_order", "ok"), ("charge_card", "error")}
    assert next(r for r in results if r["tool"] == "lookup_order")["output"] == {"amount": 80.5, "customer": "alice"}
    conn = connect(receiver.db_path)
    assert conn.execute("SELECT compensation FROM actions WHERE action_id = 'act-1'").fetchone()[0]


def test_retries_and_re_exports_are_stored_once(receiver, spans_both_ways, tmp_path):
    spans = spans_both_ways
    before = stored(receiver.db_path)
    # A client retrying the whole batch (it never saw the 200), once as protobuf and once as JSON.
    body = encode_spans(spans).SerializeToString()
    for _ in range(2):
        r = HTTP.post(receiver.endpoint, content=body, headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 200 and r.content == b""
    r = HTTP.post(receiver.endpoint, content=gzip.compress(file_exporter_line(spans).encode()),
                   headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json() == {}
    # The same spans exported to a file too, twice in one file, tailed into the same store.
    traces = tmp_path / "traces"
    traces.mkdir()
    line = file_exporter_line(spans)
    (traces / "otel.jsonl").write_text(line + "\n" + line + "\n")
    conn = connect(receiver.db_path)
    Tailer(conn, [traces], post_commit=[]).poll()
    assert stored(receiver.db_path) == before
    assert task_row(receiver.db_path)["tool_calls"] == 2
    assert conn.execute("SELECT count(*) FROM rejects").fetchone()[0] == 0


def test_a_file_is_tailed_live_with_partial_lines(tmp_path):
    memory = InMemorySpanExporter()
    provider = provider_with(memory)
    run_agent(provider)
    spans = memory.get_finished_spans()
    line = (file_exporter_line(spans[:2]) + "\n").encode()
    path = tmp_path / "otel.json"
    conn = connect(tmp_path / "live.db")
    tailer = Tailer(conn, [tmp_path], post_commit=[])
    path.write_bytes(line[:100])  # the exporter has written only part of a line
    assert tailer.poll().events == 0
    with path.open("ab") as f:
        f.write(line[100:])
    first = tailer.poll().events
    # a reasoning step and one tool's call and result; until the agent span comes, the model call frames the task
    assert first == 3 + 2
    with path.open("ab") as f:
        f.write((file_exporter_line(spans[2:]) + "\n").encode())
    assert tailer.poll().events == 6  # the other tool, the guardrail, the action, the agent's start and end
    assert tailer.poll().events == 0
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 9


async def test_the_console_lists_the_received_task(receiver, spans_both_ways, make_app):
    spans = spans_both_ways
    task_id = otlp.task_id(format(spans[0].context.trace_id, "032x"))
    app = make_app(receiver.db_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        await app.settled()
        await pilot.pause()
        assert app.current_mode == "tasks"
        table = app.screen.query_one(TaskTable)
        assert task_id in table.shown.keys
        cells = [str(c) for c in table.shown.cells[task_id]]
        assert "refund-agent" in cells and "canary" in cells and "success" in cells


def test_concurrent_deliveries_of_the_same_spans_store_them_once(receiver, tmp_path):
    memory = InMemorySpanExporter()
    provider = provider_with(memory)
    run_agent(provider)
    spans = memory.get_finished_spans()
    body = encode_spans(spans).SerializeToString()
    # Two halves overlapping in the middle span, each sent by several clients at once.
    halves = [encode_spans(spans[:3]).SerializeToString(), encode_spans(spans[2:]).SerializeToString()]
    bodies = [body, *halves] * 4
    statuses: list[int] = []

    def send(b: bytes) -> None:
        r = HTTP.post(receiver.endpoint, content=b, headers={"Content-Type": "application/x-protobuf"}, timeout=30)
        statuses.append(r.status_code)

    threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * len(bodies)
    rows = stored(receiver.db_path)
    assert len(rows) == 9 and len(set(rows)) == 9
    task = task_row(receiver.db_path)
    assert (task["events"], task["tool_calls"], task["tool_errors"], task["actions"]) == (9, 2, 1, 1)


async def test_the_console_receives_spans_live_with_receive(tmp_path, make_app):
    from agentdeck.console.commands.receive import start_for_app

    db = tmp_path / "live.db"
    connect(db).close()
    app = make_app(db)
    async with app.run_test(size=(140, 40)) as pilot:
        receiver = start_for_app(app, "127.0.0.1:0")
        try:
            provider = provider_with(OTLPSpanExporter(endpoint=receiver.endpoint, timeout=10))
            await asyncio.to_thread(run_agent, provider)
            await asyncio.to_thread(provider.shutdown)
            table = app.screen.query_one(TaskTable)
            deadline = time.monotonic() + 10
            while table.row_count == 0 and time.monotonic() < deadline:
                await pilot.pause(0.05)  # the Ingested message makes the screen reload
            assert table.row_count == 1
            assert app.data_version > 0  # it came through an Ingested message
        finally:
            receiver.close()


def test_rotated_otlp_files_mixed_with_native_lines_are_read_once(tmp_path):
    memory = InMemorySpanExporter()
    provider = provider_with(memory)
    run_agent(provider)
    spans = memory.get_finished_spans()
    native = json.dumps({"v": 1, "kind": "task_start", "ts": "2026-11-24T09:00:00Z", "task_id": "native-1", "seq": 0,
                         "request_id": "r1", "agent": "a", "agent_version": {"id": "v1"}})
    path = tmp_path / "otel.jsonl"
    conn = connect(tmp_path / "store.db")
    tailer = Tailer(conn, [path], post_commit=[])
    with path.open("a") as writer:  # the exporter keeps its file open across the rotation
        writer.write(file_exporter_line(spans[:2]) + "\n" + native + "\n")
        writer.flush()
        assert tailer.poll().events == 3 + 2 + 1  # steps, the model call framing the task for now, native
        path.rename(tmp_path / "otel.jsonl.1")
        writer.write(file_exporter_line(spans[2:4]) + "\n")  # still lands in the rotated file
    path.write_text(file_exporter_line(spans[4:]) + "\n" + file_exporter_line(spans[:1]) + "\n")  # a re-export too
    tailer.poll()
    tailer.poll()
    counts = dict(conn.execute("SELECT task_id, count(*) FROM events GROUP BY task_id").fetchall())
    assert counts == {"native-1": 1, otlp.task_id(format(spans[0].context.trace_id, "032x")): 9}
    assert conn.execute("SELECT count(*) FROM rejects").fetchone()[0] == 0
