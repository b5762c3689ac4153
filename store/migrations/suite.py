"""Suite area: the regression suite's runs, so the console can show them beside the canary.

``suite_runs``: one row per ``agentdeck suite run`` of one command (a run
with ``--baseline-cmd`` records two rows). ``agent`` and ``version`` are
what the agent's own traces said (the most common among its runs), not
what the operator typed: the Canary screen looks runs up by them.
``by_flavour`` is JSON ``{"clean": [passed, runs], ...}``.

``suite_cases``: one row per case of a run: whether it passed (every
attempt), was flaky (some attempts), the first failure's reason and the
trace file of its first failing attempt (or its first attempt), kept under
the run's ``--out`` folder. Suite traces are never ingested into this
store: they would count in the live canary's metrics.
"""

# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE suite_runs (
            id INTEGER PRIMARY KEY,
            started REAL NOT NULL,
            finished REAL NOT NULL,
            command TEXT NOT NULL,
            agent TEXT,
            version TEXT,
            passed INTEGER NOT NULL,
            cases INTEGER NOT NULL,
            runs INTEGER NOT NULL,
            by_flavour TEXT NOT NULL
        )""",
        "CREATE INDEX suite_runs_version ON suite_runs (agent, version, finished)",
        """CREATE TABLE suite_cases (
            run_id INTEGER NOT NULL REFERENCES suite_runs (id) ON DELETE CASCADE,
            case_id TEXT NOT NULL,
            flavour TEXT NOT NULL,
            passed INTEGER NOT NULL,
            flaky INTEGER NOT NULL,
            passes INTEGER NOT NULL,
            runs INTEGER NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            trace TEXT,
            PRIMARY KEY (run_id, case_id)
        )""",
    ],
]
