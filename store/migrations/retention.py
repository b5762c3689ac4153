"""Retention area: what was pruned, where its archive is, and who is pruning now.

``archived_tasks``: one row each time a task's events were archived (or
pruned without an archive), with the sha256 ``digest`` of its archived lines
(the audit trail names tasks by this digest). ``state`` is ``archived`` while
the task's rows are still to be deleted (a prune that stopped half way
finishes them first), ``pruned`` once they are gone, or ``kept`` when the
task changed between archiving and deletion (it stays in the store; the
archive copy is superseded). A task that is re-ingested and pruned again
gets another row.

``archive_files``: every archive file this store wrote, with the size it
has recorded: bytes past it were written by a prune that did not get to
record them, and are cut off before anything else is appended.

``prune_lease``: at most one row, the prune that is running (pid, host,
lease end): a second prune refuses to start while it is alive.
"""

# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE archived_tasks (
            id INTEGER PRIMARY KEY,
            task_id TEXT NOT NULL,
            request_id TEXT,
            archive TEXT,
            member_offset INTEGER,
            member_length INTEGER,
            digest TEXT NOT NULL,
            events INTEGER NOT NULL,
            max_event_id INTEGER NOT NULL,
            first_ts REAL,
            last_ts REAL,
            notable INTEGER NOT NULL,
            reason TEXT NOT NULL,
            archived_at REAL NOT NULL,
            pruned_at REAL,
            state TEXT NOT NULL DEFAULT 'archived'
        )""",
        "CREATE INDEX archived_tasks_task ON archived_tasks(task_id)",
        "CREATE INDEX archived_tasks_request ON archived_tasks(request_id)",
        "CREATE INDEX archived_tasks_unfinished ON archived_tasks(state) WHERE state = 'archived'",
        """CREATE TABLE archive_files (
            path TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            members INTEGER NOT NULL DEFAULT 0,
            created REAL NOT NULL,
            updated REAL NOT NULL
        )""",
        """CREATE TABLE prune_lease (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            started REAL NOT NULL,
            until REAL NOT NULL
        )""",
    ],
]
