"""The retention rules, over generated stores: every task is removed or kept, for the right reason."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agentdeck.store import decisions
from agentdeck.store.db import connect
from agentdeck.store.events import parse_event
from agentdeck.store.ingest import apply_batch
from agentdeck.store.retention import (
    KEEP_NOTABLE, KEEP_PENDING, KEEP_RECENT, KEEP_UNDELIVERED, RetentionPolicy, plan,
)
from test_prune_support import DAY, task_lines

NOW = 1_900_000_000.0
KINDS = ("plain", "relayed", "action", "pending", "undelivered")


@settings(max_examples=60, deadline=None)
@given(tasks=st.lists(st.tuples(st.integers(0, 800), st.sampled_from(KINDS)), min_size=1, max_size=12),
       raw=st.integers(1, 100), extra=st.integers(0, 400))
def test_every_task_is_removed_or_kept_for_the_reason_the_rules_give(tasks, raw, extra):
    policy = RetentionPolicy(raw_days=raw, notable_days=raw + extra)
    conn = connect(":memory:")
    try:
        expected_gone, expected_kept = set(), {}
        for i, (age, kind) in enumerate(tasks):
            tid = f"t{i}"
            start = NOW - (age + 0.5) * DAY  # never exactly on a limit
            lines = task_lines(tid, start, escalation={"relayed": "approve", "pending": "pending",
                                                       "undelivered": "pending"}.get(kind),
                               action=kind == "action")
            apply_batch(conn, None, [(parse_event(line), line) for line in lines], [])
            if kind == "undelivered":  # decided in the console just after it was raised, never delivered
                decisions.decide(conn, f"esc-{tid}", "deny", by="maria", reason="no", now=start + 20)
            newest = start + len(lines)  # the task_end, or the console's decision, whichever is later
            if newest >= NOW - raw * DAY:  # recent: kept, whatever else is true of it
                expected_kept[tid] = KEEP_RECENT
            elif kind == "pending":  # unfinished: kept whatever its age
                expected_kept[tid] = KEEP_PENDING
            elif kind == "undelivered":
                expected_kept[tid] = KEEP_UNDELIVERED
            elif kind == "plain":
                if newest < NOW - raw * DAY:
                    expected_gone.add(tid)
                else:
                    expected_kept[tid] = KEEP_RECENT
            elif newest < NOW - (raw + extra) * DAY:
                expected_gone.add(tid)
            else:
                expected_kept[tid] = KEEP_NOTABLE if newest < NOW - raw * DAY else KEEP_RECENT
        p = plan(conn, policy, NOW)
        assert {c.task_id for c in p.remove} == expected_gone
        want: dict[str, int] = {}
        for reason in expected_kept.values():
            want[reason] = want.get(reason, 0) + 1
        assert dict(p.kept) == want
    finally:
        conn.close()
