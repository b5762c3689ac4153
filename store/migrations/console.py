"""Indexes the console's Tasks screen pages over (no new tables).

The Tasks list is ordered by when a task was first seen — its start time,
or, before its ``task_start`` has arrived, its newest event — and paged by
keyset over that order, so the expression index must match
``store.queries.SEEN`` exactly.
"""

MIGRATIONS: list[list[str]] = [
    [
        "CREATE INDEX IF NOT EXISTS tasks_console_seen ON tasks(coalesce(started, last_ts), task_id)",
    ],
]
