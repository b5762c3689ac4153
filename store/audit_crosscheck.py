"""Cross-checking the audit trail against the rows it is about.

Deleting the trail must not look like an empty trail. Every decided escalation
and every compensation in the store must be backed by a record, and every
record must still match its row:

* an escalation decided by a person or the expiry policy has its ``decision``
  record (same decision, same actor, same time); one decided by an agent
  (relayed in a trace) has the agent's ``decision`` event in ``events``;
* every console compensation attempt has its ``compensation.requested``
  record and, once finished, its ``compensation.result``; an action marked
  undone has a successful attempt or the agent's ``compensation`` event;
* a record whose escalation or compensation row is gone is tampering, unless
  the task was archived by pruning: a row in ``archived_tasks`` (or
  ``archives``) with that ``task_id`` says where it went. An archived task's
  agent-relayed decisions and compensations are not required to have their
  events in the store any more (they went to the archive).

What this cannot see: someone who rewrites a row, its record *and* holds the
key (see docs/evidence.md).
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from datetime import datetime, UTC
from typing import Any

from agentdeck.store.audit import Problem

STATUS_FOR = {"approve": "approved", "deny": "denied"}
ARCHIVE_TABLES = ("archived_tasks", "archives")


def _when(ts: Any) -> str:
    try:
        return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (TypeError, ValueError, OverflowError, OSError):
        return str(ts)


def _detail(raw: str) -> dict:
    try:
        d = json.loads(raw)
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def _table_has(conn: sqlite3.Connection, table: str, column: str) -> bool:
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is None:
        return False
    return any(r[1] == column for r in conn.execute(f"PRAGMA table_info({table})"))


def archived_tasks(conn: sqlite3.Connection) -> set[str]:
    """Task ids that pruning archived (empty when the store has no archive table)."""
    found: set[str] = set()
    for table in ARCHIVE_TABLES:
        if _table_has(conn, table, "task_id"):
            # A task prune had to keep whole (it changed while being archived) is not archived:
            # its rows stay, and a missing one is missing.
            kept = " WHERE state != 'kept'" if _table_has(conn, table, "state") else ""
            found |= {r[0] for r in conn.execute(f"SELECT task_id FROM {table}{kept}")}
    return found


def _events_of(conn: sqlite3.Connection, kind: str, task_ids: set[str]) -> dict[str, list[dict]]:
    """The ``kind`` events of these tasks, parsed, by task id (uses the events_task_seq index)."""
    out: dict[str, list[dict]] = defaultdict(list)
    if not task_ids:
        return out
    for task_id, payload in conn.execute(
        "SELECT task_id, payload FROM events WHERE task_id IN (SELECT value FROM json_each(?)) AND kind = ?",
        (json.dumps(sorted(task_ids)), kind),
    ):
        try:
            e = json.loads(payload)
        except ValueError:
            continue
        if isinstance(e, dict):
            out[task_id].append(e)
    return out


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def crosscheck(conn: sqlite3.Connection) -> list[Problem]:
    problems: list[Problem] = []
    records = conn.execute(
        "SELECT id, ts, actor, kind, subject, detail FROM audit "
        "WHERE kind IN ('decision', 'compensation.requested', 'compensation.result') ORDER BY id"
    ).fetchall()
    decisions: dict[str, tuple] = {}
    requested: dict[tuple[str, Any], tuple] = {}
    results: dict[tuple[str, Any], tuple] = {}
    for rec_id, ts, actor, kind, subject, raw in records:
        d = _detail(raw)
        if kind == "decision":
            decisions[subject] = (rec_id, ts, actor, d)
        elif kind == "compensation.requested":
            requested[(subject, d.get("attempt"))] = (rec_id, ts, actor, d)
        else:
            results[(subject, d.get("attempt"))] = (rec_id, ts, actor, d)
    archived = archived_tasks(conn)
    problems += _decisions(conn, decisions, archived)
    if _has_table(conn, "compensations"):
        problems += _compensations(conn, requested, results, archived)
    if _has_table(conn, "stage_changes"):
        problems += _stage_changes(conn)
    return problems


def _stage_changes(conn: sqlite3.Connection) -> list[Problem]:
    """Every change of a version's stage (store/release.py) has its audit record, and says what the record says."""
    problems: list[Problem] = []
    recorded: dict[int, tuple[int, dict]] = {}
    for rec_id, raw in conn.execute("SELECT id, detail FROM audit WHERE kind = 'stage-change' ORDER BY id"):
        d = _detail(raw)
        if isinstance(d.get("change"), int):
            recorded[d["change"]] = (rec_id, d)
    for r in conn.execute("SELECT id, agent, version, stage, cause FROM stage_changes ORDER BY id"):
        what = f"stage change {r['id']} ({r['agent']} {r['version']} {r['cause']} to {r['stage']})"
        rec = recorded.pop(r["id"], None)
        if rec is None:
            problems.append(Problem(None, f"{what} has no audit record (deleted, or the row was added by hand)"))
        elif (rec[1].get("stage"), rec[1].get("cause")) != (r["stage"], r["cause"]):
            problems.append(Problem(rec[0], f"records {rec[1].get('cause')} to {rec[1].get('stage')}, but the store "
                                            f"says {what} (the row was changed)"))
    for change, (rec_id, d) in recorded.items():
        problems.append(Problem(rec_id, f"records stage change {change} ({d.get('agent')} {d.get('version')} to "
                                        f"{d.get('stage')}), which is gone from the store"))
    return problems


def _decisions(conn: sqlite3.Connection, decisions: dict[str, tuple], archived: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    rows = {r["escalation_id"]: r for r in conn.execute(
        "SELECT escalation_id, task_id, status, decided_by, decided_at FROM escalations "
        "WHERE status != 'pending' OR escalation_id IN (SELECT value FROM json_each(?))",
        (json.dumps(list(decisions)),),
    )}
    unrecorded = []
    for eid, row in rows.items():
        rec = decisions.get(eid)
        if rec is None:
            if row["status"] != "pending":
                unrecorded.append(row)
            continue
        rec_id, ts, actor, d = rec
        said = STATUS_FOR.get(str(d.get("decision")), "?")
        if row["status"] == "pending":
            problems.append(Problem(rec_id, f"says escalation {eid} was {said} by {actor}, but it is pending again "
                                            "(the decision was undone in the store)"))
        elif (row["status"], row["decided_by"], row["decided_at"]) != (said, actor, ts):
            problems.append(Problem(rec_id, f"says escalation {eid} was {said} by {actor} at {_when(ts)}, but the store "
                                            f"says {row['status']} by {row['decided_by']} at {_when(row['decided_at'])} "
                                            "(the row was changed)"))
    for eid, (rec_id, _ts, _actor, d) in decisions.items():
        if eid not in rows and str(d.get("task_id")) not in archived:
            problems.append(Problem(rec_id, f"decides escalation {eid}, which is gone from the store "
                                            "(deleted, and not archived by pruning)"))
    # Decided without a record of ours: only an agent's own decision, relayed in its trace, may do that.
    unrecorded = [r for r in unrecorded if r["task_id"] not in archived]  # its events may be in the archive now
    relayed = _events_of(conn, "decision", {r["task_id"] for r in unrecorded})
    for row in unrecorded:
        eid = row["escalation_id"]
        backed = any(
            str(e.get("escalation_id")) == eid and e.get("decided_by") == row["decided_by"]
            and STATUS_FOR.get(str(e.get("decision")), "expired") == row["status"]
            for e in relayed.get(row["task_id"], ())
        )
        if not backed:
            problems.append(Problem(None, f"escalation {eid} is {row['status']} by {row['decided_by']} at "
                                          f"{_when(row['decided_at'])}, but no audit record or agent trace records that "
                                          "decision (its record was deleted, or the row was set by hand)"))
    return problems


def _compensations(conn: sqlite3.Connection, requested: dict, results: dict, archived: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    attempts = conn.execute(
        "SELECT action_id, task_id, attempt, requested_by, requested_at, status, finished_at FROM compensations"
    ).fetchall()
    seen = set()
    ok_actions: dict[str, str] = {}
    for c in attempts:
        key = (c["action_id"], c["attempt"])
        seen.add(key)
        what = f"compensation of {c['action_id']} (attempt {c['attempt']})"
        req = requested.get(key)
        if req is None:
            problems.append(Problem(None, f"{what} by {c['requested_by']} at {_when(c['requested_at'])} has no "
                                          "audit record of its request (deleted, or the row was added by hand)"))
        elif (req[2], req[1]) != (c["requested_by"], c["requested_at"]):
            problems.append(Problem(req[0], f"records the request of {what} by {req[2]} at {_when(req[1])}, but the "
                                            f"store says {c['requested_by']} at {_when(c['requested_at'])} (changed)"))
        if c["status"] in ("ok", "failed"):
            res = results.get(key)
            if res is None:
                problems.append(Problem(None, f"{what} ended {c['status']} but has no audit record of its result "
                                              "(deleted, or the row was changed by hand)"))
            elif bool(res[3].get("ok")) != (c["status"] == "ok") or res[1] != c["finished_at"]:
                said = "ok" if res[3].get("ok") else "failed"
                problems.append(Problem(res[0], f"records {what} as {said} at {_when(res[1])}, but the store says "
                                                f"{c['status']} at {_when(c['finished_at'])} (changed)"))
        if c["status"] == "ok":
            ok_actions[c["action_id"]] = c["requested_by"]
    for key, rec in requested.items():
        if key not in seen and str(rec[3].get("task_id")) not in archived:
            problems.append(Problem(rec[0], f"records a compensation of {key[0]} (attempt {key[1]}) that is gone "
                                            "from the store (deleted, and not archived by pruning)"))
    # An action marked undone: by a console attempt that succeeded, or by the agent's own compensation event.
    undone = conn.execute(
        "SELECT action_id, task_id, compensated_by, compensated_at FROM actions WHERE compensated_at IS NOT NULL"
    ).fetchall()
    by_agent = [a for a in undone if a["action_id"] not in ok_actions and a["task_id"] not in archived]
    reported = _events_of(conn, "compensation", {a["task_id"] for a in by_agent})
    for a in by_agent:
        backed = any(str(e.get("action_id")) == a["action_id"] and e.get("by") == a["compensated_by"]
                     for e in reported.get(a["task_id"], ()))
        if not backed:
            problems.append(Problem(None, f"action {a['action_id']} is marked undone by {a['compensated_by']} at "
                                          f"{_when(a['compensated_at'])}, but neither the audit trail nor a trace "
                                          "records that compensation"))
    return problems
