"""What the OpenTelemetry Collector's file exporter writes, beyond one trace request a line.

* ``format: json`` with traces, metrics and logs sent to one path: logs
  lines (``resourceLogs``) are read for the model messages some
  instrumentations log (store/otlp_logs.py); metrics and profiles lines,
  and logs lines without model messages, are skipped and counted
  (``skipped``), never rejected.
* A JSON document pretty-printed over several lines (``{`` alone on its
  first line, ``}`` alone on its last): read as one document, rejected (if
  bad) once, at its first byte.
* ``format: proto``: each message (``TracesData``, ``LogsData`` or
  ``MetricsData``, what the exporter's ``ptrace``/``plog``/``pmetric``
  ProtoMarshaler writes) preceded by its length as a 4-byte big-endian
  integer (collector-contrib exporter/fileexporter, ``exportMessageAsBuffer``).
  Files named ``*.binpb`` or ``*.pb`` are read that way. A record's signal is
  not written down: the three messages all put their data in field 1, so it
  is told from the wire types of the first span / log record / metric's
  fields (``record_signal``). Logs records are read as JSON logs lines are
  (store/otlp_logs.py); metrics records are skipped and counted.
"""

from __future__ import annotations

import os
import struct
import threading
from collections import Counter

from agentdeck.store.reader import MAX_LINE, Line

PROTO_SUFFIXES = (".binpb", ".pb")
PROTO_PATTERNS = ("*.binpb", "*.pb")
MAX_RECORD = 64 * 1024 * 1024  # a length beyond this is not a record: the file is damaged here

# Logs lines are read (store/otlp_logs.py: model messages as log records); one
# without model messages is counted as skipped "logs" there.
_OTHER_SIGNALS = {b'"resourceMetrics"': "metrics", b'"resource_metrics"': "metrics",
                  b'"resourceProfiles"': "profiles", b'"resource_profiles"': "profiles"}

# Lines of other signals skipped so far in this process, by signal (shown by `agentdeck ingest`).
skipped: Counter[str] = Counter()
_lock = threading.Lock()


def other_signal(raw: bytes) -> str | None:
    """``metrics`` / ``logs`` / ``profiles`` for a Collector line of another signal, else None."""
    head = raw[:80].lstrip()
    if not head.startswith(b"{"):
        return None
    head = head[1:].lstrip()
    for key, signal in _OTHER_SIGNALS.items():
        if head.startswith(key):
            return signal
    return None


def count_skipped(signal: str) -> None:
    with _lock:
        skipped[signal] += 1


def is_proto(path: str) -> bool:
    return path.endswith(PROTO_SUFFIXES)


def group_documents(lines: list[Line], end: int) -> tuple[list[Line], int]:
    """Join the physical lines of each pretty-printed JSON document into one Line.

    A document still being written (no closing ``}`` line yet) is left for
    later: the returned end offset stops before it. One that grows past
    MAX_LINE without closing is given up on: its lines are returned as they are.
    """
    if not any(line.data == b"{" for line in lines):
        return lines, end
    out: list[Line] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.data != b"{":
            out.append(line)
            i += 1
            continue
        closing = b"}"
        size, j = 0, i
        while j < len(lines) and size <= MAX_LINE:
            size += len(lines[j].data) + 1
            if lines[j].data == closing and j > i:
                break
            j += 1
        if j < len(lines) and lines[j].data == closing and size <= MAX_LINE:
            out.append(Line(line.offset, b"\n".join(part.data for part in lines[i:j + 1])))
            i = j + 1
        elif j >= len(lines) and size <= MAX_LINE:
            return out, line.offset  # not finished yet: wait for the rest
        else:
            out.extend(lines[i:j])  # too long to be a document we read whole
            i = j
    return out, end


# The fields of a Span, a LogRecord and a Metric, as (field number, wire type)
# (opentelemetry-proto trace.proto, logs.proto, metrics.proto). Wire types:
# 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
_SIGNAL_FIELDS = {
    "traces": {(1, 2), (2, 2), (3, 2), (4, 2), (5, 2), (6, 0), (7, 1), (8, 1), (9, 2), (10, 0), (11, 2), (12, 0),
               (13, 2), (14, 0), (15, 2), (16, 5)},
    "logs": {(1, 1), (2, 0), (3, 2), (5, 2), (6, 2), (7, 0), (8, 5), (9, 2), (10, 2), (11, 1), (12, 2)},
    "metrics": {(1, 2), (2, 2), (3, 2), (5, 2), (7, 2), (9, 2), (10, 2), (11, 2), (12, 2)},
}
_KNOWN_FIELDS = {n for fields in _SIGNAL_FIELDS.values() for n, _ in fields}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes):
    """(field number, wire type, value or (start, end) of a length-delimited one) of one message."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, wire, value
        elif wire == 1:
            pos += 8
            yield number, wire, None
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise ValueError("truncated field")
            yield number, wire, (pos, pos + size)
            pos += size
        elif wire == 5:
            pos += 4
            yield number, wire, None
        else:
            raise ValueError(f"wire type {wire}")


def _first_item(data: bytes) -> bytes | None:
    """The first span / log record / metric: in field 1 (resource …), field 2 (scope …), field 2."""

    def inside(message: bytes, number: int):
        for n, wire, value in _fields(message):
            if n == number and wire == 2:
                yield message[value[0]:value[1]]

    for resource in inside(data, 1):
        for scope in inside(resource, 2):
            for item in inside(scope, 2):
                return item
    return None


def record_signal(data: bytes) -> str:
    """``traces``, ``logs`` or ``metrics``: which message a ``format: proto`` record holds.

    The signal whose fields agree with every field of the record's first span,
    log record or metric (traces when none does, or several do and the item has
    a start time: an empty record, or one that is not protobuf at all, which
    decoding it as traces then rejects with the reason).
    """
    try:
        item = _first_item(data)
        if item is None:
            return "traces"
        seen = {(number, wire) for number, wire, _ in _fields(item) if number in _KNOWN_FIELDS}
    except ValueError:
        return "traces"
    fits = [signal for signal, fields in _SIGNAL_FIELDS.items() if seen <= fields]
    if fits == ["traces", "metrics"] and (7, 1) not in seen:
        return "metrics"  # fields both have, and no start time, which every span has
    return fits[0] if len(fits) == 1 else "traces"


def decode_record(data: bytes) -> list:
    """The items of one ``format: proto`` record (raises OtlpError when it cannot be read): spans
    of a TracesData, model messages of a LogsData (a record without any is counted as skipped
    logs), nothing for a MetricsData (counted). Bad spans or log records are in ``rejected``."""
    from agentdeck.store import otlp, otlp_logs

    signal = record_signal(data)
    if signal == "logs":
        items = otlp_logs.decode_protobuf(data, partial=True)
        if not items and not items.rejected:
            count_skipped("logs")
        return items
    if signal == "metrics":
        count_skipped("metrics")
        return otlp.SpanItems()
    return otlp.decode_protobuf(data, partial=True)


def read_records(fd: int, offset: int, size: int, max_bytes: int) -> tuple[list[Line], int]:
    """Length-prefixed records (the Collector's ``format: proto``) from ``offset``.

    Returns the records as Lines (data: one ExportTraceServiceRequest) and the
    offset after the last complete one; a partial record waits. A length
    that cannot be a record (over MAX_RECORD) means the file is damaged from
    there: the rest is returned as one oversized Line (a reject) and skipped.
    """
    out: list[Line] = []
    pos = offset
    while pos + 4 <= size and pos - offset < max_bytes:
        (n,) = struct.unpack(">I", os.pread(fd, 4, pos))
        if n > MAX_RECORD:
            out.append(Line(pos, os.pread(fd, min(4096, size - pos), pos), size - pos))
            return out, size
        if pos + 4 + n > size:
            break
        out.append(Line(pos, os.pread(fd, n, pos + 4)))
        pos += 4 + n
    return out, pos
