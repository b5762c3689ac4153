"""Opening the store and keeping its schema current.

The store is one SQLite file in WAL mode so the console can read while the
tailer writes. The schema is documented in ``docs/store.md``; every table is
plain enough to browse with ``sqlite-utils`` or Datasette.
"""

from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path

from agentdeck.store import deferred_indexes
from agentdeck.store.txn import StoreLocked, StoreReadOnly, StoreTooNew, atomic

# sqlite-utils is a dependency for operators: its CLI browses this store
# (docs/store.md). Our own code uses plain sqlite3, measured on the hot paths.

# Each area of the product keeps its tables in store/migrations/<area>.py as a
# list MIGRATIONS of migrations (each a list of SQL statements). Areas are
# applied in this order; how many of an area's migrations ran is kept in the
# meta table. To add tables, add a module and its name here.
AREAS = (
    "core",
    "replay",
    "escalations",
    "console",
    "contract",
    "otlp",
    "retention",
    "receiver",
    "notify",
    "ingest_status",
    "suite",
    "release",
    "canary",
)

# Applied to every read-write connection, in order. A writer waits this long
# for another's lock before failing with "the store is locked" (store.txn).
# Tests append limits here (max_page_count: a full disk; query_only: a
# read-only store) to see how every command reports them.
PRAGMAS = [
    "PRAGMA busy_timeout = 10000",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
]


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the store, creating and migrating it as needed.

    Connections are in autocommit mode (``isolation_level=None``): every
    write path opens its own transaction with ``store.txn.atomic`` so what
    it commits together is explicit.
    """
    path = Path(path)
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.row_factory = sqlite3.Row
        return conn
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    if new:
        # Only a new store takes this (before its first table): pages that
        # prune frees then go back to the file system a step at a time
        # (docs/retention.md). Setting it on an existing store would wait for
        # the write lock, so it is not tried; `prune --compact` converts one.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    for pragma in PRAGMAS:
        conn.execute(pragma)
    conn.row_factory = sqlite3.Row
    # An import killed while it had indexes deferred (or one still running):
    # build them before anything reads, and before migrations that may
    # change them (store/deferred_indexes.py).
    try:
        deferred_indexes.restore(conn)
    except (StoreReadOnly, StoreLocked):
        # A store nobody may write, or another process writing it now (an import's own transaction, the
        # console's ingest starting beside it): queries are slower, never wrong, until the tailer's next pass
        # rebuilds them; health says so meanwhile. Missing indexes must not turn into a store that won't open.
        pass
    migrate(conn)
    return conn


def _area_migrations() -> list[tuple[str, list[list[str]]]]:
    return [(area, importlib.import_module(f"agentdeck.store.migrations.{area}").MIGRATIONS) for area in AREAS]


def migrate(conn: sqlite3.Connection) -> None:
    areas = _area_migrations()
    target = sum(len(m) for _, m in areas)
    # user_version holds the total applied: a cheap "nothing to do" check.
    if conn.execute("PRAGMA user_version").fetchone()[0] == target:
        return
    with atomic(conn):
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        known = {f"schema:{area}" for area, _ in areas}
        unknown = sorted(key for (key,) in conn.execute("SELECT key FROM meta WHERE key GLOB 'schema:*'")
                         if key not in known)
        if unknown:  # a migration area only a newer agentdeck has (as receiver, canary... were added)
            raise StoreTooNew(f"{unknown[0][len('schema:'):]} tables this version does not know",
                              conn.execute("PRAGMA database_list").fetchone()[2] or None)
        for area, migrations in areas:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (f"schema:{area}",)).fetchone()
            done = int(row[0]) if row else 0
            if done > len(migrations):
                # A newer agentdeck's tables: writing here would miss them (and rewinding the version
                # would make the newer one run its migrations again over tables that exist).
                raise StoreTooNew(f"schema {area} {done}, this version knows {len(migrations)}",
                                  conn.execute("PRAGMA database_list").fetchone()[2] or None)
            for statements in migrations[done:]:
                for sql in statements:
                    conn.execute(sql)
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (f"schema:{area}", str(len(migrations))))
        conn.execute(f"PRAGMA user_version = {target}")
