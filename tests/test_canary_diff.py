"""Where a canary differs from its baseline: features by share of tasks, largest differences first."""

from __future__ import annotations

import json

from agentdeck.console.cli import main
from agentdeck.store import canary_diff
from agentdeck.store.db import connect


def test_the_sample_canary_is_fooled_more_and_fails_more_refunds(sample_db):
    report = canary_diff.differences(connect(sample_db), "approval-agent", "v1", "v2", top=50)
    assert (report.n_baseline, report.n_canary) == (317, 86)
    found = {(d.kind, d.feature): d for d in report.differences}
    # v2 follows instructions hidden in tool output: the injection policy denies it less often.
    inject = found[("policy", "POL-INJECT-1: deny")]
    assert inject.canary_share < inject.baseline_share and inject.p < 0.05
    refunds = found[("action", "payments.refund failed")]
    assert refunds.canary_share > refunds.baseline_share
    # Largest differences first; every example shows the feature in its own version.
    deltas = [abs(d.delta) for d in report.differences]
    assert deltas == sorted(deltas, reverse=True)
    conn = connect(sample_db)
    for d in (inject, refunds):
        for task, version in ((d.baseline_example, "v1"), (d.canary_example, "v2")):
            assert conn.execute("SELECT version FROM tasks WHERE task_id = ?", (task,)).fetchone()[0] == version


def test_shares_count_tasks_not_events(sample_db):
    conn = connect(sample_db)
    ids = [r[0] for r in conn.execute("SELECT task_id FROM tasks WHERE agent = 'approval-agent' AND version = 'v1'")]
    features = canary_diff.task_features(conn, ids)
    with_lookup = sum(1 for fs in features.values() if ("tool", "iam.lookup_user") in fs)
    report = canary_diff.differences(conn, "approval-agent", "v1", "v2", top=100)
    d = next(d for d in report.differences if (d.kind, d.feature) == ("tool", "iam.lookup_user"))
    assert d.baseline_tasks == with_lookup and d.baseline_share == with_lookup / len(ids)


def test_the_gate_lists_them_in_text_and_json(sample_db, capsys):
    args = ["canary", "--db", str(sample_db), "--agent", "approval-agent", "--baseline", "v1", "--canary", "v2"]
    main(args)
    out = capsys.readouterr().out
    assert "Where the versions differ" in out and "POL-INJECT-1: deny" in out
    main([*args, "--json", "--differences", "3"])
    data = json.loads(capsys.readouterr().out)
    assert len(data["differences"]) == 3 and {"feature", "delta", "canary_example"} <= set(data["differences"][0])
