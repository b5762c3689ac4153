"""Contract violations: one row per broken rule, at the step (seq) that broke it.

Derived data: ``store.contract.ContractCheck`` replaces a task's rows each
time the task's events change, and keeps ``tasks.violations`` equal to the
task's row count.
"""

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE violations (
            id INTEGER PRIMARY KEY,
            task_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            rule TEXT NOT NULL,
            detail TEXT NOT NULL,
            agent TEXT,
            version TEXT,
            contract TEXT
        )""",
        "CREATE INDEX violations_task ON violations(task_id, seq)",
        "CREATE INDEX violations_rule ON violations(agent, version, rule)",
    ],
]
