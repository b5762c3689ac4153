"""Contract violations: one row per broken rule, at the step (seq) that broke it.

Derived data: ``store.contract.ContractCheck`` replaces a task's rows in the
transaction that commits the task's new events (or, queued in
``contract_pending`` by that transaction, soon after), and keeps
``tasks.violations`` equal to the task's row count.
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
    [
        # Tasks whose violations are still to be derived: queued in the
        # transaction that committed their events when no check ran in it
        # (an OTLP request, a check that failed), removed in the transaction
        # that writes their violations. A restart finishes what is left.
        "CREATE TABLE contract_pending (task_id TEXT PRIMARY KEY) WITHOUT ROWID",
    ],
]
