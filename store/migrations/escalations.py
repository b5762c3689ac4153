"""Escalations area: what the console needs to deliver a decision exactly once.

The core ``escalations`` table holds the decision and the delivery state
(pending, delivered, failed, blocked). These columns add the idempotency key
sent with every delivery, when the outbox line was written (so a restart does
not write it twice), when the delivery succeeded, and a short claim so two
consoles on one store do not deliver the same decision at the same moment.
"""

MIGRATIONS: list[list[str]] = [
    [
        "ALTER TABLE escalations ADD COLUMN idempotency_key TEXT",
        "ALTER TABLE escalations ADD COLUMN outbox_at REAL",
        "ALTER TABLE escalations ADD COLUMN delivered_at REAL",
        "ALTER TABLE escalations ADD COLUMN delivery_claimed_until REAL",
        # Startup re-delivery looks for what is still pending.
        "CREATE INDEX escalations_delivery ON escalations(delivery) WHERE delivery IS NOT NULL",
        # The history view lists the most recent decisions first.
        "CREATE INDEX escalations_decided ON escalations(decided_at)",
    ],
    [
        # Set just before the outbox append: only a decision whose append may
        # have happened without being recorded needs the (whole-file) key check.
        "ALTER TABLE escalations ADD COLUMN outbox_intent REAL",
    ],
]

MIGRATIONS.append([
    # Who was at the keyboard (store/origin.py): the OS account and the SSH
    # client address of whoever made the decision.
    "ALTER TABLE escalations ADD COLUMN decided_os_user TEXT",
    "ALTER TABLE escalations ADD COLUMN decided_ssh_client TEXT",
    # Two-person rule (store/approvers.py): the first approval, recorded while
    # the escalation stays pending until a second, different approver confirms.
    "ALTER TABLE escalations ADD COLUMN first_approved_by TEXT",
    "ALTER TABLE escalations ADD COLUMN first_approved_at REAL",
    "ALTER TABLE escalations ADD COLUMN first_approved_os_user TEXT",
    "ALTER TABLE escalations ADD COLUMN first_approved_ssh_client TEXT",
    "ALTER TABLE escalations ADD COLUMN first_approval_reason TEXT",
])
