"""Replay area: compensations the console ran (one row an attempt)."""

# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[list[str]] = [
    [
        # Written *before* the compensation runs (status 'running'), then
        # completed with its result: a crash mid-call leaves a visible trace,
        # and a retry reuses the action's idempotency key so nothing is undone twice.
        """CREATE TABLE compensations (
            id INTEGER PRIMARY KEY,
            action_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            requested_by TEXT NOT NULL,
            requested_at REAL NOT NULL,
            target TEXT NOT NULL,
            plan TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            status TEXT NOT NULL,
            finished_at REAL,
            response_status INTEGER,
            response_body TEXT,
            error TEXT
        )""",
        "CREATE INDEX compensations_action ON compensations(action_id, attempt)",
        "CREATE INDEX compensations_task ON compensations(task_id)",
    ],
    [
        # Why the operator undid it (required where approving the action needed a reason).
        "ALTER TABLE compensations ADD COLUMN reason TEXT",
    ],
]
