"""Canary verdicts on the sample data and on synthetic stores, and the release gate's exit codes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from agentdeck.console.cli import main
from agentdeck.store import canary
from agentdeck.store.contract import CanarySettings, Contract, MetricSetting
from agentdeck.store.db import connect

NOW = 1_800_000_000.0


def synthetic_store(path: Path, cohorts: dict[str, dict], *, agent: str = "synth", seed: int = 1) -> Path:
    """Tasks rows for each version, drawn from the given distribution parameters."""
    rng = random.Random(seed)
    conn = connect(path)
    rows = []
    for version, p in cohorts.items():
        for i in range(p.get("n", 600)):
            started = NOW - rng.uniform(60, p.get("spread", 3000))
            failed = rng.random() < p.get("fail", 0.04)
            latency = rng.lognormvariate(7.6, 0.4) * p.get("slow", 1.0)
            rows.append((
                f"{version}-{i}", agent, version, "canary" if version == "v2" else "baseline", "bounded",
                started, started + latency / 1000, int(failed), int(rng.random() < 0.02), 1,
                int(rng.random() < 0.3), rng.randint(1, 3), int(rng.random() < 0.03),
                int(rng.random() < 0.1), rng.randint(900, 2600), rng.uniform(0.005, 0.012), latency,
                "failed" if failed else "success",
            ))
    conn.execute("BEGIN")
    conn.executemany(
        """INSERT INTO tasks (task_id, agent, version, cohort, stage, started, ended, actions_failed, compensations,
           actions, escalations, tool_calls, retries, policy_denials, tokens, cost_usd, latency_ms, outcome)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        rows,
    )
    conn.execute("COMMIT")
    conn.close()
    return path


def verdicts(report):
    return {m.key: m.verdict for m in report.metrics}


def test_sample_canary_is_rolled_back_for_action_errors_and_latency(sample_db, fixed_clock):
    conn = connect(sample_db)
    report = canary.analyse(conn, "approval-agent", "v1", "v2", window="all", now=fixed_clock(), method="fixed")
    v = verdicts(report)
    assert v["action_error_rate"] == canary.ROLLBACK
    assert v["latency"] == canary.ROLLBACK
    assert report.verdict == canary.ROLLBACK
    assert report.reason.startswith("action errors worse")
    errors = report.metric("action_error_rate")
    assert errors.canary > errors.baseline and errors.interval[0] > 0
    assert report.n_baseline == 317 and report.n_canary == 86


def test_equal_cohorts_are_promoted(tmp_path):
    db = synthetic_store(tmp_path / "s.db", {"v1": {}, "v2": {}})
    report = canary.analyse(connect(db), "synth", "v1", "v2", window="1h", now=NOW, method="fixed")
    assert canary.ROLLBACK not in verdicts(report).values()
    assert report.verdict == canary.PROMOTE, report.reason


def test_a_slower_canary_has_latency_rolled_back_but_alone_only_holds(tmp_path):
    db = synthetic_store(tmp_path / "s.db", {"v1": {}, "v2": {"slow": 1.4}})
    report = canary.analyse(connect(db), "synth", "v1", "v2", window="1h", now=NOW, method="fixed")
    assert verdicts(report)["latency"] == canary.ROLLBACK
    assert verdicts(report)["action_error_rate"] == canary.PROMOTE
    assert report.verdict == canary.HOLD  # latency is weighty but not critical by default
    critical = Contract(agent="synth", canary=CanarySettings(metrics={"latency": MetricSetting(critical=True)}))
    report = canary.analyse(connect(db), "synth", "v1", "v2", window="1h", now=NOW, contract=critical, method="fixed")
    assert report.verdict == canary.ROLLBACK and report.reason.startswith("latency worse")


def test_more_failures_roll_back(tmp_path):
    db = synthetic_store(tmp_path / "s.db", {"v1": {}, "v2": {"fail": 0.15}})
    report = canary.analyse(connect(db), "synth", "v1", "v2", window="1h", now=NOW, method="fixed")
    assert report.verdict == canary.ROLLBACK
    assert verdicts(report)["action_error_rate"] == canary.ROLLBACK


def test_too_few_tasks_is_not_enough_data(tmp_path):
    db = synthetic_store(tmp_path / "s.db", {"v1": {}, "v2": {"n": 12, "fail": 0.5}})
    report = canary.analyse(connect(db), "synth", "v1", "v2", window="1h", now=NOW)
    assert report.verdict == canary.HOLD
    assert "not enough data" in report.reason and "12 tasks" in report.reason
    assert all(m.verdict in (canary.HOLD, canary.INFO) for m in report.metrics)


def test_direction_none_is_shown_but_not_gating(tmp_path):
    db = synthetic_store(tmp_path / "s.db", {"v1": {}, "v2": {"fail": 0.15}})
    relaxed = Contract(agent="synth", canary=CanarySettings(metrics={
        "action_error_rate": MetricSetting(direction="none")}))
    report = canary.analyse(connect(db), "synth", "v1", "v2", window="1h", now=NOW, contract=relaxed, method="fixed")
    assert verdicts(report)["action_error_rate"] == canary.INFO
    assert report.verdict == canary.PROMOTE


def test_window_only_counts_recent_tasks(tmp_path):
    db = synthetic_store(tmp_path / "s.db", {"v1": {"spread": 7200}, "v2": {"spread": 7200}})
    conn = connect(db)
    hour = canary.analyse(conn, "synth", "v1", "v2", window="1h", now=NOW)
    quarter = canary.analyse(conn, "synth", "v1", "v2", window="15m", now=NOW)
    everything = canary.analyse(conn, "synth", "v1", "v2", window="all", now=NOW)
    expected = conn.execute("SELECT count(*) FROM tasks WHERE version = 'v1' AND started >= ?", (NOW - 3600,)).fetchone()[0]
    assert hour.n_baseline == expected
    assert quarter.n_baseline < hour.n_baseline < everything.n_baseline == 600


def test_tasks_behind_a_metric(sample_db, fixed_clock):
    conn = connect(sample_db)
    report = canary.analyse(conn, "approval-agent", "v1", "v2", window="all", now=fixed_clock())
    rows = canary.tasks_behind(conn, report, "action_error_rate")
    errors = report.metric("action_error_rate")
    assert len(rows) == round(errors.baseline * 317) + round(errors.canary * 86)
    assert rows[0]["version"] == "v2"
    assert all(r["actions_failed"] or r["compensations"] or r["violations"] for r in rows)
    slow = canary.tasks_behind(conn, report, "latency")
    canary_lat = [r["latency_ms"] for r in slow if r["version"] == "v2"]
    assert canary_lat == sorted(canary_lat, reverse=True)


def test_pairs_from_the_declared_cohorts(sample_db):
    pairs = canary.pairs(connect(sample_db))
    assert [(p.agent, p.baseline, p.canary) for p in pairs] == [
        ("approval-agent", "v1", "v2"), ("records-agent", "v1", "v2")]


def test_pairs_are_read_from_an_index_alone(sample_db):
    """The release tick reads every agent's versions and cohorts while a fleet writes: on a big store a row
    lookup per task made it a core's work for up to a second each tick (bench/README.md)."""
    plan = " ".join(row[3] for row in connect(sample_db).execute("EXPLAIN QUERY PLAN " + canary.PAIRS_SQL))
    assert "COVERING INDEX tasks_cohorts" in plan and "TEMP B-TREE" not in plan, plan


def test_stage_comes_from_the_contract(sample_db):
    conn = connect(sample_db)
    shadow = Contract(agent="approval-agent", versions={"v2": "shadow"})
    report = canary.analyse(conn, "approval-agent", "v1", "v2", now=0, window="all", contract=shadow)
    assert (report.stage_baseline, report.stage_canary) == ("bounded", "shadow")


# -- agentdeck canary ------------------------------------------------------------


def gate(db, *extra, method="fixed"):
    return main(["canary", "--db", str(db), "--agent", extra[0], "--baseline", "v1", "--canary", "v2",
                 "--now", str(NOW), "--method", method, *extra[1:]])


def test_gate_exit_codes(tmp_path, sample_db, capsys):
    equal = synthetic_store(tmp_path / "eq.db", {"v1": {}, "v2": {}})
    few = synthetic_store(tmp_path / "few.db", {"v1": {}, "v2": {"n": 5}})
    assert gate(equal, "synth") == 0
    assert gate(few, "synth") == 1
    assert main(["canary", "--db", str(sample_db), "--agent", "approval-agent", "--baseline", "v1",
                 "--canary", "v2", "--window", "all", "--method", "fixed"]) == 2
    out = capsys.readouterr().out
    assert "ROLL BACK" in out and "action errors" in out and "[+8.3, +24.7]" in out


def test_gate_errors_exit_3(tmp_path, sample_db, capsys):
    assert gate(tmp_path / "missing.db", "synth") == 3
    assert "no store" in capsys.readouterr().err
    assert main(["canary", "--db", str(sample_db), "--agent", "approval-agent", "--baseline", "v1",
                 "--canary", "v9", "--window", "all"]) == 3
    assert "versions of approval-agent: v1, v2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["canary", "--db", str(sample_db), "--agent", "approval-agent", "--baseline", "v1"])
    assert exc.value.code == 3
    with pytest.raises(SystemExit) as exc:
        main(["canary", "--db", str(sample_db), "--agent", "a", "--baseline", "v1", "--canary", "v2", "--window", "2d"])
    assert exc.value.code == 3


def test_gate_json(tmp_path, capsys):
    db = synthetic_store(tmp_path / "eq.db", {"v1": {}, "v2": {}})
    assert gate(db, "synth", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "promote" and data["n_baseline"] == 600
    assert {m["key"] for m in data["metrics"]} == {m.key for m in canary.DEFAULT_METRICS}


def test_zero_baseline_median_gives_an_unbounded_change_and_valid_json(tmp_path):
    db = synthetic_store(tmp_path / "s.db", {"v1": {}, "v2": {}})
    conn = connect(db)
    conn.execute("UPDATE tasks SET tool_calls = 0 WHERE version = 'v1'")
    report = canary.analyse(conn, "synth", "v1", "v2", window="all", now=NOW, method="fixed")
    calls = report.metric("tool_calls")
    assert calls.baseline == 0 and calls.delta == float("inf") and calls.verdict == canary.ROLLBACK
    data = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert next(m for m in data["metrics"] if m["key"] == "tool_calls")["delta"] is None


def test_a_window_ends_at_now_so_a_past_decision_can_be_reproduced(tmp_path):
    db = synthetic_store(tmp_path / "s.db", {"v1": {"spread": 7200}, "v2": {"spread": 7200}})
    conn = connect(db)
    earlier = canary.analyse(conn, "synth", "v1", "v2", window="1h", now=NOW - 3600)
    expected = conn.execute("SELECT count(*) FROM tasks WHERE version = 'v1' AND started BETWEEN ? AND ?",
                            (NOW - 7200, NOW - 3600)).fetchone()[0]
    assert earlier.n_baseline == expected
    assert all(r["started"] <= NOW - 3600 for r in canary.tasks_behind(conn, earlier, "latency"))
