"""OpenTelemetry traces as agentdeck events.

Reads OTLP trace data -- the JSON lines the Collector's file exporter writes
and OTLP/HTTP request bodies (JSON or protobuf) -- and maps each span to
native events (store/events.py) through the GenAI semantic conventions
(``gen_ai.*``), OpenInference (``openinference.span.kind``) and agentdeck's
own ``agentdeck.*`` attributes and span events. ``docs/otel.md`` describes
the mapping for users; this module is its single implementation.

Tasks and order. All spans of one trace form one task, ``otel-<trace id>``.
A span's events must get the same ``seq`` whichever line, request or file
brings it and in whatever order spans arrive, so ``seq`` is computed from
the span alone: an agent span's task_start is 0 and its task_end 9,999,999
(so they frame the task), every other event's ``seq`` is its own time in
10 ms ticks, modulo the 9,999,998 values in between. Steps are therefore in
time order within any 27-hour window; equal ticks fall back to arrival
order.

Duplicates. Each event is a ``SpanItem`` that remembers its span part
(trace id, span id, part); ``claim`` records parts inside the ingest
transaction, so a span sent twice (a client retry, the same span in a file
and over HTTP) is stored once.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, UTC
from typing import Any
from collections.abc import Iterable

from pydantic import ValidationError

from agentdeck.store import events as ev

TASK_PREFIX = "otel-"
FIRST_SEQ = 0
LAST_SEQ = 9_999_999
TICK_NS = 10_000_000
_STEP_SEQS = LAST_SEQ - 1  # steps use 1 .. 9,999,998

# One attribute value (a string, or bytes) may be at most this big: larger
# ones are rejected with the attribute's name rather than stored.
MAX_VALUE_BYTES = 64 * 1024
MAX_KEY_CHARS = 256
MAX_DEPTH = 8
MAX_TEXT = 20_000  # events.Text

MODEL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})

# Span attributes agentdeck reads (beyond gen_ai.* and OpenInference); any
# other agentdeck.* attribute is a typo and rejects the span, with its name.
SPAN_ATTRIBUTES = frozenset({
    "agentdeck.agent", "agentdeck.request_id", "agentdeck.request", "agentdeck.input",
    "agentdeck.cohort", "agentdeck.stage",
    "agentdeck.agent_version", "agentdeck.agent_version.prompt", "agentdeck.agent_version.model",
    "agentdeck.agent_version.policy", "agentdeck.agent_version.tool_schema",
    "agentdeck.outcome", "agentdeck.cost_usd", "agentdeck.summary",
    "agentdeck.status", "agentdeck.retry",
    "agentdeck.policy_id", "agentdeck.policy_version", "agentdeck.verdict", "agentdeck.reason",
    "agentdeck.subject",
})
# Span events named agentdeck.<kind> become that native event; their
# attributes agentdeck.<field> are its fields.
EVENT_KINDS = ("plan", "reasoning", "policy_check", "escalation", "decision", "action", "compensation")
# Fields holding objects or lists: a string value there is JSON-decoded.
STRUCTURED_FIELDS = frozenset({
    "steps", "proposed_action", "params", "before", "after", "response", "compensation", "input",
    "output", "body",
})


class OtlpError(ValueError):
    """Not valid OTLP trace data, or a span agentdeck cannot map; the message says which and why."""


@dataclass(slots=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(slots=True)
class Span:
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    error: bool  # status code ERROR
    status_message: str
    attributes: dict[str, Any]
    events: list[SpanEvent]
    resource: dict[str, Any]


class SpanItem(tuple):
    """An ``(event, payload_json)`` pair that remembers the span part it came from."""

    key: tuple[str, str, str]

    def __new__(cls, event, payload: str, key: tuple[str, str, str]):
        item = super().__new__(cls, (event, payload))
        item.key = key
        return item


# -- entry points ------------------------------------------------------------


def decode_line(raw: bytes) -> list[SpanItem]:
    """One line of the Collector's file exporter (an ExportTraceServiceRequest in JSON)."""
    return decode_json(raw)


def decode_json(body: bytes) -> list[SpanItem]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OtlpError(f"bad JSON: {exc}") from None
    return to_events(spans_from_json(doc))


def decode_protobuf(body: bytes) -> list[SpanItem]:
    return to_events(spans_from_protobuf(body))


def count_spans(items: Iterable[SpanItem]) -> int:
    return len({item.key[:2] for item in items})


# -- exactly once --------------------------------------------------------------


def claim(conn: sqlite3.Connection, items: list) -> list | None:
    """Record the span parts of ``items``; call inside the ingest transaction.

    Returns None when every part is new (and is now recorded). Otherwise
    records nothing and returns the items to keep: the first occurrence of
    each part not stored yet, and every item that is not from a span. The
    caller rolls back and writes those instead.
    """
    keys = [item.key for item in items if type(item) is SpanItem]
    if len(set(keys)) == len(keys):
        conn.execute("SAVEPOINT otlp_claim")
        before = conn.total_changes
        conn.executemany("INSERT OR IGNORE INTO otlp_spans (trace_id, span_id, part) VALUES (?, ?, ?)", keys)
        all_new = conn.total_changes - before == len(keys)
        conn.execute("RELEASE otlp_claim" if all_new else "ROLLBACK TO otlp_claim")
        if all_new:
            return None
        conn.execute("RELEASE otlp_claim")
    keep, seen = [], set()
    for item in items:
        if type(item) is SpanItem:
            if item.key in seen or conn.execute(
                "SELECT 1 FROM otlp_spans WHERE trace_id = ? AND span_id = ? AND part = ?", item.key
            ).fetchone():
                continue
            seen.add(item.key)
        keep.append(item)
    return keep


# -- OTLP/JSON -----------------------------------------------------------------

_MISSING = object()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


def _field(obj: dict, camel: str, snake: str) -> Any:
    # Proto3 JSON accepts both the lowerCamelCase and the original field name.
    value = obj.get(camel, _MISSING)
    if value is _MISSING:
        value = obj.get(snake)
    return value


def _obj(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OtlpError(f"{where}: expected an object, got {_json_type(value)}")
    return value


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpError(f"{where}: expected a list, got {_json_type(value)}")
    return value


def _str(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise OtlpError(f"{where}: expected a string, got {_json_type(value)}")
    return value


def _uint(value: Any, where: str, bits: int = 64) -> int:
    # int64/uint64/fixed64 are strings in OTLP/JSON; plain numbers are accepted too.
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise OtlpError(f"{where}: expected an integer, got {_json_type(value)}")
    try:
        n = int(value)
    except ValueError:
        raise OtlpError(f"{where}: expected an integer, got {value[:40]!r}") from None
    if not 0 <= n < 2**bits:
        raise OtlpError(f"{where}: {n} is out of range")
    return n


def _id(value: Any, nbytes: int, where: str) -> str:
    """An id in hex (the file exporter, OTLP/JSON) or base64 (protobuf's JSON mapping)."""
    text = _str(value, where)
    raw = None
    if len(text) == 2 * nbytes:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None or len(raw) != nbytes:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
    if len(raw) != nbytes:
        raise OtlpError(f"{where}: expected {nbytes} bytes in hex or base64, got {text[:40]!r}")
    if not any(raw):
        raise OtlpError(f"{where}: an all-zero id is invalid")
    return raw.hex()


def _check_size(text: str, where: str) -> str:
    if len(text) > MAX_VALUE_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
        raise OtlpError(f"{where}: value too large ({len(text.encode('utf-8', 'surrogatepass'))} bytes, limit {MAX_VALUE_BYTES})")
    return text


def _any_value(value: Any, where: str, depth: int = 0) -> Any:
    """An AnyValue as a plain Python value."""
    if value is None:
        return None
    v = _obj(value, where)
    if depth > MAX_DEPTH:
        raise OtlpError(f"{where}: nested more than {MAX_DEPTH} levels")
    if (s := _field(v, "stringValue", "string_value")) is not None:
        if not isinstance(s, str):
            raise OtlpError(f"{where}: stringValue must be a string, got {_json_type(s)}")
        return _check_size(s, where)
    if (b := _field(v, "boolValue", "bool_value")) is not None:
        if not isinstance(b, bool):
            raise OtlpError(f"{where}: boolValue must be true or false, got {_json_type(b)}")
        return b
    if (i := _field(v, "intValue", "int_value")) is not None:
        if isinstance(i, bool) or not isinstance(i, (int, str)):
            raise OtlpError(f"{where}: intValue must be an integer, got {_json_type(i)}")
        try:
            n = int(i)
        except ValueError:
            raise OtlpError(f"{where}: intValue must be an integer, got {i[:40]!r}") from None
        if not -(2**63) <= n < 2**63:
            raise OtlpError(f"{where}: intValue {n} is out of the int64 range")
        return n
    if (d := _field(v, "doubleValue", "double_value")) is not None:
        if isinstance(d, bool) or not isinstance(d, (int, float, str)):
            raise OtlpError(f"{where}: doubleValue must be a number, got {_json_type(d)}")
        try:
            return float(d)
        except ValueError:
            raise OtlpError(f"{where}: doubleValue must be a number, got {d[:40]!r}") from None
    if (a := _field(v, "arrayValue", "array_value")) is not None:
        values = _list(_obj(a, where).get("values"), f"{where}.arrayValue.values")
        return [_any_value(x, f"{where}[{n}]", depth + 1) for n, x in enumerate(values)]
    if (kv := _field(v, "kvlistValue", "kvlist_value")) is not None:
        return _attributes(_obj(kv, where).get("values"), where, depth + 1)
    if (by := _field(v, "bytesValue", "bytes_value")) is not None:
        text = _check_size(_str(by, where), where)
        try:
            base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise OtlpError(f"{where}: bytesValue must be base64") from None
        return text
    return None  # an empty AnyValue


def _attributes(value: Any, where: str, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, kv in enumerate(_list(value, f"{where}.attributes")):
        kv = _obj(kv, f"{where}.attributes[{n}]")
        key = _str(kv.get("key"), f"{where}.attributes[{n}].key")
        if not key or len(key) > MAX_KEY_CHARS:
            raise OtlpError(f"{where}.attributes[{n}]: key must be 1-{MAX_KEY_CHARS} characters")
        out[key] = _any_value(kv.get("value"), f"{where} attribute {key!r}", depth)
    return out


def _status(value: Any, where: str) -> tuple[bool, str]:
    status = _obj(value, where)
    code = status.get("code")
    if isinstance(code, str):
        error = code == "STATUS_CODE_ERROR"
        if code not in ("STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"):
            raise OtlpError(f"{where}.code: unknown status code {code[:40]!r}")
    else:
        error = _uint(code, f"{where}.code", 32) == 2
    return error, _str(status.get("message"), f"{where}.message")


def spans_from_json(doc: Any) -> list[Span]:
    """Spans of an ExportTraceServiceRequest decoded from JSON. Unknown fields are
    ignored, as the OTLP specification requires of receivers."""
    if not isinstance(doc, dict):
        raise OtlpError(f"expected a JSON object (an ExportTraceServiceRequest), got {_json_type(doc)}")
    spans: list[Span] = []
    for r, rs in enumerate(_list(_field(doc, "resourceSpans", "resource_spans"), "resourceSpans")):
        where_r = f"resourceSpans[{r}]"
        rs = _obj(rs, where_r)
        resource = _attributes(_obj(rs.get("resource"), f"{where_r}.resource").get("attributes"), f"{where_r}.resource")
        for s, ss in enumerate(_list(_field(rs, "scopeSpans", "scope_spans"), f"{where_r}.scopeSpans")):
            where_s = f"{where_r}.scopeSpans[{s}]"
            ss = _obj(ss, where_s)
            for n, span in enumerate(_list(ss.get("spans"), f"{where_s}.spans")):
                spans.append(_json_span(_obj(span, f"{where_s}.spans[{n}]"), f"{where_s}.spans[{n}]", resource))
    return spans


def _json_span(span: dict, where: str, resource: dict) -> Span:
    error, message = _status(span.get("status"), f"{where}.status")
    parent = _field(span, "parentSpanId", "parent_span_id")
    events = []
    for n, e in enumerate(_list(span.get("events"), f"{where}.events")):
        e = _obj(e, f"{where}.events[{n}]")
        events.append(SpanEvent(
            _str(e.get("name"), f"{where}.events[{n}].name"),
            _uint(_field(e, "timeUnixNano", "time_unix_nano"), f"{where}.events[{n}].timeUnixNano"),
            _attributes(e.get("attributes"), f"{where}.events[{n}]"),
        ))
    start = _uint(_field(span, "startTimeUnixNano", "start_time_unix_nano"), f"{where}.startTimeUnixNano")
    end = _uint(_field(span, "endTimeUnixNano", "end_time_unix_nano"), f"{where}.endTimeUnixNano")
    return Span(
        trace_id=_id(_field(span, "traceId", "trace_id"), 16, f"{where}.traceId"),
        span_id=_id(_field(span, "spanId", "span_id"), 8, f"{where}.spanId"),
        parent_span_id=_id(parent, 8, f"{where}.parentSpanId") if parent else None,
        name=_check_size(_str(span.get("name"), f"{where}.name"), f"{where}.name"),
        start_ns=start,
        end_ns=end or start,
        error=error,
        status_message=_check_size(message, f"{where}.status.message"),
        attributes=_attributes(span.get("attributes"), where),
        events=events,
        resource=resource,
    )


# -- OTLP/protobuf -------------------------------------------------------------


def spans_from_protobuf(body: bytes) -> list[Span]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise OtlpError(f"bad protobuf: {exc or 'cannot parse an ExportTraceServiceRequest'}") from None
    spans: list[Span] = []
    for r, rs in enumerate(request.resource_spans):
        resource = _pb_attributes(rs.resource.attributes, f"resourceSpans[{r}].resource")
        for s, ss in enumerate(rs.scope_spans):
            for n, span in enumerate(ss.spans):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{n}]"
                spans.append(Span(
                    trace_id=_pb_id(span.trace_id, 16, f"{where}.traceId"),
                    span_id=_pb_id(span.span_id, 8, f"{where}.spanId"),
                    parent_span_id=_pb_id(span.parent_span_id, 8, f"{where}.parentSpanId") if span.parent_span_id else None,
                    name=_check_size(span.name, f"{where}.name"),
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano or span.start_time_unix_nano,
                    error=span.status.code == 2,
                    status_message=_check_size(span.status.message, f"{where}.status.message"),
                    attributes=_pb_attributes(span.attributes, where),
                    events=[
                        SpanEvent(e.name, e.time_unix_nano, _pb_attributes(e.attributes, f"{where}.events[{k}]"))
                        for k, e in enumerate(span.events)
                    ],
                    resource=resource,
                ))
    return spans


def _pb_id(raw: bytes, nbytes: int, where: str) -> str:
    if len(raw) != nbytes:
        raise OtlpError(f"{where}: expected {nbytes} bytes, got {len(raw)}")
    if not any(raw):
        raise OtlpError(f"{where}: an all-zero id is invalid")
    return raw.hex()


def _pb_attributes(kvs, where: str, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        if not kv.key or len(kv.key) > MAX_KEY_CHARS:
            raise OtlpError(f"{where}: attribute key must be 1-{MAX_KEY_CHARS} characters")
        out[kv.key] = _pb_value(kv.value, f"{where} attribute {kv.key!r}", depth)
    return out


def _pb_value(v, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise OtlpError(f"{where}: nested more than {MAX_DEPTH} levels")
    which = v.WhichOneof("value")
    if which == "string_value":
        return _check_size(v.string_value, where)
    if which == "bool_value":
        return v.bool_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "array_value":
        return [_pb_value(x, f"{where}[{n}]", depth + 1) for n, x in enumerate(v.array_value.values)]
    if which == "kvlist_value":
        return _pb_attributes(v.kvlist_value.values, where, depth + 1)
    if which == "bytes_value":
        if len(v.bytes_value) > MAX_VALUE_BYTES:
            raise OtlpError(f"{where}: value too large ({len(v.bytes_value)} bytes, limit {MAX_VALUE_BYTES})")
        return base64.b64encode(v.bytes_value).decode("ascii")
    return None


# -- spans to events -----------------------------------------------------------


def task_id(trace_id: str) -> str:
    return TASK_PREFIX + trace_id


def step_seq(time_ns: int) -> int:
    return 1 + (time_ns // TICK_NS) % _STEP_SEQS


def _ts(time_ns: int) -> datetime:
    return datetime.fromtimestamp(time_ns / 1e9, tz=UTC)


def span_class(attributes: dict[str, Any]) -> str:
    """agent, tool, model, guardrail or other, by GenAI operation or OpenInference kind."""
    op = attributes.get("gen_ai.operation.name")
    oi = attributes.get("openinference.span.kind")
    oi = oi.upper() if isinstance(oi, str) else None
    if op == "invoke_agent" or oi == "AGENT":
        return "agent"
    if op == "execute_tool" or oi == "TOOL":
        return "tool"
    if op in MODEL_OPERATIONS or oi == "LLM":
        return "model"
    if oi == "GUARDRAIL":
        return "guardrail"
    return "other"


def to_events(spans: list[Span]) -> list[SpanItem]:
    items: list[SpanItem] = []
    for span in spans:
        try:
            items.extend(span_events(span))
        except (OtlpError, ValidationError, ValueError, TypeError) as exc:
            raise OtlpError(f"span {span.span_id} ({span.name[:60]!r}): {_reason(exc)}") from None
    return items


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        from agentdeck.store.ingest import describe_error

        return describe_error(exc)
    return str(exc)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else ("" if value is None else json.dumps(value))
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "\u2026"


def _first(attributes: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return value
    return None


def _name(attributes: dict[str, Any], *keys: str) -> str | None:
    value = _first(attributes, *keys)
    return None if value is None else str(value)


def _count(attributes: dict[str, Any], *keys: str) -> int:
    value = _first(attributes, *keys)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise OtlpError(f"{keys[0]}: expected a number")
    try:
        return int(float(value))
    except (ValueError, OverflowError):  # OverflowError: Infinity (a 400 for the receiver, not a 500)
        raise OtlpError(f"{keys[0]}: expected a number, got {str(value)[:40]!r}") from None


def _decoded(value: Any) -> Any:
    """Attribute values holding structures arrive as JSON strings (OTel SDKs only take scalars and lists)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _exception_message(span: Span) -> str:
    for e in span.events:
        if e.name == "exception":
            return str(e.attributes.get("exception.message") or e.attributes.get("exception.type") or "")
    return ""


def span_events(span: Span) -> list[SpanItem]:
    """The native events one span stands for, each keyed by its span part."""
    a = span.attributes
    unknown = sorted(k for k in a if k.startswith("agentdeck.") and k not in SPAN_ATTRIBUTES)
    if unknown:
        raise OtlpError(f"unknown attribute {unknown[0]!r} (see docs/otel.md)")
    tid = task_id(span.trace_id)
    made: list[tuple[str, dict[str, Any]]] = []  # (part, event fields)

    def add(part: str, time_ns: int, seq: int, fields: dict[str, Any]) -> None:
        made.append((part, {"v": 1, "ts": _ts(time_ns), "task_id": tid, "seq": seq, **fields}))

    kind = span_class(a)
    latency_ms = max(0, span.end_ns - span.start_ns) / 1e6
    failure = span.status_message or _exception_message(span)
    if kind == "agent":
        add("start", span.start_ns, FIRST_SEQ, _task_start(span))
    elif kind == "tool":
        call_id = _name(a, "gen_ai.tool.call.id") or span.span_id
        tool = _name(a, "gen_ai.tool.name", "tool.name") or span.name or "tool"
        add("call", span.start_ns, step_seq(span.start_ns), {
            "kind": "tool_call", "call_id": call_id, "tool": tool,
            "input": _decoded(_first(a, "gen_ai.tool.call.arguments", "input.value", "tool.parameters")),
        })
        output = _first(a, "gen_ai.tool.call.result", "output.value")
        add("result", span.end_ns, step_seq(span.end_ns), {
            "kind": "tool_result", "call_id": call_id, "tool": tool,
            "output": _decoded(output) if output is not None else (failure or None),
            "status": a.get("agentdeck.status") or ("error" if span.error else "ok"),
            "latency_ms": latency_ms, "retry": _count(a, "agentdeck.retry"),
        })
    elif kind == "model":
        summary = _first(a, "agentdeck.summary") or (failure if span.error else None) or _first(a, "output.value") or span.name
        add("step", span.start_ns, step_seq(span.start_ns), {
            "kind": "reasoning",
            "model": _name(a, "gen_ai.response.model", "gen_ai.request.model", "llm.model_name"),
            "summary": _text(summary),
            "tokens_in": _count(a, "gen_ai.usage.input_tokens", "llm.token_count.prompt"),
            "tokens_out": _count(a, "gen_ai.usage.output_tokens", "llm.token_count.completion"),
            "status": "error" if span.error else "ok",
        })
    elif kind == "guardrail":
        add("step", span.start_ns, step_seq(span.start_ns), {
            "kind": "policy_check",
            "policy_id": _name(a, "agentdeck.policy_id") or span.name or "guardrail",
            "policy_version": _name(a, "agentdeck.policy_version") or "unversioned",
            "verdict": a.get("agentdeck.verdict") or ("deny" if span.error else "allow"),
            "reason": _text(_first(a, "agentdeck.reason") or failure or _first(a, "output.value") or ""),
            "subject": _name(a, "agentdeck.subject"),
        })

    for n, e in enumerate(span.events):
        if not e.name.startswith("agentdeck."):
            continue  # exception, log and other events are not steps
        event_kind = e.name[len("agentdeck."):]
        if event_kind not in EVENT_KINDS:
            raise OtlpError(f"unknown span event {e.name[:60]!r} (see docs/otel.md)")
        fields: dict[str, Any] = {"kind": event_kind}
        for key, value in e.attributes.items():
            if key.startswith("agentdeck."):
                name = key[len("agentdeck."):]
                fields[name] = _decoded(value) if name in STRUCTURED_FIELDS else value
        time_ns = e.time_ns or span.start_ns
        add(f"event{n}", time_ns, step_seq(time_ns), fields)

    # The agent span, or the root of a trace without one, ends the task.
    if kind == "agent" or span.parent_span_id is None:
        add("end", span.end_ns, LAST_SEQ, {
            "kind": "task_end",
            "outcome": a.get("agentdeck.outcome") or ("failed" if span.error else "success"),
            "tokens_in": _count(a, "gen_ai.usage.input_tokens", "llm.token_count.prompt") if kind == "agent" else 0,
            "tokens_out": _count(a, "gen_ai.usage.output_tokens", "llm.token_count.completion") if kind == "agent" else 0,
            "cost_usd": float(_first(a, "agentdeck.cost_usd") or 0),
            "latency_ms": latency_ms,
            "summary": _text(_first(a, "agentdeck.summary") or failure or (_first(a, "output.value") if kind == "agent" else None) or ""),
        })

    items = []
    for part, fields in made:
        event = ev.event_adapter.validate_python(fields)
        items.append(SpanItem(event, event.model_dump_json(exclude_none=True), (span.trace_id, span.span_id, part)))
    return items


def _task_start(span: Span) -> dict[str, Any]:
    a = span.attributes
    version = {
        "id": _name(a, "agentdeck.agent_version", "gen_ai.agent.version") or "unversioned",
        "prompt": _name(a, "agentdeck.agent_version.prompt"),
        "model": _name(a, "agentdeck.agent_version.model", "gen_ai.request.model", "llm.model_name"),
        "policy": _name(a, "agentdeck.agent_version.policy"),
        "tool_schema": _name(a, "agentdeck.agent_version.tool_schema"),
    }
    given_input = _first(a, "agentdeck.input")
    if given_input is not None:
        task_input = _decoded(given_input)
    else:
        task_input = {k: a[k] for k in ("gen_ai.agent.id", "gen_ai.conversation.id") if a.get(k) is not None}
    return {
        "kind": "task_start",
        "request_id": _name(a, "agentdeck.request_id", "gen_ai.conversation.id") or span.trace_id,
        "agent": _name(a, "gen_ai.agent.name", "agentdeck.agent") or _agent_fallback(span),
        "agent_version": version,
        "cohort": a.get("agentdeck.cohort") or "baseline",
        "stage": a.get("agentdeck.stage") or "bounded",
        "request": _text(_first(a, "agentdeck.request", "input.value") or ""),
        "input": task_input,
    }


def _agent_fallback(span: Span) -> str:
    # OpenInference names an agent span after the agent; a GenAI span name is
    # "invoke_agent" plus the name it would have given, so the service says more.
    if "openinference.span.kind" in span.attributes and span.name:
        return span.name
    return _name(span.resource, "service.name") or span.name or "agent"
