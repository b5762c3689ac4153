"""An agent's decision lands on its escalation the same whatever the batch boundaries.

A batch writes an escalation already decided when the decision is in the
same batch (store/ingest.py ``_fold_decisions``), and applies it with an
update otherwise. Both must give the rule an operator relies on: the first
decision on a pending escalation wins, and one the console already decided
keeps the console's. (Before, a decision stored ahead of its escalation was
skipped when a later one came in the escalation's batch: the outcome
depended on where batches were cut.)
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentdeck.store.db import connect
from agentdeck.store.events import parse_event
from agentdeck.store.ingest import apply_batch

ESCALATIONS = ("e1", "e2", "e3")


def _task(eid: str) -> str:
    return f"t-{eid}"


def _event(i: int, item: tuple) -> tuple:
    kind, eid, detail = item
    envelope = {"v": 1, "ts": f"2026-11-24T09:{i // 60:02d}:{i % 60:02d}Z", "task_id": _task(eid), "seq": i}
    if kind == "escalation":
        fields = {"kind": "escalation", "escalation_id": eid, "risk": "high", "reason": f"r{i}",
                  "deadline": "2026-11-24T10:00:00Z", "proposed_action": {"system": "iam", "operation": "grant"}}
    else:
        fields = {"kind": "decision", "escalation_id": eid, "decision": detail, "decided_by": f"agent-{i}",
                  "reason": f"because {i}"}
    raw = json.dumps({**envelope, **fields})
    return parse_event(raw), raw


items = st.lists(
    st.tuples(st.sampled_from(("escalation", "decision")), st.sampled_from(ESCALATIONS),
              st.sampled_from(("approve", "deny", "expire"))),
    min_size=1, max_size=12,
)


def _store(path, console_decided: bool, batches: list[list[tuple]]) -> list[tuple]:
    conn = connect(path)
    if console_decided:  # e3 decided in the console before anything arrived
        conn.execute(
            """INSERT INTO escalations (escalation_id, task_id, seq, ts, risk, risk_rank, deadline, proposed_action,
               status, decided_by, decided_at, decision_reason)
               VALUES ('e3', 't-e3', 0, 1.0, 'high', 2, 2.0, '{}', 'denied', 'alice', 5.0, 'console says no')""")
    for batch in batches:
        apply_batch(conn, None, batch, [])
    rows = [tuple(r) for r in conn.execute(
        """SELECT escalation_id, task_id, status, decided_by, decided_at, decision_reason
           FROM escalations ORDER BY escalation_id""")]
    conn.close()
    return rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=items, console_decided=st.booleans(), cut=st.integers(0, 12))
def test_first_decision_wins_whatever_the_batches(tmp_path_factory, items, console_decided, cut):
    events = [_event(i, item) for i, item in enumerate(items)]
    folder = tmp_path_factory.mktemp("d")
    one_batch = _store(folder / "one.db", console_decided, [events])
    one_each = _store(folder / "each.db", console_decided, [[e] for e in events])
    split = _store(folder / "split.db", console_decided, [events[:cut], events[cut:]])
    assert one_batch == one_each == split
    # And the rule itself: the first decision in arrival order on an escalation
    # that exists once all arrived wins, unless the console decided first.
    for eid, _task_id, status, by, _at, reason in one_batch:
        if console_decided and eid == "e3":
            assert (status, by, reason) == ("denied", "alice", "console says no")
            continue
        first = next(((i, d) for i, (k, e, d) in enumerate(items) if k == "decision" and e == eid), None)
        if first is None:
            assert status == "pending" and by is None
        else:
            i, decision = first
            assert status == {"approve": "approved", "deny": "denied"}.get(decision, "expired")
            assert (by, reason) == (f"agent-{i}", f"because {i}")
