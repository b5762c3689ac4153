"""One bad span does not lose its request: the others are stored and the bad
ones are reported with OTLP partial success (``partial_success.rejected_spans``
and ``error_message``, in protobuf and JSON) and kept in ``rejects``."""

from __future__ import annotations

import json
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.trace.v1 import trace_pb2
from conftest import HTTP
from receiver_support import agent_spans, rejects, tasks, trace_hex

from agentdeck.store import otlp
from agentdeck.store.db import connect
from agentdeck.store.otlp_receiver import LANGFUSE_PATH, Receiver

TRACE = "5b8efff798038103d269b633813fc60c"


def span(span_id: str, attributes: dict | None = None, trace: str = TRACE, **extra) -> dict:
    attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup", **(attributes or {})}

    def value(v):
        if isinstance(v, str):
            return {"stringValue": v}
        if isinstance(v, float):
            return {"doubleValue": v}
        return {"intValue": str(v)}

    return {
        "traceId": trace, "spanId": span_id, "parentSpanId": "eee19b7ec3c1b174", "name": "execute_tool lookup",
        "startTimeUnixNano": "1795600000000000000", "endTimeUnixNano": "1795600000250000000",
        "attributes": [{"key": k, "value": value(v)} for k, v in attrs.items()], **extra,
    }


def request(*spans: dict) -> bytes:
    return json.dumps({"resourceSpans": [{"resource": {"attributes": []},
                                           "scopeSpans": [{"scope": {"name": "t"}, "spans": list(spans)}]}]}).encode()


def tool_calls(db) -> int:
    conn = connect(db)
    try:
        return conn.execute("SELECT count(*) FROM events WHERE kind = 'tool_call'").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def receiver(tmp_path):
    with Receiver(tmp_path / "store.db", "127.0.0.1", 0, post_commit=[]) as r:
        yield r


def post(receiver: Receiver, body: bytes, content_type: str = "application/json", path: str | None = None):
    url = receiver.endpoint if path is None else receiver.endpoint.replace("/v1/traces", path)
    return HTTP.post(url, content=body, headers={"Content-Type": content_type}, timeout=30)


def test_bad_spans_are_left_out_with_partial_success_in_json(receiver):
    body = request(
        span("0000000000000001"),
        span("not-a-span-id"),
        span("0000000000000002", {"agentdeck.cohrt": "canary"}),
        span("0000000000000003", {"gen_ai.usage.input_tokens": 2**64}),
        span("0000000000000004", {"gen_ai.tool.call.result": "x" * 100_000}),  # kept, truncated
    )
    r = post(receiver, body)
    assert r.status_code == 200
    partial = r.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 3  # int64 is a string in OTLP/JSON
    message = partial["errorMessage"]
    assert message.startswith("3 span(s) rejected: ")
    for reason in ("spanId", "unknown attribute 'agentdeck.cohrt'", "out of the int64 range"):
        assert reason in message
    assert tool_calls(receiver.db_path) == 2
    rows = rejects(receiver.db_path)
    assert len(rows) == 3 and all(r["error"].startswith("span refused: ") for r in rows)
    assert any("not-a-span-id" in r["raw"] for r in rows)  # the span as sent, to find and fix it
    assert receiver.stats.rejected_spans == 3 and receiver.stats.spans == 2 and receiver.stats.requests == 1


def test_a_span_whose_numbers_overflow_the_store_is_refused_alone(receiver):
    """Token counts within int64 each, but whose sum is not: the commit fails, the
    batch is split until the span at fault is found, the rest is stored."""
    good = agent_spans("refund-agent", tools=2)
    request_pb = encode_spans(good)
    scope = request_pb.resource_spans[0].scope_spans[0]
    huge = trace_pb2.Span()
    huge.CopyFrom(next(s for s in scope.spans if s.name.startswith("invoke_agent")))
    huge.trace_id = bytes.fromhex("11" * 16)
    for key in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"):
        attr = huge.attributes.add()
        attr.key = key
        attr.value.int_value = 2**63 - 1
    scope.spans.append(huge)
    # And a count given as a double too big for any integer (JSON 1e400 is infinity).
    r = post(receiver, request_pb.SerializeToString(), "application/x-protobuf")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-protobuf"
    partial = ExportTraceServiceResponse.FromString(r.content).partial_success
    # Token counts are bounded (store/events.py MAX_COUNT), so validation refuses this span before any
    # commit could fail on it; either way it is refused alone, with the reason.
    assert partial.rejected_spans == 1 and ("cannot be stored" in partial.error_message
                                            or "tokens_in: Input should be less than or equal to" in partial.error_message)
    stored = tasks(receiver.db_path)
    assert otlp.task_id(trace_hex(good)) in stored and otlp.task_id("11" * 16) not in stored
    assert stored[otlp.task_id(trace_hex(good))]["tool_calls"] == 2
    infinite = request(span("0000000000000005", {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 1.0}))
    r = post(receiver, infinite.replace(b'{"doubleValue": 1.0}', b'{"doubleValue": 1e400}'))
    assert r.status_code == 400 and "gen_ai.usage.input_tokens" in r.json()["message"]
    assert len(rejects(receiver.db_path)) == 2


def test_a_request_with_nothing_wrong_gets_an_empty_response(receiver):
    r = post(receiver, request(span("0000000000000001")))
    assert r.status_code == 200 and r.json() == {}
    r = post(receiver, encode_spans(agent_spans()).SerializeToString(), "application/x-protobuf")
    assert r.status_code == 200 and r.content == b""


def test_langfuse_default_path_is_an_alias(receiver):
    r = post(receiver, request(span("0000000000000001")), path=LANGFUSE_PATH)
    assert r.status_code == 200
    assert tool_calls(receiver.db_path) == 1
    assert post(receiver, b"{}", path="/api/public/otel/v1/logs").status_code == 404


GOOD = st.builds(lambda n: ("good", span(f"{n:016x}")), st.integers(1, 2**40))
BAD = st.sampled_from([
    ("bad", span("zz")),
    ("bad", span("0000000000000000")),  # an all-zero id
    ("bad", span("00000000000000aa", startTimeUnixNano="soon")),
    ("bad", span("00000000000000ab", {"agentdeck.nope": "x"})),
    ("bad", span("00000000000000ac", {"agentdeck.status": "sideways"})),
    ("bad", span("00000000000000ad", {"gen_ai.usage.input_tokens": -(2**70)})),
    ("bad", {**span("00000000000000ae"), "attributes": [{"key": "", "value": {"stringValue": "x"}}]}),
    ("bad", {**span("00000000000000af"), "attributes": {"not": "a list"}}),
    ("bad", "not a span at all"),
])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(GOOD, BAD), min_size=1, max_size=12))
def test_any_mix_of_good_and_hostile_spans_keeps_every_good_one(tmp_path_factory, mix):
    good = {s["spanId"] for kind, s in mix if kind == "good"}
    bad = sum(1 for kind, _ in mix if kind == "bad")
    db = tmp_path_factory.mktemp("mix") / "store.db"
    with Receiver(db, "127.0.0.1", 0, post_commit=[]) as receiver:
        r = post(receiver, request(*(s for _, s in mix)))
        if good:
            assert r.status_code == 200, r.text
            body = r.json()
            assert int(body.get("partialSuccess", {}).get("rejectedSpans", 0)) == bad
        else:
            assert r.status_code == 400, r.text
        assert tool_calls(db) == len(good)
        assert len(rejects(db)) == bad


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    with Receiver(tmp_path_factory.mktemp("hostile") / "store.db", "127.0.0.1", 0, post_commit=[],
                  max_body=200_000) as r:
        yield r


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
SPAN_FIELDS = st.sampled_from(["traceId", "spanId", "parentSpanId", "name", "startTimeUnixNano", "endTimeUnixNano",
                               "attributes", "events", "status", "kind", "links"])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=SPAN_FIELDS, value=JSON_VALUES, raw=st.binary(max_size=300),
       as_protobuf=st.booleans(), gzipped=st.booleans())
def test_hostile_bodies_get_a_reasoned_answer_never_a_500(shared, field, value, raw, as_protobuf, gzipped):
    import gzip

    good = span("00000000000000f1")
    hostile = {**span("00000000000000f2"), field: value}
    bodies = [(request(good, hostile), "application/json"), (raw, "application/x-protobuf" if as_protobuf else "application/json")]
    statuses = []
    for body, content_type in bodies:
        headers = {"Content-Type": content_type}
        if gzipped:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        r = HTTP.post(shared.endpoint, content=body, headers=headers, timeout=30)
        assert r.status_code in (200, 400), r.text
        if r.status_code == 400:
            assert r.json()["message"] if content_type == "application/json" else r.content
        statuses.append(r.status_code)
    # Whatever the neighbour held, the good span's request is taken (at worst partially).
    assert statuses[0] == 200


def test_the_receiver_listens_on_ipv6_loopback(tmp_path):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        receiver = Receiver(tmp_path / "store.db", "::1", 0, post_commit=[])
    except OSError as exc:
        pytest.skip(f"cannot listen on ::1: {exc}")
    with receiver:
        assert receiver.endpoint.startswith("http://[::1]:")
        r = HTTP.post(receiver.endpoint, content=request(span("0000000000000001")),
                       headers={"Content-Type": "application/json"}, timeout=10)
        assert r.status_code == 200
