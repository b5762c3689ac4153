"""Loading the captured framework traces (tests/fixtures/otel/<framework>/*.otlp.pb) into a store.

Each fixture holds the export requests exactly as an SDK sent them, in the
Collector's ``format: proto`` layout (a 4-byte big-endian length, then an
ExportTraceServiceRequest). See tests/fixtures/otel/README.md.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from agentdeck.store import otlp
from agentdeck.store.ingest import apply_batch

FIXTURES = Path(__file__).parent / "fixtures" / "otel"


def requests(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        out.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


def fixture(framework: str) -> Path:
    """The framework's trace requests (not its ``*.logs.otlp.pb``: log requests, where captured)."""
    return next(p for p in sorted((FIXTURES / framework).glob("*.otlp.pb")) if not p.name.endswith(".logs.otlp.pb"))


def log_fixture(framework: str) -> Path:
    return next((FIXTURES / framework).glob("*.logs.otlp.pb"))


def spans(framework: str) -> list:
    return [s for body in requests(fixture(framework)) for s in otlp.spans_from_protobuf(body)]


def ingest_spans(conn, spans_, batch: int | None = None) -> None:
    """Ingest spans as one request, or in requests of ``batch`` spans."""
    batch = batch or len(spans_) or 1
    for i in range(0, len(spans_), batch):
        apply_batch(conn, None, otlp.to_events(spans_[i:i + batch]), [])


def tasks(conn) -> list[dict]:
    return [dict(r) for r in conn.execute("SELECT * FROM tasks ORDER BY started")]


def steps(conn, task_id: str) -> list[tuple[str, dict]]:
    return [(r["kind"], json.loads(r["payload"])) for r in
            conn.execute("SELECT kind, payload FROM events WHERE task_id = ? ORDER BY seq, id", (task_id,))]
