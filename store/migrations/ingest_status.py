"""Ingest status area: how each ingest process is doing, for every console on the store.

An ingester (the console's own ingest process, or a headless
``agentdeck ingest --follow``) registers itself, beats every few seconds and
keeps its current per-source problems here; consoles read it to say when
ingestion stopped, stalled or cannot read something (store/health.py).
"""

# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE ingesters (
            ingester TEXT PRIMARY KEY,      -- host:pid
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            paths TEXT NOT NULL,            -- JSON list of the paths it follows
            started_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL,
            state TEXT NOT NULL,            -- running | stopped | failed
            detail TEXT,                    -- why it stopped or failed
            events INTEGER NOT NULL DEFAULT 0,
            rejects INTEGER NOT NULL DEFAULT 0,
            last_commit_at REAL,
            behind_bytes INTEGER NOT NULL DEFAULT 0
        )""",
        # What an ingester cannot read right now, one row a path; a row goes
        # when the problem does. `since` is when it was first seen.
        """CREATE TABLE ingest_problems (
            ingester TEXT NOT NULL,
            source TEXT NOT NULL,
            detail TEXT NOT NULL,
            since REAL NOT NULL,
            seen_at REAL NOT NULL,
            PRIMARY KEY (ingester, source)
        )""",
    ],
]
