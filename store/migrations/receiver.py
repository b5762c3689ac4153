"""Receiver area: which sender wrote what.

The OTLP/HTTP receiver knows who sent each request: the name of the bearer
token it carried (``--token-file``), or ``cert:<common name>`` of a client
certificate (mutual TLS). That name is kept with every span part it wrote
(``otlp_spans.source``) and, as a comma-separated list of names, on the task
(``tasks.source``), so Tasks and evidence can say which source wrote a task.
Spans from files and from an unauthenticated receiver have no source (NULL).

The task's list is kept in the ingest transaction: claims are inserted in the
same transaction as the span's events (``store.otlp.claim``), so the name is
exactly as durable as what it sent, without a second write path. A new task
row takes the senders of its claimed span parts (store/ingest.py
``fill_otel_tasks``); a claim for a task already stored appends its sender if
it is not listed (store/otlp.py ``_note_senders``). Neither writes anything in
the common case (a sender already listed), and neither touches an indexed
column. (Both were triggers at first; the migrations below drop them.)
OTLP tasks are ``otel-<trace id>`` (``store.otlp.TASK_PREFIX``). Source names
never contain a comma (the receiver refuses such token names).
"""

# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[list[str]] = [
    [
        "ALTER TABLE otlp_spans ADD COLUMN source TEXT",
        "ALTER TABLE tasks ADD COLUMN source TEXT",
        # Who sent a refused request or span (NULL: a file, or no authentication).
        "ALTER TABLE rejects ADD COLUMN source TEXT",
        # A task already in the store: a sender not yet listed is appended.
        """CREATE TRIGGER otlp_spans_source AFTER INSERT ON otlp_spans
        WHEN NEW.source IS NOT NULL AND EXISTS (
            SELECT 1 FROM tasks WHERE task_id = 'otel-' || NEW.trace_id
            AND (source IS NULL OR instr(',' || source || ',', ',' || NEW.source || ',') = 0))
        BEGIN
            UPDATE tasks SET source = CASE WHEN source IS NULL THEN NEW.source ELSE source || ',' || NEW.source END
            WHERE task_id = 'otel-' || NEW.trace_id;
        END""",
        # A task being created: its senders are those of the span parts claimed
        # so far (claims come first in the ingest transaction).
        """CREATE TRIGGER tasks_otlp_source AFTER INSERT ON tasks
        WHEN NEW.task_id GLOB 'otel-*' AND EXISTS (
            SELECT 1 FROM otlp_spans WHERE trace_id = substr(NEW.task_id, 6) AND source IS NOT NULL)
        BEGIN
            UPDATE tasks SET source = (
                SELECT group_concat(DISTINCT source) FROM otlp_spans
                WHERE trace_id = substr(NEW.task_id, 6) AND source IS NOT NULL)
            WHERE task_id = NEW.task_id;
        END""",
    ],
    # The tasks trigger above ran a trigger program for every task row any
    # batch wrote (two thirds of the task upsert's cost in a bulk import,
    # though it only ever acts on OpenTelemetry tasks): store/ingest.py
    # ``fill_otel_tasks`` does its work for the batch's 'otel-' tasks instead.
    [
        "DROP TRIGGER IF EXISTS tasks_otlp_source",
    ],
    # The otlp_spans trigger above ran its program (the WHEN test at least) for
    # every span part claimed, from a sender or not: a third of the cost of
    # claiming a batch's parts. store/otlp.py ``_note_senders`` does its work
    # after the claim's insert, one statement per (trace, sender) of the batch.
    [
        "DROP TRIGGER IF EXISTS otlp_spans_source",
    ],
]
