"""A suite run kept in the store (``suite_runs``, ``suite_cases``), and read back for the console.

Only the verdicts and the trace paths are stored: the traces themselves stay
files under the run's folder and never enter the store (they would count in
the live canary's metrics). The Replay screen reads a failing case's trace
from its file into a throwaway store.
"""

from __future__ import annotations

import json
import sqlite3

from agentdeck.replay.suite.runner import SuiteResult
from agentdeck.store.txn import atomic


def record(conn: sqlite3.Connection, result: SuiteResult, *, started: float, finished: float) -> int:
    """Write one run of one command and its cases in one transaction; return the run's id."""
    agent, version = result.tested()
    flavours = {f: list(pr) for f, pr in result.by_flavour().items()}
    with atomic(conn):
        cur = conn.execute(
            "INSERT INTO suite_runs (started, finished, command, agent, version, passed, cases, runs, by_flavour)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (started, finished, result.command, agent, version, sum(r.passed for r in result.results),
             len(result.results), len(result.all_runs()), json.dumps(flavours)))
        run_id = int(cur.lastrowid or 0)
        rows = []
        for r in result.results:
            failed = next((run for run in r.runs if not run.passed), None)
            shown = failed or (r.runs[0] if r.runs else None)
            rows.append((run_id, r.case.id, r.case.flavour, int(r.passed), int(r.flaky), r.passes, len(r.runs),
                         r.reason, str(shown.trace.resolve()) if shown else None))
        conn.executemany(
            "INSERT INTO suite_cases (run_id, case_id, flavour, passed, flaky, passes, runs, reason, trace)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return run_id


def latest_run(conn: sqlite3.Connection, agent: str, version: str) -> sqlite3.Row | None:
    """The newest recorded run that tested this agent's version (None: never run)."""
    return conn.execute(
        "SELECT * FROM suite_runs WHERE agent = ? AND version = ? ORDER BY finished DESC, id DESC LIMIT 1",
        (agent, version)).fetchone()


def failing_cases(conn: sqlite3.Connection, run_id: int) -> list[sqlite3.Row]:
    """The run's cases that did not pass every attempt, flavour then id."""
    return conn.execute(
        "SELECT * FROM suite_cases WHERE run_id = ? AND passed = 0 ORDER BY flavour, case_id", (run_id,)).fetchall()
