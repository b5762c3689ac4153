"""OTLP area: which parts of which OpenTelemetry spans are already stored.

A span can arrive more than once: an OTLP client retries a request whose
answer it did not get, and the same span may be exported both to a file and
over HTTP. Every event made from a span carries a key (trace id, span id,
part); ``store.otlp.claim`` records the keys inside the ingest transaction
and drops events whose key is already here, so each is stored once.
"""

# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE otlp_spans (
            trace_id TEXT NOT NULL,
            span_id TEXT NOT NULL,
            part TEXT NOT NULL,
            PRIMARY KEY (trace_id, span_id, part)
        ) WITHOUT ROWID""",
    ],
]
