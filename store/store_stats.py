"""How big the store is, by table; how fast it grows; what the retention rules would free.

(Not ``store/stats.py``, which is the canary's statistics.) Sizes come from
SQLite's ``dbstat`` table when the library has it (exact: every page of a
table and of its indexes), else from an estimate: the file's pages shared out
by each table's row count times its average row width over a sample.
Reading is all this does; it never writes.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agentdeck.store.retention import DAY, RetentionPolicy, plan


@dataclass
class TableSize:
    name: str
    rows: int
    bytes: int


@dataclass
class DayGrowth:
    day: str  # YYYY-MM-DD (UTC)
    tasks: int
    events: int
    bytes: int  # estimated: events times the store's bytes per event


@dataclass
class StoreStats:
    file_bytes: int
    wal_bytes: int
    page_size: int
    free_pages: int
    auto_vacuum: str
    measured: bool  # sizes from dbstat (True) or estimated
    tables: list[TableSize] = field(default_factory=list)
    growth: list[DayGrowth] = field(default_factory=list)
    bytes_per_event: float = 0.0
    would_remove_tasks: int = 0
    would_remove_events: int = 0
    would_free_bytes: int = 0
    kept: dict[str, int] = field(default_factory=dict)
    archive_files: int = 0
    archive_bytes: int = 0  # as recorded by the prunes that wrote them

    @property
    def per_day(self) -> float:
        return sum(g.bytes for g in self.growth) / len(self.growth) if self.growth else 0.0


def _tables(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Each table and the objects (itself, its indexes) whose pages count as its size."""
    owned: dict[str, list[str]] = {}
    for kind, name, tbl in conn.execute("SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"):
        if kind == "table" and name.startswith("sqlite_"):
            continue
        owned.setdefault(tbl, []).append(name)
    return owned


def _measured(conn: sqlite3.Connection, owned: dict[str, list[str]]) -> dict[str, int] | None:
    try:
        pages = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    except sqlite3.OperationalError:  # SQLite built without SQLITE_ENABLE_DBSTAT_VTAB
        return None
    return {t: int(sum(pages.get(n, 0) or 0 for n in names)) for t, names in owned.items()}


def _estimated(conn: sqlite3.Connection, rows: dict[str, int], total: int) -> dict[str, int]:
    weight: dict[str, float] = {}
    for table, n in rows.items():
        cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
        width = " + ".join(f'coalesce(length("{c}"), 0)' for c in cols) or "0"
        avg = conn.execute(f'SELECT avg({width}) FROM (SELECT * FROM "{table}" LIMIT 200)').fetchone()[0] or 0
        weight[table] = n * (avg + 8 * len(cols))
    whole = sum(weight.values()) or 1.0
    return {t: int(total * w / whole) for t, w in weight.items()}


def collect(conn: sqlite3.Connection, policy: RetentionPolicy, now: float, *, days: int = 7) -> StoreStats:
    from agentdeck.store.prune import file_bytes
    from agentdeck.store.txn import store_path

    path = store_path(conn)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    page_count = conn.execute("PRAGMA page_count").fetchone()[0]
    total = file_bytes(path)
    file_size = page_size * page_count
    mode = {0: "none", 1: "full", 2: "incremental"}.get(conn.execute("PRAGMA auto_vacuum").fetchone()[0], "?")
    owned = _tables(conn)
    rows = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in owned}
    sizes = _measured(conn, owned)
    measured = sizes is not None
    if sizes is None:
        sizes = _estimated(conn, rows, file_size)
    out = StoreStats(file_bytes=file_size, wal_bytes=max(total - file_size, 0), page_size=page_size,
                     free_pages=conn.execute("PRAGMA freelist_count").fetchone()[0], auto_vacuum=mode,
                     measured=measured)
    out.tables = sorted((TableSize(t, rows[t], sizes.get(t, 0)) for t in owned), key=lambda s: -s.bytes)
    # What one event costs: its row, its summary's share, what was derived from it.
    per_task = ("events", "tasks", "escalations", "actions", "violations")
    events = rows.get("events", 0)
    out.bytes_per_event = sum(sizes.get(t, 0) for t in per_task) / events if events else 0.0
    # Growth: tasks by the day they started (the tasks_started index), over the last `days` days.
    start = (int(now // DAY) - days + 1) * DAY
    for day, tasks, n in conn.execute(
        "SELECT CAST(coalesce(started, last_ts) / 86400 AS INTEGER) AS d, count(*), sum(events) FROM tasks "
        "WHERE coalesce(started, last_ts) >= ? AND coalesce(started, last_ts) < ? GROUP BY d ORDER BY d",
        (start, now + DAY),
    ):
        label = datetime.fromtimestamp(day * DAY, UTC).strftime("%Y-%m-%d")
        out.growth.append(DayGrowth(label, tasks, n or 0, int((n or 0) * out.bytes_per_event)))
    if "archive_files" in owned:
        out.archive_files, out.archive_bytes = conn.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM archive_files").fetchone()
    p = plan(conn, policy, now)
    out.would_remove_tasks = len(p.remove)
    out.would_remove_events = p.events
    out.would_free_bytes = int(p.events * out.bytes_per_event)
    out.kept = dict(p.kept)
    return out
