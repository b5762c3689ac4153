"""Core tables: events, tasks, escalations, actions, audit, sources, rejects."""

# Each migration is a list of statements applied in one transaction.
# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[list[str]] = [
    [
        # Every trace line that validated, exactly once. payload is the raw line.
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            task_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            ts REAL NOT NULL,
            source_id INTEGER,
            payload TEXT NOT NULL
        )""",
        "CREATE INDEX events_task_seq ON events(task_id, seq)",
        # One row a task, kept current by ingestion (a summary of its events).
        """CREATE TABLE tasks (
            task_id TEXT PRIMARY KEY,
            request_id TEXT,
            agent TEXT,
            version TEXT,
            cohort TEXT,
            stage TEXT,
            request TEXT,
            started REAL,
            ended REAL,
            last_ts REAL,
            updated_at REAL,
            events INTEGER NOT NULL DEFAULT 0,
            max_seq INTEGER NOT NULL DEFAULT -1,
            last_kind TEXT,
            last_tool TEXT,
            tool_calls INTEGER NOT NULL DEFAULT 0,
            tool_errors INTEGER NOT NULL DEFAULT 0,
            retries INTEGER NOT NULL DEFAULT 0,
            policy_denials INTEGER NOT NULL DEFAULT 0,
            escalations INTEGER NOT NULL DEFAULT 0,
            actions INTEGER NOT NULL DEFAULT 0,
            actions_failed INTEGER NOT NULL DEFAULT 0,
            compensations INTEGER NOT NULL DEFAULT 0,
            violations INTEGER NOT NULL DEFAULT 0,
            outcome TEXT,
            tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0,
            latency_ms REAL
        )""",
        "CREATE INDEX tasks_updated ON tasks(updated_at)",
        "CREATE INDEX tasks_started ON tasks(started)",
        "CREATE INDEX tasks_agent_version ON tasks(agent, version, started)",
        "CREATE INDEX tasks_request ON tasks(request_id)",
        # Escalations as the agent raised them, plus the human decision on them.
        """CREATE TABLE escalations (
            escalation_id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            ts REAL NOT NULL,
            agent TEXT,
            risk TEXT NOT NULL,
            risk_rank INTEGER NOT NULL,
            reason TEXT,
            deadline REAL NOT NULL,
            policy_id TEXT,
            justification TEXT,
            proposed_action TEXT NOT NULL,
            callback_url TEXT,
            status TEXT NOT NULL DEFAULT 'pending',
            decided_by TEXT,
            decided_at REAL,
            decision_reason TEXT,
            delivery TEXT,
            delivery_error TEXT,
            delivery_attempts INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX escalations_queue ON escalations(status, deadline, risk_rank)",
        "CREATE INDEX escalations_task ON escalations(task_id)",
        # Actions the agents executed, with how to undo them.
        """CREATE TABLE actions (
            action_id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            ts REAL NOT NULL,
            system TEXT NOT NULL,
            operation TEXT NOT NULL,
            amount REAL,
            status TEXT NOT NULL,
            justification TEXT,
            compensation TEXT,
            idempotency_key TEXT,
            compensated_at REAL,
            compensated_by TEXT,
            compensation_status TEXT
        )""",
        "CREATE INDEX actions_task ON actions(task_id)",
        # Append-only, hash-chained record of every human act: decisions,
        # compensations, exports. See store/audit.py.
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            actor TEXT NOT NULL,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX audit_subject ON audit(subject)",
        # One row per trace file ever seen; offset is committed with its events.
        """CREATE TABLE sources (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            dev INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            fingerprint TEXT,
            fp_len INTEGER NOT NULL DEFAULT 0,
            offset INTEGER NOT NULL DEFAULT 0,
            lines INTEGER NOT NULL DEFAULT 0,
            rejects INTEGER NOT NULL DEFAULT 0,
            format TEXT,
            first_seen REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        "CREATE INDEX sources_inode ON sources(dev, inode)",
        # Lines that could not be ingested, with enough to find and fix them.
        """CREATE TABLE rejects (
            id INTEGER PRIMARY KEY,
            source_id INTEGER,
            path TEXT NOT NULL,
            offset INTEGER NOT NULL,
            error TEXT NOT NULL,
            raw TEXT NOT NULL,
            raw_length INTEGER NOT NULL,
            ts REAL NOT NULL
        )""",
    ],
    [
        # tasks.tokens is task_end's reported total when it gives one, else the
        # sum over reasoning events; both are kept so batches (and events
        # arriving after task_end) add up either way.
        "ALTER TABLE tasks ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN end_tokens INTEGER",
    ],
    [
        # Escalations still waiting to learn their agent (their task_start has
        # not been ingested yet): ingestion looks only at these.
        "CREATE INDEX escalations_no_agent ON escalations(task_id) WHERE agent IS NULL",
    ],
    [
        # Every agent's versions and cohorts, counted (store.canary.pairs, on each release tick while a fleet
        # writes): read from this index alone. Through tasks_agent_version it was a row lookup per task for the
        # cohort, ~270-600 ms on 100k tasks against ~55-95 ms.
        "CREATE INDEX tasks_cohorts ON tasks(agent, version, cohort, started)",
    ],
]
