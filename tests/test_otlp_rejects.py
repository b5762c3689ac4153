"""Bad OTLP data is turned away with its reason, and nothing else is lost:
a bad line in a file is a reject row while its neighbours are ingested; a
request body that cannot be read as a whole gets a 4xx naming the problem and
a rejects row; a bad span in a good request is left out with OTLP partial
success while the rest is stored (tests/test_receiver_partial.py)."""

from __future__ import annotations

from conftest import HTTP

import gzip
import json
import socket

import httpx
import pytest

from agentdeck.store.db import connect
from agentdeck.store.otlp_receiver import Receiver
from agentdeck.store.tailer import Tailer

TRACE = "5b8efff798038103d269b633813fc60c"


def span(span_id: str, name: str = "execute_tool lookup", attributes: dict | None = None, **extra) -> dict:
    attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup", **(attributes or {})}
    return {
        "traceId": TRACE, "spanId": span_id, "parentSpanId": "eee19b7ec3c1b174", "name": name, "kind": 1,
        "startTimeUnixNano": "1795600000000000000", "endTimeUnixNano": "1795600000250000000",
        "attributes": [{"key": k, "value": {"stringValue": v} if isinstance(v, str) else {"intValue": str(v)}}
                       for k, v in attrs.items()],
        "status": {}, **extra,
    }


def line(*spans: dict) -> str:
    return json.dumps({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"scope": {"name": "t"}, "spans": list(spans)}]}]})


BAD_LINES = {
    "bad JSON": '{"resourceSpans": [{"scopeSpans": [',
    "expected a list, got an object": '{"resourceSpans": {"scopeSpans": []}}',
    "expected an integer": line(span("aaaaaaaaaaaaaaa1", startTimeUnixNano="yesterday")),
    "expected 8 bytes in hex or base64": line(span("not-an-id")),
    "unknown attribute 'agentdeck.cohrt'": line(span("aaaaaaaaaaaaaaa3", attributes={"agentdeck.cohrt": "canary"})),
    "stringValue": line({**span("aaaaaaaaaaaaaaa4"), "attributes": [{"key": "k", "value": {"stringValue": 7}}]}),
    "tool_result.status": line(span("aaaaaaaaaaaaaaa5", attributes={"agentdeck.status": "sideways"})),
}


def test_bad_lines_are_rejected_with_reasons_and_good_lines_around_them_are_kept(tmp_path):
    good = [line(span(f"000000000000000{n}")) for n in range(1, 4)]
    # A value over 64 KiB (a captured prompt) is cut, with a note, and its span kept.
    big = line(span("0000000000000008", attributes={"gen_ai.tool.call.result": "é" * 70_000}))
    # An unknown (future) OTLP field is not an error: the spec says receivers ignore it.
    future = line(span("0000000000000009", futureField={"x": 1}))
    lines = [good[0], *BAD_LINES.values(), good[1], future, big, good[2]]
    (tmp_path / "otel.jsonl").write_text("\n".join(lines) + "\n")
    conn = connect(tmp_path / "store.db")
    Tailer(conn, [tmp_path], post_commit=[]).poll()
    errors = [r[0] for r in conn.execute("SELECT error FROM rejects ORDER BY offset")]
    assert len(errors) == len(BAD_LINES)
    for expected, error in zip(BAD_LINES, errors):
        assert expected in error
    assert "spans[0] attribute 'k'" in errors[5]  # where, so it can be found
    stored = conn.execute("SELECT count(*) FROM events WHERE kind = 'tool_call'").fetchone()[0]
    assert stored == 5  # the three good spans, the one with a future field, the one with a big value
    payload = conn.execute("SELECT payload FROM events WHERE kind = 'tool_result' AND payload LIKE '%truncated%'").fetchone()[0]
    output = json.dumps(json.loads(payload)["output"], ensure_ascii=False)
    assert "é" * 1000 in output and "[truncated by agentdeck: 140000 bytes" in output
    assert len(output.encode()) < 64 * 1024 + 200


@pytest.fixture
def receiver(tmp_path):
    with Receiver(tmp_path / "store.db", "127.0.0.1", 0, max_body=300_000) as r:
        yield r


def post(receiver: Receiver, body: bytes, content_type="application/json", path="/v1/traces", **headers):
    host, port = receiver.address
    headers = {"Content-Type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return HTTP.post(f"http://{host}:{port}{path}", content=body, headers=headers)


def message(response: httpx.Response) -> str:
    """The reason in a google.rpc.Status body, in the request's encoding."""
    from google.rpc import status_pb2  # what OTLP clients decode error bodies with

    if response.headers["content-type"] == "application/x-protobuf":
        return status_pb2.Status.FromString(response.content).message
    return response.json()["message"]


def deep_json(depth: int) -> bytes:
    """A request whose one attribute value nests ``depth`` lists deep."""
    doc = line(span("0000000000000001", attributes={"x": "PLACEHOLDER"}))
    return doc.replace('{"stringValue": "PLACEHOLDER"}', "[" * depth + "]" * depth).encode()


def test_bad_request_bodies_get_a_4xx_with_the_reason_and_store_nothing(receiver):
    overflowing = line(span("0000000000000001", attributes={"gen_ai.usage.input_tokens": 2**64}))
    two_members_bad_second = gzip.compress(line(span("0000000000000001")).encode()) + b"\x1f\x8b garbage"
    cases = [
        (post(receiver, b'{"resourceSpans": ['), 400, "bad JSON"),
        (post(receiver, BAD_LINES["expected a list, got an object"].encode()), 400, "expected a list"),
        (post(receiver, gzip.compress(deep_json(100_000)), Content_Encoding="gzip"), 400, "nested too deeply"),
        (post(receiver, overflowing.encode()), 400, "out of the int64 range"),
        (post(receiver, line(span("bad")).encode()), 400, "spanId"),
        (post(receiver, b"\x0a\x05garbage", "application/x-protobuf"), 400, "bad protobuf"),
        (post(receiver, b"not gzip", Content_Encoding="gzip"), 400, "bad gzip"),
        (post(receiver, two_members_bad_second, Content_Encoding="gzip"), 400, "bad gzip body after the first member"),
        (post(receiver, line(span("0000000000000001")).encode(), "text/plain"), 415, "unsupported content type"),
        (post(receiver, b"{}", Content_Encoding="br"), 415, "unsupported content encoding"),
        (post(receiver, b"{" + b" " * 400_000 + b"}"), 413, "too large"),
        (post(receiver, gzip.compress(b"{" + b" " * 400_000 + b"}"), Content_Encoding="gzip"), 413, "too large"),
        (post(receiver, b"{}", path="/v1/metrics"), 404, "no such path"),
    ]
    for response, status, reason in cases:
        assert response.status_code == status, response.text
        assert reason in message(response)
    get = HTTP.get(receiver.endpoint)
    assert get.status_code == 405
    conn = connect(receiver.db_path)
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    rejects = conn.execute("SELECT path, error FROM rejects").fetchall()
    assert len(rejects) == 12  # every refused delivery of traces is on record (not the 404)
    assert all(r["path"].startswith("POST http://127.0.0.1:") for r in rejects)
    errors = "\n".join(r["error"] for r in rejects)
    assert "nested too deeply" in errors and "out of the int64 range" in errors
    assert receiver.stats.rejected == 12 and receiver.stats.requests == 0


def test_every_gzip_member_is_read(receiver):
    """RFC 1952 allows several members in one body (``cat a.gz b.gz``): none is ignored."""
    first = gzip.compress(line(span("0000000000000001")).encode()[:-1])
    # The JSON document split across two members: ignoring the second would be bad JSON.
    body = gzip.compress(line(span("0000000000000001")).encode()[:50]) + gzip.compress(line(span("0000000000000001")).encode()[50:])
    assert first  # (the split is what matters)
    r = post(receiver, body, Content_Encoding="gzip")
    assert r.status_code == 200, r.text
    conn = connect(receiver.db_path)
    assert conn.execute("SELECT count(*) FROM events WHERE kind = 'tool_call'").fetchone()[0] == 1


def test_a_protobuf_client_gets_its_error_as_a_protobuf_status(receiver):
    from google.rpc import status_pb2  # what OTLP clients decode error bodies with

    response = post(receiver, b"\x0a\x05garbage", "application/x-protobuf")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/x-protobuf"
    status = status_pb2.Status.FromString(response.content)
    assert status.code == 3 and "bad protobuf" in status.message


def test_the_receiver_keeps_serving_after_a_broken_connection(receiver):
    host, port = receiver.address
    with socket.create_connection((host, port)) as s:
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
    ok = post(receiver, line(span("0000000000000001")).encode())
    assert ok.status_code == 200 and ok.json() == {}


def test_a_span_whose_value_nests_too_deep_to_decode_is_refused_alone(receiver):
    """A structured attribute (an action's params, sent as JSON text) nested deeper than the JSON
    decoder's stack refuses its own span with the reason; the request's other spans are stored."""
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    action = {"timeUnixNano": "1795600000100000000", "name": "agentdeck.action", "attributes": [
        {"key": k, "value": {"stringValue": v}} for k, v in
        {"agentdeck.action_id": "act-1", "agentdeck.system": "billing", "agentdeck.operation": "refund",
         "agentdeck.params": deep}.items()]}
    answer = post(receiver, line(span("0000000000000001"), span("0000000000000002", events=[action])).encode())
    assert answer.status_code == 200, answer.text
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "0000000000000002" in partial["errorMessage"]
    conn = connect(receiver.db_path)
    try:
        assert conn.execute("SELECT count(*) FROM events WHERE kind = 'tool_call'").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM events WHERE kind = 'action'").fetchone()[0] == 0
    finally:
        conn.close()
