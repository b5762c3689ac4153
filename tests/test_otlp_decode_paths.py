"""The fast paths of span decoding and claiming give what the general paths give.

``_pb_attributes`` reads a non-empty string without asking the AnyValue which
value it holds; ``_claim`` writes a model step's part line inline instead of
through ``_part_line``. Hostile attribute values and hostile ids, parts, step
numbers and senders must come out exactly as the general code makes them.
"""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path
import tempfile

from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentdeck.store import otlp
from agentdeck.store.db import connect
from agentdeck.store.txn import atomic

TRACE, SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"

_char = st.characters(exclude_categories=["Cs"])
_text = st.text(_char, max_size=20)
# Around the 64 KiB cut (in UTF-8 bytes: 1 to 4 a character).
_long = st.builds(lambda c, n: c * n, _char, st.sampled_from([16_384, 16_385, 21_846, 32_768, 65_536, 65_537, 70_000]))
_scalar = st.one_of(
    st.builds(lambda s: {"stringValue": s}, _text | st.just("") | _long),
    st.builds(lambda i: {"intValue": str(i)}, st.integers(-2**63, 2**63 - 1)),
    st.builds(lambda b: {"boolValue": b}, st.booleans()),
    st.builds(lambda d: {"doubleValue": d}, st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(lambda b: {"bytesValue": base64.b64encode(b).decode()}, st.binary(max_size=12)),
    st.just({}),
)
_value = st.recursive(_scalar, lambda inner: st.one_of(
    st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(inner, max_size=3)),
    st.builds(lambda kvs: {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in kvs]}},
              st.lists(st.tuples(_text, inner), max_size=3)),
), max_leaves=12)
_attributes = st.lists(st.tuples(_text | st.builds(lambda c, n: c * n, _char, st.integers(250, 260)), _value), max_size=6)


def _request(attributes: list) -> dict:
    kvs = [{"key": k, "value": v} for k, v in attributes]
    return {"resourceSpans": [{"resource": {"attributes": kvs}, "scopeSpans": [{"spans": [{
        "traceId": TRACE, "spanId": SPAN, "name": "chat", "startTimeUnixNano": "1795600000000000000",
        "endTimeUnixNano": "1795600001000000000", "attributes": kvs, "status": {"code": 1},
        "events": [{"name": "e", "timeUnixNano": "1795600000500000000", "attributes": kvs}]}]}]}]}


def _protobuf(doc: dict) -> bytes:
    pb = {**doc, "resourceSpans": [{**rs, "scopeSpans": [{"spans": [
        {**s, "traceId": base64.b64encode(bytes.fromhex(s["traceId"])).decode(),
         "spanId": base64.b64encode(bytes.fromhex(s["spanId"])).decode()} for s in ss["spans"]]}
        for ss in rs["scopeSpans"]]} for rs in doc["resourceSpans"]]}
    return json_format.ParseDict(pb, ExportTraceServiceRequest()).SerializeToString()


def _decoded(read) -> tuple:
    try:
        spans = read()
    except otlp.OtlpError:
        return ("refused",)
    return tuple((s.attributes, s.resource, [e.attributes for e in s.events]) for s in spans)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(attributes=_attributes)
def test_protobuf_attributes_are_read_as_the_same_request_in_json(attributes):
    """Empty strings, long ones (cut), every scalar, nesting, empty values and bad keys: a
    protobuf body decodes to the attributes its JSON form does (or both are refused)."""
    doc = _request(attributes)
    from_json = _decoded(lambda: otlp.spans_from_json(doc))
    from_pb = _decoded(lambda: otlp.spans_from_protobuf(_protobuf(doc)))
    assert from_pb == from_json


_id = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=10)
_number = st.none() | st.integers(-2**63, 2**63 - 1) | st.booleans()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(st.tuples(st.sampled_from(["t1", "t2"]), _id, _id, st.none() | _id,
                                st.none() | st.tuples(_number, _number)),
                      min_size=1, max_size=12, unique_by=lambda p: p[:3]))
def test_claimed_parts_read_back_as_they_were_whatever_ids_steps_and_senders_hold(parts):
    """Spaces, tabs and newlines in ids and parts, odd step numbers, senders: the compact row
    of a new trace gives back each part, its sender and its step as claimed, and a second
    batch of the same parts is refused as already stored."""
    items = [otlp.SpanItem(None, "", (trace, span, part), {"step": step} if step is not None else None, source)
             for trace, span, part, source, step in parts]
    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "s.db")
        with atomic(conn):
            assert otlp.claim(conn, items) is None
        assert _claimed(conn) == sorted(
            ((trace, span, part, source, *(step or (None, None))) for trace, span, part, source, step in parts),
            key=repr)
        with atomic(conn):
            assert otlp.claim(conn, items) == []  # every part is stored: nothing to write
        conn.close()


def _claimed(conn: sqlite3.Connection) -> list[tuple]:
    rows = [tuple(r) for r in conn.execute("SELECT trace_id, span_id, part, source, step_seq, bare FROM otlp_spans")]
    for trace, text in conn.execute("SELECT trace_id, parts FROM otlp_claims"):
        rows.extend(otlp._part_rows(trace, text))
    return sorted(rows, key=repr)
