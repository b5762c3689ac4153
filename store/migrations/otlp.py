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
    [
        # A model call's messages may come as OTLP log records (openai-v2), before or
        # after its span (store/otlp_logs.py). The span's step part remembers its
        # event's seq, and ``bare`` (the length of the summary's stand-in text, the
        # span name) while no answer has replaced it; each record's request and
        # answer are kept until the span comes.
        "ALTER TABLE otlp_spans ADD COLUMN step_seq INTEGER",
        "ALTER TABLE otlp_spans ADD COLUMN bare INTEGER",
        """CREATE TABLE otlp_logs (
            trace_id TEXT NOT NULL,
            span_id TEXT NOT NULL,
            rec TEXT NOT NULL,
            req_ns INTEGER,
            request TEXT,
            ans_ns INTEGER,
            answer TEXT,
            PRIMARY KEY (trace_id, span_id, rec)
        ) WITHOUT ROWID""",
        # A named agent's own answer while it frames its task (the task's answer is the
        # latest of all: after a handoff, another agent's), for its sub-agent step if a
        # better-ranked span of the trace comes later.
        "ALTER TABLE otlp_tasks ADD COLUMN own_answer TEXT",
        # 1 while a task's agent is a stand-in: no span of its trace named an agent
        # yet, so the agent shown is the service's name (store/otlp.py). A named
        # agent framing the task later replaces it. Nobody owns a stand-in (the
        # receiver's per-source agent lists: store/otlp_receiver.py).
        "ALTER TABLE tasks ADD COLUMN agent_stand_in INTEGER NOT NULL DEFAULT 0",
        # Set when the task row is created, from the framing span claim recorded
        # just before in the same transaction (claim updates rows that exist).
        # Not by creating the row early: the batch's upsert would then update
        # the tasks indexes instead of inserting (bench/README.md, receiver).
        """CREATE TRIGGER tasks_otlp_stand_in AFTER INSERT ON tasks
        WHEN NEW.task_id GLOB 'otel-*' AND EXISTS (
            SELECT 1 FROM otlp_tasks WHERE trace_id = substr(NEW.task_id, 6) AND named = 0)
        BEGIN
            UPDATE tasks SET agent_stand_in = 1 WHERE task_id = NEW.task_id;
        END""",
    ],
    # Only OpenTelemetry tasks have a session: an index holding every other
    # task's NULL cost each new task row an index insert for nothing (a
    # `session = ?` filter implies NOT NULL, so the partial index serves it).
    # The stand-in trigger above ran its trigger program for every task row
    # of every batch, OpenTelemetry or not (~20 us a task row in a bulk
    # import): store/ingest.py ``fill_otel_tasks`` does its work for the
    # batch's 'otel-' task rows, in the same transaction.
    [
        "DROP INDEX IF EXISTS tasks_session",
        "CREATE INDEX tasks_session ON tasks(session) WHERE session IS NOT NULL",
        "DROP TRIGGER IF EXISTS tasks_otlp_stand_in",
    ],
    # A named agent span that logs neither its request nor its answer
    # (OpenInference's openai-agents AGENT spans) shows, on its sub-agent step,
    # the first user message and the last answer of the model calls directly
    # under it, whatever batch they come in (store/otlp.py ``_inner``):
    # otlp_inner keeps those for each span on the way up; otlp_subagents
    # the stored sub-agent steps that want them, to rewrite when a better one
    # comes (``shown``: the step's summary as stored).
    [
        """CREATE TABLE otlp_inner (
            trace_id TEXT NOT NULL,
            span_id TEXT NOT NULL,
            -- set once the span came and passes what is under it up (a passing span:
            -- a workflow, chain or nameless agent); NULL: a named agent, or not come yet
            parent_id TEXT,
            req_ns INTEGER,
            request TEXT,
            ans_ns INTEGER,
            answer TEXT,
            PRIMARY KEY (trace_id, span_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE otlp_subagents (
            trace_id TEXT NOT NULL,
            span_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            start_ns INTEGER NOT NULL,
            agent TEXT NOT NULL,
            request TEXT NOT NULL,
            outcome TEXT NOT NULL,
            summary TEXT NOT NULL,
            shown TEXT NOT NULL,
            PRIMARY KEY (trace_id, span_id)
        ) WITHOUT ROWID""",
    ],
    # The parts of a trace claimed by the first batch that brought any of it, as one row
    # (store/otlp.py ``_compact``): a row a part cost about as much as the event it
    # stands for, and most batches bring whole new traces. ``parts``: a line a part holding
    # its otlp_spans columns (store/otlp.py ``_part_line``); ``sources``: its senders as
    # otlp_spans would list them. The next batch of the trace moves its parts to
    # otlp_spans (``_spill``): a trace is in one table or the other.
    [
        """CREATE TABLE otlp_claims (
            trace_id TEXT PRIMARY KEY,
            parts TEXT NOT NULL,
            sources TEXT
        ) WITHOUT ROWID""",
    ],
]
