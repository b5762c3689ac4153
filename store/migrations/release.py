"""Release area: promotions and roll backs decided in the Escalations queue, and each version's stage.

``escalations.kind``: NULL for an agent's escalation (from its traces),
``release`` for an item the console itself raised for a canary verdict
(store/release.py). Ingest never sets it, and an agent's trace can never
decide a release item (store/ingest.py skips them).

``release_items``: one row per queued promotion or roll back, keyed on
(agent, version, transition) so two consoles, a restart or ``agentdeck
canary --enqueue`` never raise the same item twice. ``verdict`` and ``suite``
are the evidence attached when it was raised (JSON); the escalation row with
the same id carries the decision itself.

``stage_changes``: the ledger each version's effective stage derives from
(contract stage, approved promotions and roll backs, automatic demotions and
their lifting). Each row is published once to ``<traces>/outbox/autonomy.jsonl``
(``published_at``, with ``publish_intent`` as the decisions outbox does) and to
the contract's release hook (``hook_*``: state, attempts, the answer);
``contract_stage`` is what the contract said, for rows it caused.
"""

# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[list[str]] = [
    [
        "ALTER TABLE escalations ADD COLUMN kind TEXT",
        """CREATE TABLE release_items (
            escalation_id TEXT PRIMARY KEY,
            agent TEXT NOT NULL,
            version TEXT NOT NULL,
            baseline TEXT NOT NULL,
            transition TEXT NOT NULL,
            action TEXT NOT NULL,
            from_stage TEXT,
            to_stage TEXT NOT NULL,
            trigger TEXT NOT NULL,
            created REAL NOT NULL,
            verdict TEXT NOT NULL,
            suite TEXT,
            UNIQUE (agent, version, transition)
        )""",
        """CREATE TABLE stage_changes (
            id INTEGER PRIMARY KEY,
            agent TEXT NOT NULL,
            version TEXT NOT NULL,
            stage TEXT NOT NULL,
            previous TEXT,
            cause TEXT NOT NULL,
            why TEXT NOT NULL DEFAULT '',
            by TEXT NOT NULL,
            at REAL NOT NULL,
            escalation_id TEXT,
            release_hook TEXT,
            publish_intent REAL,
            published_at REAL,
            publish_error TEXT,
            hook_state TEXT,
            hook_attempts INTEGER NOT NULL DEFAULT 0,
            hook_status INTEGER,
            hook_answer TEXT,
            hook_error TEXT,
            hook_at REAL,
            hook_claimed_until REAL
        )""",
        "CREATE INDEX stage_changes_version ON stage_changes (agent, version, id)",
        "CREATE INDEX stage_changes_unpublished ON stage_changes (id) WHERE published_at IS NULL "
        "OR hook_state = 'pending'",
    ],
    [
        # The stage the contract named when a ``cause = 'contract'`` row was written (its ``stage`` may be
        # capped by a pending roll back): whether the contract was edited since is read from this column,
        # not from the ``why`` text. Rows written before it are filled from that text, once, here.
        "ALTER TABLE stage_changes ADD COLUMN contract_stage TEXT",
        """UPDATE stage_changes SET contract_stage = substr(why, instr(why, 'contract says ') + 14)
           WHERE cause = 'contract' AND instr(why, 'contract says ') > 0""",
    ],
]
