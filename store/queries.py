"""Read queries the console and the CLI share. Plain functions over a connection.

Every query here is bounded (LIMIT, or an aggregate) and served by an index
in ``store/db.py``: the console calls them from worker threads on every
refresh, with a million events in the store.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Counters:
    tasks_per_min: float
    errors: int
    open_escalations: int
    events: int
    rejects: int
    last_event_ts: float | None
    last_ingest_at: float | None


def counters(conn: sqlite3.Connection, now: float | None = None) -> Counters:
    now = time.time() if now is None else now
    since = now - 60
    # Tasks started in the last minute, by event time (tasks_started index).
    per_min = conn.execute("SELECT count(*) FROM tasks WHERE started >= ?", (since,)).fetchone()[0]
    # Failing tasks of the last hour by event time (tasks_started index), like
    # tasks/min: what is live. (By ingest time, a backfill of old traces counted
    # as "this hour" and the query read every task it had just ingested.)
    errors = conn.execute(
        "SELECT count(*) FROM tasks WHERE started >= ? AND (outcome = 'failed' OR tool_errors > 0 OR actions_failed > 0)",
        (now - 3600,),
    ).fetchone()[0]
    open_esc = conn.execute("SELECT count(*) FROM escalations WHERE status = 'pending'").fetchone()[0]
    events = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
    rejects = conn.execute("SELECT count(*) FROM rejects").fetchone()[0]
    # The most recently ingested task says how far behind its events ingestion
    # is (tasks_updated index; max(last_ts) would scan every task).
    last = conn.execute("SELECT last_ts, updated_at FROM tasks ORDER BY updated_at DESC LIMIT 1").fetchone()
    if last is None:
        return Counters(float(per_min), errors, open_esc, events, rejects, None, None)
    return Counters(float(per_min), errors, open_esc, events, rejects, last[0], last[1])


def task_events(conn: sqlite3.Connection, task_id: str, limit: int | None = None) -> list[sqlite3.Row]:
    """A task's events in task order (seq), whatever order they arrived in."""
    sql = "SELECT id, task_id, seq, kind, ts, payload FROM events WHERE task_id = ? ORDER BY seq, id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return conn.execute(sql, (task_id,)).fetchall()


def task(conn: sqlite3.Connection, task_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()


def find_task(conn: sqlite3.Connection, task_or_request_id: str) -> sqlite3.Row | None:
    """A task by its id, or by its request id."""
    row = task(conn, task_or_request_id)
    if row is None:
        row = conn.execute(
            "SELECT * FROM tasks WHERE request_id = ? ORDER BY started DESC LIMIT 1", (task_or_request_id,)
        ).fetchone()
    return row


# -- the Tasks list: filtered, keyset-paged ----------------------------------

# When a task was first seen: its start, or its newest event until its
# task_start arrives. Must match the index in store/migrations/console.py.
SEEN = "coalesce(started, last_ts)"
TaskKey = tuple[float, str]  # (seen, task_id): the Tasks list's total order
OUTCOMES = ("success", "failed", "denied", "escalated", "aborted", "timeout", "running", "abandoned")
# A task with no task_end whose newest event is older than the cut-off (``abandoned_before``)
# is shown as abandoned: computed when read, never stored (a late event revives it).
ABANDONED = "(outcome IS NULL AND ended IS NULL AND last_ts < ?)"


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks the Tasks list shows. Empty fields do not filter.

    ``outcome="running"`` means tasks without a task_end yet and, given
    ``abandoned_before`` (a timestamp: now minus the console's abandon-after
    silence), an event since then; ``outcome="abandoned"`` the silent ones
    (none when ``abandoned_before`` is None: never abandoned); ``text`` words
    must each appear (case-insensitively) in the task's id, request id,
    agent, request or last tool.
    """

    agent: str | None = None
    version: str | None = None
    cohort: str | None = None
    stage: str | None = None
    outcome: str | None = None
    violations: bool = False
    text: tuple[str, ...] = field(default_factory=tuple)
    session: str | None = None  # a conversation / session id (OpenTelemetry traces)
    abandoned_before: float | None = None  # set by the service from its clock, not by the filter bar

    @property
    def empty(self) -> bool:
        return self == TaskFilter(abandoned_before=self.abandoned_before)

    def where(self) -> tuple[str, list]:
        """SQL condition and parameters for this filter ("1" when empty)."""
        clauses: list[str] = []
        params: list = []
        for column in ("agent", "version", "cohort", "stage", "session"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.outcome == "abandoned":
            if self.abandoned_before is None:
                clauses.append("0")
            else:
                clauses.append(ABANDONED)
                params.append(self.abandoned_before)
        elif self.outcome == "running":
            clauses.append("outcome IS NULL")
            if self.abandoned_before is not None:
                clauses.append(f"NOT coalesce({ABANDONED}, 0)")
                params.append(self.abandoned_before)
        elif self.outcome is not None:
            clauses.append("outcome = ?")
            params.append(self.outcome)
        if self.violations:
            clauses.append("violations > 0")
        for word in self.text:
            pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append(
                "(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in _TEXT_COLUMNS) + ")"
            )
            params.extend([pattern] * len(_TEXT_COLUMNS))
        return (" AND ".join(clauses) or "1"), params


_TEXT_COLUMNS = ("task_id", "request_id", "agent", "request", "last_tool")
_TASK_SELECT = f"SELECT *, {SEEN} AS seen, {ABANDONED} AS abandoned FROM tasks"
# What the console's Tasks list draws of a task (console/widgets/task_table.py), and nothing else: the list
# re-reads its window of 200 tasks on every refresh while following a fleet, and the other 20-odd columns
# (the request text among them) doubled the read's CPU. A row equal to the one read before is also one
# whose line looks the same (tasks.updated_at, the event counts... change on every event and show nowhere).
LIST_COLUMNS = ("task_id", "agent", "version", "cohort", "stage", "started", "ended", "last_ts", "last_kind",
                "last_tool", "outcome", "latency_ms", "cost_usd", "violations")
_LIST_SELECT = f"SELECT {', '.join(LIST_COLUMNS)}, {SEEN} AS seen, {ABANDONED} AS abandoned FROM tasks"


def _select_params(filt: TaskFilter) -> list:
    """The parameter of ``_TASK_SELECT``'s abandoned column (a cut-off no task is before when never)."""
    return [filt.abandoned_before if filt.abandoned_before is not None else float("-inf")]


def is_abandoned(task: sqlite3.Row | dict | None, abandoned_before: float | None) -> bool:
    """The same rule as ``ABANDONED``, for one task row already read."""
    if task is None or abandoned_before is None:
        return False
    return task["outcome"] is None and task["ended"] is None and task["last_ts"] is not None \
        and task["last_ts"] < abandoned_before


def _key_cmp(op: str, key: TaskKey) -> tuple[str, list]:
    """``(seen, task_id) <op> key`` written so SQLite seeks the index to it.

    (A row-value comparison on an expression index is checked row by row
    from the index's start instead.)
    """
    strict = op.rstrip("=")
    sql = f"{SEEN} {strict}= ? AND ({SEEN} {strict} ? OR task_id {op} ?)"
    return sql, [key[0], key[0], key[1]]


def task_key(row: sqlite3.Row) -> TaskKey:
    return (row["seen"], row["task_id"])


def tasks_newest(conn: sqlite3.Connection, filt: TaskFilter, limit: int, *,
                 listed: bool = False) -> list[sqlite3.Row]:
    """The newest ``limit`` matching tasks, oldest first (the tail of the list).

    ``listed``: only the columns the Tasks list shows (``LIST_COLUMNS``, + seen and abandoned), not all.
    """
    where, params = filt.where()
    rows = conn.execute(
        f"{_LIST_SELECT if listed else _TASK_SELECT} WHERE {where} ORDER BY {SEEN} DESC, task_id DESC LIMIT ?",
        (*_select_params(filt), *params, limit)
    ).fetchall()
    rows.reverse()
    return rows


def tasks_from(conn: sqlite3.Connection, filt: TaskFilter, lo: TaskKey | None, limit: int, *,
               listed: bool = False) -> list[sqlite3.Row]:
    """Up to ``limit`` matching tasks from ``lo`` (inclusive) on, oldest first; from the oldest if None.

    ``listed``: as for ``tasks_newest``.
    """
    where, params = filt.where()
    select = _LIST_SELECT if listed else _TASK_SELECT
    if lo is None:
        sql = f"{select} WHERE {where} ORDER BY {SEEN}, task_id LIMIT ?"
        return conn.execute(sql, (*_select_params(filt), *params, limit)).fetchall()
    cmp, cmp_params = _key_cmp(">=", lo)
    sql = f"{select} WHERE {cmp} AND {where} ORDER BY {SEEN}, task_id LIMIT ?"
    return conn.execute(sql, (*_select_params(filt), *cmp_params, *params, limit)).fetchall()


def key_before(conn: sqlite3.Connection, filt: TaskFilter, key: TaskKey, steps: int) -> TaskKey | None:
    """The key ``steps`` matching tasks before ``key`` (or the oldest, if fewer); None if none."""
    where, params = filt.where()
    cmp, cmp_params = _key_cmp("<", key)
    rows = conn.execute(
        f"SELECT {SEEN}, task_id FROM tasks WHERE {cmp} AND {where} ORDER BY {SEEN} DESC, task_id DESC LIMIT ?",
        (*cmp_params, *params, steps),
    ).fetchall()
    return (rows[-1][0], rows[-1][1]) if rows else None


def count_after(conn: sqlite3.Connection, filt: TaskFilter, key: TaskKey, cap: int = 1000) -> int:
    """How many matching tasks come after ``key``, counting up to ``cap``."""
    where, params = filt.where()
    cmp, cmp_params = _key_cmp(">", key)
    return conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM tasks WHERE {cmp} AND {where} LIMIT ?)",
        (*cmp_params, *params, cap),
    ).fetchone()[0]


def tasks_by_prefix(conn: sqlite3.Connection, prefix: str, limit: int = 10) -> list[sqlite3.Row]:
    """Tasks whose id or request id starts with ``prefix`` (primary key / request index ranges)."""
    hi = prefix + "\U0010ffff"
    return conn.execute(
        """SELECT task_id, request_id, agent, outcome FROM tasks WHERE task_id >= ? AND task_id < ?
           UNION SELECT task_id, request_id, agent, outcome FROM tasks WHERE request_id >= ? AND request_id < ?
           LIMIT ?""",
        (prefix, hi, prefix, hi, limit),
    ).fetchall()
