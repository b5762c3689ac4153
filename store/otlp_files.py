"""What the OpenTelemetry Collector's file exporter writes, beyond one trace request a line.

* ``format: json`` with traces, metrics and logs sent to one path: logs
  lines (``resourceLogs``) are read for the model messages some
  instrumentations log (store/otlp_logs.py); metrics and profiles lines,
  and logs lines without model messages, are skipped and counted
  (``skipped``), never rejected.
* A JSON document pretty-printed over several lines (``{`` alone on its
  first line, ``}`` alone on its last): read as one document, rejected (if
  bad) once, at its first byte.
* ``format: proto``: each ``ExportTraceServiceRequest`` preceded by its
  length as a 4-byte big-endian integer. Files named ``*.binpb`` or ``*.pb``
  are read that way.
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
