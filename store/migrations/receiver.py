"""Receiver area: which sender wrote what.

The OTLP/HTTP receiver knows who sent each request: the name of the bearer
token it carried (``--token-file``), or ``cert:<common name>`` of a client
certificate (mutual TLS). That name is kept with every span part it wrote
(``otlp_spans.source``) and, as a comma-separated list of names, on the task
(``tasks.source``), so Tasks and evidence can say which source wrote a task.
Spans from files and from an unauthenticated receiver have no source (NULL).

The task's list is kept by a trigger on ``otlp_spans``: claims are inserted in
the same transaction as the span's events (``store.otlp.claim``), so the name
is exactly as durable as what it sent, without a second write path. OTLP tasks
are ``otel-<trace id>`` (``store.otlp.TASK_PREFIX``); a trigger-made row is
completed by the task upsert that follows in the same transaction. Source
names never contain a comma (the receiver refuses such token names).
"""

# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[list[str]] = [
    [
        "ALTER TABLE otlp_spans ADD COLUMN source TEXT",
        "ALTER TABLE tasks ADD COLUMN source TEXT",
        # Who sent a refused request or span (NULL: a file, or no authentication).
        "ALTER TABLE rejects ADD COLUMN source TEXT",
        """CREATE TRIGGER otlp_spans_source AFTER INSERT ON otlp_spans
        WHEN NEW.source IS NOT NULL AND NOT EXISTS (
            -- most span parts of a task come from a sender already listed: one lookup, no write
            SELECT 1 FROM tasks WHERE task_id = 'otel-' || NEW.trace_id
            AND instr(',' || source || ',', ',' || NEW.source || ',') > 0)
        BEGIN
            INSERT INTO tasks (task_id, source) VALUES ('otel-' || NEW.trace_id, NEW.source)
            ON CONFLICT(task_id) DO UPDATE SET
                source = CASE WHEN tasks.source IS NULL THEN excluded.source ELSE tasks.source || ',' || excluded.source END;
        END""",
    ],
]
