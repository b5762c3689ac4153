"""OpenTelemetry log events that carry a model call's messages.

Some instrumentations write the conversation as OTLP *log records* in the
context of the model call's span instead of as span attributes:
opentelemetry-instrumentation-openai-v2 (2.x) emits ``gen_ai.system.message``,
``gen_ai.user.message``, ``gen_ai.assistant.message``, ``gen_ai.tool.message``
and ``gen_ai.choice``, each with the span's trace and span id; newer GenAI
utilities emit one ``gen_ai.client.inference.operation.details`` record with
``gen_ai.input.messages`` / ``gen_ai.output.messages`` attributes.

Each such record becomes a *log item*: a ``SpanItem`` keyed
``(trace id, span id, "log:<digest>")`` that stores no event of its own. Its
``meta`` carries what it says -- ``req`` (the user's message) and/or ``ans``
(the model's answer), each ``(time_ns, text)`` -- and ``log`` (the answer
for the span's step). ``otlp.claim`` records the key with the span parts
(so a record sent twice, or by a file and over HTTP, counts once), keeps the
text in ``otlp_logs``, and attaches it to the span's step whether the span
was stored before, comes in the same batch or comes later: see
``otlp._attach_logs``. The task's request and answer come from ``req`` and
``ans`` exactly as from model spans that carry their messages.

Records without a trace and span id, and records of other events (plain
application logs), are counted, not stored. Everything here is untrusted
text: it is only picked, shortened and shown with markup disabled.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from agentdeck.store import otlp
from agentdeck.store import otlp_content as content

PATH = "/v1/logs"

USER = "gen_ai.user.message"
CHOICE = "gen_ai.choice"
DETAILS = "gen_ai.client.inference.operation.details"
# Events read; the others (system/assistant/tool messages repeat the request's history) are skipped.
MESSAGE_EVENTS = frozenset({
    USER, CHOICE, DETAILS, "gen_ai.system.message", "gen_ai.assistant.message", "gen_ai.tool.message",
})


class LogRecord:
    """One log record, as read from JSON or protobuf (plain values)."""

    __slots__ = ("trace_id", "span_id", "time_ns", "event_name", "body", "attributes")

    def __init__(self, trace_id: str, span_id: str, time_ns: int, event_name: str, body: Any,
                 attributes: dict[str, Any]) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.time_ns = time_ns
        self.event_name = event_name
        self.body = body
        self.attributes = attributes


# -- entry points ------------------------------------------------------------


def is_logs(raw: bytes) -> bool:
    """A Collector file-exporter line of logs (an ExportLogsServiceRequest in JSON)."""
    head = raw[:64].lstrip()
    if not head.startswith(b"{"):
        return False
    head = head[1:].lstrip()
    return head.startswith(b'"resourceLogs"') or head.startswith(b'"resource_logs"')


def decode_json(body: bytes, partial: bool = False) -> otlp.SpanItems:
    """The log items of an ExportLogsServiceRequest in JSON. Raises OtlpError when the body is not
    one; a bad record raises too unless ``partial`` (then it is named in ``rejected``)."""
    bad: list[otlp.BadSpan] | None = [] if partial else None
    return _items(records_from_json(otlp.load_json(body), bad), bad)


def decode_protobuf(body: bytes, partial: bool = False) -> otlp.SpanItems:
    bad: list[otlp.BadSpan] | None = [] if partial else None
    return _items(records_from_protobuf(body, bad), bad)


def decode_line(raw: bytes) -> otlp.SpanItems:
    return decode_json(raw, partial=True)


# -- reading -----------------------------------------------------------------


def records_from_json(doc: Any, rejected: list[otlp.BadSpan] | None = None) -> list[LogRecord | None]:
    """Records of an ExportLogsServiceRequest decoded from JSON (None: a record naming no span,
    counted). Unknown fields are ignored, as OTLP requires of receivers."""
    if not isinstance(doc, dict):
        raise otlp.OtlpError(f"expected a JSON object (an ExportLogsServiceRequest), got {otlp._json_type(doc)}")
    out: list[LogRecord | None] = []
    for r, rl in enumerate(otlp._list(otlp._field(doc, "resourceLogs", "resource_logs"), "resourceLogs")):
        where_r = f"resourceLogs[{r}]"
        rl = otlp._obj(rl, where_r)
        for s, sl in enumerate(otlp._list(otlp._field(rl, "scopeLogs", "scope_logs"), f"{where_r}.scopeLogs")):
            where_s = f"{where_r}.scopeLogs[{s}]"
            sl = otlp._obj(sl, where_s)
            for n, rec in enumerate(otlp._list(otlp._field(sl, "logRecords", "log_records"), f"{where_s}.logRecords")):
                where = f"{where_s}.logRecords[{n}]"
                try:
                    out.append(_json_record(otlp._obj(rec, where), where))
                except otlp.OtlpError as exc:
                    if rejected is None:
                        raise
                    rejected.append(otlp.BadSpan(f"log record {where}: {exc}", otlp._raw_json(rec)))
    return out


def _json_record(rec: dict, where: str) -> LogRecord | None:
    trace = otlp._field(rec, "traceId", "trace_id")
    span = otlp._field(rec, "spanId", "span_id")
    attributes = otlp._attributes(rec.get("attributes"), where)
    name = otlp._str(otlp._field(rec, "eventName", "event_name"), f"{where}.eventName") \
        or _str_attr(attributes, "event.name")
    if not trace or not span or name not in MESSAGE_EVENTS:
        return None
    time_ns = otlp._uint(otlp._field(rec, "timeUnixNano", "time_unix_nano"), f"{where}.timeUnixNano") \
        or otlp._uint(otlp._field(rec, "observedTimeUnixNano", "observed_time_unix_nano"),
                      f"{where}.observedTimeUnixNano")
    return LogRecord(otlp._id(trace, 16, f"{where}.traceId"), otlp._id(span, 8, f"{where}.spanId"), time_ns, name,
                     otlp._any_value(rec.get("body"), f"{where}.body"), attributes)


def records_from_protobuf(body: bytes, rejected: list[otlp.BadSpan] | None = None) -> list[LogRecord | None]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    try:
        request = ExportLogsServiceRequest.FromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise otlp.OtlpError(f"bad protobuf: {exc or 'cannot parse an ExportLogsServiceRequest'}") from None
    out: list[LogRecord | None] = []
    for r, rl in enumerate(request.resource_logs):
        for s, sl in enumerate(rl.scope_logs):
            for n, rec in enumerate(sl.log_records):
                where = f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{n}]"
                try:
                    out.append(_pb_record(rec, where))
                except otlp.OtlpError as exc:
                    if rejected is None:
                        raise
                    rejected.append(otlp.BadSpan(f"log record {where}: {exc}", otlp._raw_json({
                        "traceId": rec.trace_id.hex(), "spanId": rec.span_id.hex(), "eventName": rec.event_name[:200]})))
    return out


def _pb_record(rec, where: str) -> LogRecord | None:
    attributes = otlp._pb_attributes(rec.attributes, where)
    name = rec.event_name or _str_attr(attributes, "event.name")
    if not rec.trace_id or not rec.span_id or name not in MESSAGE_EVENTS:
        return None
    return LogRecord(otlp._pb_id(rec.trace_id, 16, f"{where}.traceId"), otlp._pb_id(rec.span_id, 8, f"{where}.spanId"),
                     rec.time_unix_nano or rec.observed_time_unix_nano, name,
                     otlp._pb_value(rec.body, f"{where}.body", 0) if rec.HasField("body") else None, attributes)


def _str_attr(attributes: dict[str, Any], key: str) -> str:
    value = attributes.get(key)
    return value if isinstance(value, str) else ""


# -- mapping -----------------------------------------------------------------


def said(record: LogRecord) -> tuple[str, str]:
    """What a record says: (the user's request, the model's answer), either may be empty."""
    body = record.body
    if record.event_name == USER:
        if isinstance(body, dict):
            return _text(body.get("content")), ""
        return _text(body), ""
    if record.event_name == CHOICE:
        message = body.get("message") if isinstance(body, dict) else None
        return "", content.message_text(message) if isinstance(message, dict) else ""
    if record.event_name == DETAILS:
        return content.first_user_text(record.attributes), content.answer_text(record.attributes)
    return "", ""


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content as parts
        return content.message_text({"content": value})
    return ""


def digest(record: LogRecord) -> str:
    """The record's identity, the same whichever transport brought it (JSON or protobuf)."""
    blob = json.dumps([record.time_ns, record.event_name, record.body, sorted(record.attributes.items())],
                      default=str, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def log_item(record: LogRecord) -> otlp.SpanItem | None:
    """The item standing for one record, or None for a record that says nothing agentdeck shows."""
    asked, answer = said(record)
    asked = otlp._text(content.short(asked)) if asked else ""
    answer = otlp._text(content.short(answer, 4000)) if answer else ""
    if not asked and not answer:
        return None
    meta: dict[str, Any] = {"log": answer or None}
    if asked:
        meta["req"] = (record.time_ns, asked)
    if answer:
        meta["ans"] = (record.time_ns, answer)
    return otlp.SpanItem(None, "", (record.trace_id, record.span_id, "log:" + digest(record)), meta)


def _items(records: list[LogRecord | None], bad: list[otlp.BadSpan] | None) -> otlp.SpanItems:
    items = otlp.SpanItems()
    for record in records:
        item = None
        if record is not None:
            try:
                item = log_item(record)
            except (TypeError, ValueError, RecursionError) as exc:  # an oddly shaped body: refuse the record
                if bad is None:
                    raise otlp.OtlpError(f"log record of span {record.span_id}: {exc}") from None
                bad.append(otlp.BadSpan(f"log record of span {record.span_id}: {exc}"))
                continue
        if item is None:
            items.ignored += 1
        else:
            items.append(item)
    items.rejected = [b.reason for b in bad or []]
    return items
