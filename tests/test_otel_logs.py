"""Model messages sent as OpenTelemetry log records (opentelemetry-instrumentation-openai-v2 2.3b0,
captured in tests/fixtures/otel/openai-v2/) show on their span's step and as the task's request
and answer, whether the logs come before, with or after their spans, over HTTP or in a file,
once each across retries and restarts."""

from __future__ import annotations

import json
import struct
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from agentdeck.store import otlp, otlp_logs
from agentdeck.store.db import connect
from agentdeck.store.ingest import apply_batch
from agentdeck.store.otlp_receiver import Receiver
from agentdeck.store.tailer import Tailer
from otel_fixtures import fixture, log_fixture, requests, steps, tasks

QUESTION = "Why was invoice 88 charged twice?"
TOOL_CALL = '→ lookup_invoice({"invoice_id": "order-1042"})'
ANSWER = 'Done. {"invoice": 88, "charges": 2}'


def trace_bodies() -> list[bytes]:
    return requests(fixture("openai-v2"))


def log_bodies() -> list[bytes]:
    return requests(log_fixture("openai-v2"))


def check(conn) -> None:
    first, second, failed = tasks(conn)
    assert (first["agent"], first["request"]) == ("billing-api", QUESTION)
    assert (second["agent"], second["request"]) == ("billing-api", QUESTION)
    assert failed["request"] == "RATE_LIMIT hi"
    assert {t["agent_stand_in"] for t in (first, second, failed)} == {1}  # no span names an agent
    s1, s2 = steps(conn, first["task_id"]), steps(conn, second["task_id"])
    model1 = [p for k, p in s1 if k == "reasoning"]
    model2 = [p for k, p in s2 if k == "reasoning"]
    assert [m["summary"] for m in model1] == [TOOL_CALL]  # the model asked for the tool
    assert [m["summary"] for m in model2] == [ANSWER]
    assert s1[0][1]["request"] == QUESTION and s1[-1][1]["summary"] == TOOL_CALL  # task_start, task_end
    assert s2[-1][1]["summary"] == ANSWER
    assert steps(conn, failed["task_id"])[-1][1]["summary"].startswith("RateLimitError: Error code: 429")
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 9  # nothing doubled


def ingest(conn, bodies: list[tuple[str, bytes]]) -> None:
    for signal, body in bodies:
        items = otlp.decode_protobuf(body) if signal == "traces" else otlp_logs.decode_protobuf(body)
        apply_batch(conn, None, items, [])


@pytest.mark.parametrize("order", ["logs first", "spans first", "interleaved twice"])
def test_log_messages_attach_to_their_spans_in_any_order(tmp_path, order):
    traces = [("traces", b) for b in trace_bodies()]
    logs = [("logs", b) for b in log_bodies()]
    conn = connect(tmp_path / "s.db")
    if order == "logs first":
        ingest(conn, logs + traces)
    elif order == "spans first":
        ingest(conn, traces + logs)
    else:
        ingest(conn, logs + traces + logs + traces)  # a retry of each: stored once
    check(conn)


def test_logs_after_spans_across_a_restart(tmp_path):
    db = tmp_path / "s.db"
    conn = connect(db)
    ingest(conn, [("traces", b) for b in trace_bodies()])
    first = tasks(conn)[0]
    assert first["request"] == ""  # no content on openai-v2's spans
    assert [p["summary"] for k, p in steps(conn, first["task_id"]) if k == "reasoning"] == ["chat gpt-4o-mini"]
    conn.close()
    conn = connect(db)  # a new process
    ingest(conn, [("logs", b) for b in log_bodies()])
    ingest(conn, [("logs", b) for b in log_bodies()])  # sent again
    check(conn)


def _collector_line(body: bytes, signal: str) -> bytes:
    cls = ExportLogsServiceRequest if signal == "logs" else None
    if cls is None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest as cls
    doc = json_format.MessageToDict(cls.FromString(body))
    # The Collector's file exporter writes ids in hex, as OTLP/JSON requires.
    for resource in doc.get("resourceLogs", doc.get("resourceSpans", [])):
        for scope in resource.get("scopeLogs", resource.get("scopeSpans", [])):
            for rec in scope.get("logRecords", scope.get("spans", [])):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in rec:
                        import base64

                        rec[key] = base64.b64decode(rec[key]).hex()
    return json.dumps(doc, separators=(",", ":")).encode()


def test_collector_file_with_logs_and_traces(tmp_path):
    folder = tmp_path / "otel"
    folder.mkdir()
    lines = [_collector_line(b, "logs") for b in log_bodies()] + [_collector_line(b, "traces") for b in trace_bodies()]
    lines.append(b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"app started"}}]}]}]}')
    (folder / "otel.json").write_bytes(b"\n".join(lines) + b"\n")
    conn = connect(tmp_path / "s.db")
    stats = Tailer(conn, [folder], post_commit=[]).poll()
    assert stats.rejects == 0
    check(conn)


def test_receiver_takes_logs_at_v1_logs(tmp_path):
    db = tmp_path / "s.db"
    with Receiver(db, "127.0.0.1", 0, post_commit=[]) as receiver:
        base = receiver.endpoint.rsplit("/v1/traces", 1)[0]
        with httpx.Client(timeout=10) as http:
            for body in log_bodies():  # before their spans
                r = http.post(base + "/v1/logs", content=body, headers={"Content-Type": "application/x-protobuf"})
                assert r.status_code == 200, r.text
            for body in trace_bodies():
                r = http.post(base + "/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})
                assert r.status_code == 200, r.text
            line = _collector_line(log_bodies()[0], "logs")  # again, as JSON: the same records
            r = http.post(base + "/v1/logs", content=line, headers={"Content-Type": "application/json"})
            assert r.status_code == 200, r.text
            bad = http.post(base + "/v1/logs", content=b'{"resourceLogs": 5}', headers={"Content-Type": "application/json"})
            assert bad.status_code == 400 and "resourceLogs" in bad.json()["message"]
        assert receiver.stats.log_records > 0 and receiver.stats.spans == 3
    check(connect(db))


# -- hostile log records ------------------------------------------------------

_any = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_value = st.recursive(
    st.builds(lambda s: {"stringValue": s}, st.text(max_size=40)) | st.builds(lambda i: {"intValue": i}, _any)
    | st.just({}) | _any,
    lambda inner: st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(inner, max_size=3))
    | st.builds(lambda kv: {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in kv.items()]}},
                st.dictionaries(st.sampled_from(["content", "message", "role", "tool_calls", "function"]), inner,
                                max_size=3)),
    max_leaves=12,
)
_record = st.fixed_dictionaries({}, optional={
    "traceId": st.sampled_from(["0af7651916cd43dd8448eb211c80319c", "", "zz", "00000000000000000000000000000000"]) | _any,
    "spanId": st.sampled_from(["b7ad6b7169203331", "AAAAAAAAAAA=", ""]) | _any,
    "eventName": st.sampled_from(sorted(otlp_logs.MESSAGE_EVENTS) + ["app.log"]) | _any,
    "timeUnixNano": st.sampled_from(["1796003323403788605", "-1", "x"]) | _any,
    "observedTimeUnixNano": _any,
    "body": _value,
    "attributes": st.lists(st.fixed_dictionaries({"key": st.text(max_size=10) | _any, "value": _value}), max_size=3)
    | _any,
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(_record, max_size=4), shape=st.sampled_from(["ok", "records not a list", "scope not a dict"]))
def test_hostile_log_lines_are_rejected_with_a_reason_or_taken(tmp_path_factory, records, shape):
    """Any JSON a logs line may hold: a clear error or items, never a crash; the good records of
    a line are kept beside refused ones; whatever is taken ingests without error."""
    scope = {"logRecords": records if shape != "records not a list" else {"r": records}}
    doc = {"resourceLogs": [{"scopeLogs": [scope if shape != "scope not a dict" else [scope]]}]}
    raw = json.dumps(doc).encode()
    try:
        items = otlp_logs.decode_line(raw)
    except otlp.OtlpError as exc:
        assert str(exc)
        return
    assert len(items) + items.ignored + len(items.rejected) == (len(records) if shape == "ok" else 0)
    for item in items:
        assert item[0] is None and not item[1]
        assert item.meta.get("req") or item.meta.get("ans")
    conn = connect(tmp_path_factory.mktemp("h") / "s.db")
    apply_batch(conn, None, items, [])
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def _stored(conn) -> tuple[list, list]:
    events = [tuple(r) for r in conn.execute("SELECT task_id, seq, kind, payload FROM events ORDER BY 1, 2, 3, 4")]
    rows = [tuple(r) for r in conn.execute("SELECT task_id, agent, request, outcome, tokens, events FROM tasks "
                                           "ORDER BY task_id")]
    return events, rows


_REFERENCE: dict = {}


def _reference(tmp_path_factory) -> Any:
    """What spans and logs store in one go (made once a session)."""
    if "ref" not in _REFERENCE:
        conn = connect(tmp_path_factory.mktemp("ref") / "s.db")
        ingest(conn, [("logs", b) for b in log_bodies()] + [("traces", b) for b in trace_bodies()])
        _REFERENCE["ref"] = _stored(conn)
    return _REFERENCE["ref"]


def _shuffled_parts(seed: int, resend: bool) -> tuple[list, Any]:
    """Every request split in single records/spans, so their order really varies; shuffled, some sent twice."""
    import random

    parts = [("traces", otlp_request(s)) for b in trace_bodies() for s in otlp.spans_from_protobuf(b)]
    parts += [("logs", b) for b in _single_record_bodies()]
    rng = random.Random(seed)
    rng.shuffle(parts)
    if resend:
        parts += rng.sample(parts, len(parts) // 2)
    return parts, rng


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), resend=st.booleans(), restart=st.booleans())
def test_any_order_of_span_and_log_requests_stores_the_same(tmp_path_factory, seed, resend, restart):
    """Trace and log requests in any order, some sent twice, with a restart in the middle:
    the same events and task rows as spans and logs in one go."""
    reference = _reference(tmp_path_factory)
    parts, rng = _shuffled_parts(seed, resend)
    db = tmp_path_factory.mktemp("s") / "s.db"
    conn = connect(db)
    half = len(parts) // 2
    ingest(conn, parts[:half])
    if restart:
        conn.close()
        conn = connect(db)
    ingest(conn, parts[half:])
    assert _stored(conn) == reference


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), resend=st.booleans())
def test_span_and_log_requests_committed_together_store_the_same(tmp_path_factory, seed, resend):
    """The receiver commits the requests that queue while another is written in one transaction
    (store/otlp_receiver.py ``_write``): trace and log requests of any order, grouped any way
    (up to its 8 bodies at once), some sent twice, store what they store one at a time."""
    reference = _reference(tmp_path_factory)
    parts, rng = _shuffled_parts(seed, resend)
    conn = connect(tmp_path_factory.mktemp("s") / "s.db")
    while parts:
        n = rng.randint(1, 8)
        group, parts = parts[:n], parts[n:]
        items = [item for signal, body in group for item in
                 (otlp.decode_protobuf(body) if signal == "traces" else otlp_logs.decode_protobuf(body))]
        apply_batch(conn, None, items, [])
    assert _stored(conn) == reference


def otlp_request(span) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    for body in trace_bodies():
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    if s.span_id.hex() == span.span_id:
                        out = ExportTraceServiceRequest()
                        r = out.resource_spans.add()
                        r.resource.CopyFrom(rs.resource)
                        sc = r.scope_spans.add()
                        sc.scope.CopyFrom(ss.scope)
                        sc.spans.add().CopyFrom(s)
                        return out.SerializeToString()
    raise AssertionError(span.span_id)


def _single_record_bodies() -> list[bytes]:
    out = []
    for body in log_bodies():
        req = ExportLogsServiceRequest.FromString(body)
        for rl in req.resource_logs:
            for sl in rl.scope_logs:
                for rec in sl.log_records:
                    one = ExportLogsServiceRequest()
                    r = one.resource_logs.add()
                    r.resource.CopyFrom(rl.resource)
                    sc = r.scope_logs.add()
                    sc.scope.CopyFrom(sl.scope)
                    sc.log_records.add().CopyFrom(rec)
                    out.append(one.SerializeToString())
    return out


def test_parse_processes_attach_logs_as_the_serial_path_does(tmp_path):
    """A backlog with logs lines, read by `agentdeck ingest`'s parse processes: the same store."""
    from agentdeck.store.parallel import ParsePool

    lines = [_collector_line(b, "logs") for b in log_bodies()] + [_collector_line(b, "traces") for b in trace_bodies()]
    filler = [json.dumps({"v": 1, "kind": "plan", "ts": "2026-11-24T09:00:00Z", "task_id": f"n{i}", "seq": 0,
                          "summary": "x" * 200}).encode() for i in range(400)]
    folder = tmp_path / "otel"
    folder.mkdir()
    (folder / "otel.json").write_bytes(b"\n".join(filler + lines + filler[:50]) + b"\n")
    pool = ParsePool(2)
    try:
        serial = connect(tmp_path / "serial.db")
        Tailer(serial, [folder], post_commit=[], batch_bytes=8 * 1024).poll()
        parallel = connect(tmp_path / "parallel.db")
        Tailer(parallel, [folder], post_commit=[], batch_bytes=8 * 1024, parse_pool=pool).poll()
    finally:
        pool.close()
    assert _stored(serial) == _stored(parallel)
    otel = [r for r in _stored(parallel)[1] if r[0].startswith("otel-")]
    assert sorted(r[2] for r in otel) == sorted([QUESTION, QUESTION, "RATE_LIMIT hi"])


def test_a_source_limited_to_some_agents_cannot_attach_logs_to_another_agents_task(tmp_path):
    from agentdeck.store.otlp_auth import parse_tokens
    from otel_fixtures import spans as fixture_spans

    db = tmp_path / "s.db"
    conn = connect(db)
    agents_spans = fixture_spans("openai-agents-otel")
    apply_batch(conn, None, otlp.to_events(agents_spans), [])
    chat = next(s for s in agents_spans if s.name.startswith("chat") or
                otlp.span_class(s.attributes) == "model")
    record = {"traceId": chat.trace_id, "spanId": chat.span_id, "eventName": "gen_ai.choice",
              "observedTimeUnixNano": str(chat.end_ns),
              "body": {"kvlistValue": {"values": [{"key": "message", "value": {"kvlistValue": {"values": [
                  {"key": "role", "value": {"stringValue": "assistant"}},
                  {"key": "content", "value": {"stringValue": "[red]injected[/red]"}}]}}}]}}}
    body = json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}).encode()
    other, triage = parse_tokens("other " + "o" * 20 + " agents=billing-bot\n"
                                 "triage " + "t" * 20 + " agents=triage_agent\n")
    with Receiver(db, "127.0.0.1", 0, post_commit=[]) as receiver:
        accepted, bad = receiver.ingest(body, "application/json", source=other, logs=True)
        assert accepted == 0 and "triage_agent" in bad[0].reason
        accepted, bad = receiver.ingest(body, "application/json", source=triage, logs=True)
        assert accepted == 1 and not bad
    summaries = [p["summary"] for k, p in steps(connect(db), otlp.task_id(chat.trace_id)) if k == "reasoning"]
    assert "[red]injected[/red]" not in " ".join(summaries)  # that model step had its answer: nothing replaced


def _proto_record(message) -> bytes:
    """One message as the Collector's file exporter writes it with ``format: proto``: its length as a
    4-byte big-endian integer, then the bytes (collector-contrib fileexporter exportMessageAsBuffer)."""
    body = message.SerializeToString()
    return struct.pack(">I", len(body)) + body


def _collector_proto_file() -> bytes:
    """Traces, logs and metrics pipelines writing to one ``format: proto`` file, as the marshalers
    write them (TracesData / LogsData / MetricsData), logs first as openai-v2 emits them."""
    from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
    from opentelemetry.proto.metrics.v1.metrics_pb2 import MetricsData
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    app_log = LogsData()
    rec = app_log.resource_logs.add().scope_logs.add().log_records.add()
    rec.time_unix_nano, rec.severity_number = 1_795_600_000_000_000_000, 9
    rec.body.string_value = "app started"
    metrics = MetricsData()
    metric = metrics.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "gen_ai.client.token.usage"
    metric.sum.data_points.add().as_int = 42
    return b"".join([*(_proto_record(LogsData.FromString(b)) for b in log_bodies()), _proto_record(app_log),
                     _proto_record(metrics), *(_proto_record(TracesData.FromString(b)) for b in trace_bodies())])


def test_collector_proto_file_with_logs_traces_and_metrics(tmp_path):
    from agentdeck.store import otlp_files

    folder = tmp_path / "otel"
    folder.mkdir()
    data = _collector_proto_file()
    path = folder / "otel.binpb"
    path.write_bytes(data[:-7])  # the Collector is mid-write: the last record waits
    db = tmp_path / "s.db"
    conn = connect(db)
    skipped = dict(otlp_files.skipped)
    assert Tailer(conn, [folder], post_commit=[]).poll().rejects == 0
    # The logs are in, kept for spans still to come (the traces record is not complete yet).
    assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0
    kept = conn.execute("SELECT count(*) FROM otlp_logs").fetchone()[0]
    assert kept > 0
    conn.close()
    path.write_bytes(data)
    conn = connect(db)  # a new process: what was read is not read again
    stats = Tailer(conn, [folder], post_commit=[]).poll()
    assert stats.rejects == 0
    check(conn)  # the log records' messages are on their spans' steps; 9 events, nothing doubled
    assert otlp_files.skipped["logs"] - skipped.get("logs", 0) == 1  # the application log
    assert otlp_files.skipped["metrics"] - skipped.get("metrics", 0) == 1
    # The same records in another file (a copy, another exporter): each is stored once.
    (folder / "copy.binpb").write_bytes(data)
    assert Tailer(conn, [folder], post_commit=[]).poll().rejects == 0
    check(conn)
    assert conn.execute("SELECT count(*) FROM otlp_logs").fetchone()[0] == kept


def test_proto_records_of_each_signal_are_told_apart():
    from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    from agentdeck.store.otlp_files import record_signal

    assert {record_signal(LogsData.FromString(b).SerializeToString()) for b in log_bodies()} == {"logs"}
    assert {record_signal(TracesData.FromString(b).SerializeToString()) for b in trace_bodies()} == {"traces"}
    # Not protobuf, or empty: read as traces, which rejects it with the reason (or finds nothing).
    assert record_signal(b"\xff\xff\xff") == "traces" and record_signal(b"") == "traces"


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_as_a_proto_record_are_read_or_refused_never_a_crash(data):
    from agentdeck.store.otlp_files import decode_record

    try:
        decode_record(data)
    except otlp.OtlpError:
        pass
