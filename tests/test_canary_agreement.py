"""Shadow agreement: how often people approve what a version proposes, and the promotion rule on it."""

from __future__ import annotations

from agentdeck.store import canary
from agentdeck.store.agreement import agreement
from agentdeck.store.contract import CanarySettings, Contract
from agentdeck.store.db import connect

from test_canary_verdicts import NOW, synthetic_store


def _escalations(conn, version: str, approved: int, denied: int, expired: int = 0) -> None:
    tasks = [r[0] for r in conn.execute("SELECT task_id FROM tasks WHERE version = ? ORDER BY task_id", (version,))]
    rows = []
    statuses = ["approved"] * approved + ["denied"] * denied + ["denied"] * expired
    for i, (task, status) in enumerate(zip(tasks, statuses)):
        by = "expiry-policy" if i >= approved + denied else "alice"
        rows.append((f"esc-{version}-{i}", task, 1, NOW, "synth", "high", 3, NOW + 900, "{}", status, by, NOW))
    conn.execute("BEGIN")
    conn.executemany(
        """INSERT INTO escalations (escalation_id, task_id, seq, ts, agent, risk, risk_rank, deadline,
           proposed_action, status, decided_by, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", rows)
    conn.execute("COMMIT")


def test_only_human_decisions_count(tmp_path):
    conn = connect(synthetic_store(tmp_path / "s.db", {"v1": {}, "v2": {}}))
    _escalations(conn, "v2", approved=45, denied=5, expired=30)
    a = agreement(conn, "synth", "v2")
    assert (a.approved, a.decisions) == (45, 50) and a.rate == 0.9
    lo, hi = a.interval
    assert lo < 0.9 < hi
    assert "approved 45 of 50 proposals (90%" in a.describe()


def test_the_promotion_rule_holds_a_promotion_until_people_agree_often_enough(tmp_path):
    db = synthetic_store(tmp_path / "s.db", {"v1": {"n": 4000}, "v2": {"n": 4000}})
    conn = connect(db)
    strict = Contract(agent="synth", canary=CanarySettings(promote_agreement=0.9, agreement_min_decisions=100))
    assert canary.analyse(conn, "synth", "v1", "v2", window="1h", now=NOW).verdict == canary.PROMOTE
    _escalations(conn, "v2", approved=60, denied=20)  # 75%, and only 80 decisions
    report = canary.analyse(conn, "synth", "v1", "v2", window="1h", now=NOW, contract=strict)
    assert report.verdict == canary.HOLD and "shadow agreement rule not met" in report.reason
    conn.execute("DELETE FROM escalations")
    _escalations(conn, "v2", approved=395, denied=5)  # 98.75% of 400: the lower bound clears 90%
    report = canary.analyse(conn, "synth", "v1", "v2", window="1h", now=NOW, contract=strict)
    assert report.verdict == canary.PROMOTE
    assert "promotion rule ≥90% over ≥100 decisions (lower bound): met" in report.agreement["v2"]


def test_the_sample_versions_agreement_is_reported(sample_db, fixed_clock):
    report = canary.analyse(connect(sample_db), "approval-agent", "v1", "v2", window="all", now=fixed_clock())
    assert set(report.agreement) == {"v1", "v2"}
    assert "people approved" in report.agreement["v2"]
