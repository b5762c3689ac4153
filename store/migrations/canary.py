"""Canary area: the latest canary reports, computed off the console's UI process.

``canary_reports``: one row per (agent, baseline, canary, window, method):
the whole ``store.canary.CanaryReport`` and the ``store.canary_diff``
differences as JSON, the ids of the tasks behind the first metric (what the
screen lists on opening; JSON ``{metric: [task_id, ...]}``), the clock they were computed for, how long that took
and ``stamp`` (what the store held: newest and oldest event, newest task
change and decision; ``store.canary_reports.stamp``). Written by the
console's ingest process after commits (throttled; store/canary_reports.py)
and by a console that had to compute one itself. A cache: every row is
rebuilt from the tasks and events, never the only copy of anything.

``canary_state``: one row: the default (baseline, canary) pair of each
agent, and when the analyst last looked (``alive_at``), so a console knows
whether someone keeps the reports current: ``ingester`` names the ingest
process whose analyst wrote it (its heartbeat in ``ingesters`` says it is
alive, so the analyst never writes just to say so).
"""

# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE canary_reports (
            agent TEXT NOT NULL,
            baseline TEXT NOT NULL,
            canary TEXT NOT NULL,
            win TEXT NOT NULL,
            method TEXT NOT NULL,
            computed_at REAL NOT NULL,
            seconds REAL NOT NULL,
            stamp TEXT NOT NULL,
            report TEXT NOT NULL,
            differences TEXT NOT NULL,
            tasks TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (agent, baseline, canary, win, method)
        )""",
        """CREATE TABLE canary_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            pairs TEXT NOT NULL,
            pairs_at REAL NOT NULL,
            alive_at REAL NOT NULL,
            ingester TEXT,
            error TEXT,                     -- why the analyst's last round failed (NULL: it did not)
            stamp TEXT NOT NULL
        )""",
    ],
]
