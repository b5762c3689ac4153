"""Notify area: what the console notified about, where, and whether it got there.

``notify_alerts``: one row per thing worth telling someone (an escalation
arrived, its deadline is near, a canary turned to hold...), unique by its
``incident`` (the dedup key every message about one incident shares, e.g.
``agentdeck/escalation/<id>``) and ``occurrence`` (which happening of it:
``new``, ``deadline-5m``, ``hold#2``). Inserting it is how a rule fires, so
it fires once whatever the number of consoles and restarts. Acknowledgement
is kept on the alert (who, when, from which OS account and SSH client).

``notify_sends``: one row per alert and route and action (``trigger``, and
for PagerDuty routes ``acknowledge`` and ``resolve``), with its delivery
state (pending, sending, sent, failed, blocked), attempts, the next attempt's
time and the last error. A sender claims a row (``sending`` with a short
lease) in a transaction before calling, so two consoles never send one row
at once; a sender that died mid-call leaves a lapsed claim and the row is
sent again with the same Idempotency-Key.

``notify_state``: small values rules remember between ticks (a canary's
last verdict, the newest reject seen).
"""

# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE notify_alerts (
            id INTEGER PRIMARY KEY,
            rule TEXT NOT NULL,
            subject TEXT NOT NULL,
            incident TEXT NOT NULL,
            occurrence TEXT NOT NULL,
            severity TEXT NOT NULL,
            summary TEXT NOT NULL,
            details TEXT NOT NULL,
            created_at REAL NOT NULL,
            resolved_at REAL,
            acked_by TEXT,
            acked_at REAL,
            acked_os_user TEXT,
            acked_ssh_client TEXT,
            UNIQUE (incident, occurrence)
        )""",
        "CREATE INDEX notify_alerts_open ON notify_alerts(rule, subject) WHERE resolved_at IS NULL",
        """CREATE TABLE notify_sends (
            id INTEGER PRIMARY KEY,
            alert_id INTEGER NOT NULL REFERENCES notify_alerts(id),
            route TEXT NOT NULL,
            route_type TEXT NOT NULL,
            route_label TEXT NOT NULL,
            action TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at REAL NOT NULL,
            claimed_until REAL,
            sent_at REAL,
            last_status INTEGER,
            last_error TEXT,
            UNIQUE (alert_id, route, action)
        )""",
        "CREATE INDEX notify_sends_due ON notify_sends(state, next_at)",
        """CREATE TABLE notify_state (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL
        )""",
    ],
]
