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
    [
        # Which span frames each trace's task (store/otlp.py: the best ranked of
        # the trace's spans seen so far), so spans of one trace arriving in any
        # order and grouping make the same task.
        """CREATE TABLE otlp_tasks (
            trace_id TEXT PRIMARY KEY,
            rank INTEGER NOT NULL,
            start_ns INTEGER NOT NULL,
            span_id TEXT NOT NULL,
            agent TEXT,
            named INTEGER NOT NULL DEFAULT 0,
            -- the framing span logs no request / answer of its own: it borrows the first
            -- model call's user message (req_ns: its start) and the last one's answer
            needs_req INTEGER NOT NULL DEFAULT 0,
            needs_ans INTEGER NOT NULL DEFAULT 0,
            req_ns INTEGER,
            request TEXT,
            ans_ns INTEGER,
            answer TEXT
        ) WITHOUT ROWID""",
        # The conversation or session a task belongs to (gen_ai.conversation.id,
        # OpenInference session.id, Langfuse and OpenLLMetry session ids).
        "ALTER TABLE tasks ADD COLUMN session TEXT",
        """CREATE TABLE otlp_sessions (
            trace_id TEXT PRIMARY KEY,
            sess_ns INTEGER NOT NULL,
            session TEXT NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX tasks_session ON tasks(session)",
    ],
    # Only OpenTelemetry tasks have a session: an index holding every other
    # task's NULL cost each new task row an index insert for nothing (a
    # `session = ?` filter implies NOT NULL, so the partial index serves it).
    [
        "DROP INDEX IF EXISTS tasks_session",
        "CREATE INDEX tasks_session ON tasks(session) WHERE session IS NOT NULL",
    ],
]
