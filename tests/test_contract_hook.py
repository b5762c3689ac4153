"""Contract checks on ingest (the post-commit hook) and headless (`agentdeck check`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentdeck.console.cli import main
from agentdeck.store import contract as ct
from agentdeck.store.db import connect
from agentdeck.store.tailer import Tailer

T0 = "2026-11-24T10:00:00.000Z"
CONTRACT = """
agent = "pay-bot"
[versions]
v1 = "bounded"
[tools]
allow = ["orders.lookup"]
[actions."payments.refund"]
max_amount = 100
[done]
require_events = ["plan"]
action_evidence = ["justification"]
"""


def task_events(task_id: str, *, amount: float = 50.0, tool: str = "orders.lookup", escalate: bool = False,
                agent: str = "pay-bot") -> list[dict]:
    base = {"v": 1, "ts": T0, "task_id": task_id}
    evs = [
        {"kind": "task_start", "request_id": f"r-{task_id}", "agent": agent, "agent_version": {"id": "v1"}},
        {"kind": "plan", "summary": "refund"},
        {"kind": "tool_call", "call_id": "c1", "tool": tool},
    ]
    if escalate:
        evs.append({"kind": "escalation", "escalation_id": f"e-{task_id}", "risk": "high", "reason": "big",
                    "deadline": "2026-11-24T11:00:00Z",
                    "proposed_action": {"system": "payments", "operation": "refund", "amount": amount}})
        evs.append(None)  # the decision's place: written by the caller, maybe elsewhere
    evs.append({"kind": "action", "action_id": f"a-{task_id}", "system": "payments", "operation": "refund",
                "amount": amount, "justification": "asked"})
    evs.append({"kind": "task_end", "outcome": "success"})
    return [dict(base, seq=i, **e) if e else {"seq": i} for i, e in enumerate(evs)]


def decision(task_id: str, seq: int, verdict: str = "approve") -> dict:
    return {"v": 1, "ts": T0, "task_id": task_id, "seq": seq, "kind": "decision",
            "escalation_id": f"e-{task_id}", "decision": verdict, "decided_by": "ann"}


def write_jsonl(path: Path, events: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for e in events:
            if e.get("kind"):
                f.write(json.dumps(e) + "\n")
    return path


@pytest.fixture
def traces(tmp_path) -> Path:
    folder = tmp_path / "traces"
    (folder / "contracts").mkdir(parents=True)
    (folder / "contracts" / "pay-bot.toml").write_text(CONTRACT)
    return folder


def violations(conn, task_id):
    return [(r["seq"], r["rule"]) for r in ct.task_violations(conn, task_id)]


def count(conn, task_id):
    return conn.execute("SELECT violations FROM tasks WHERE task_id = ?", (task_id,)).fetchone()[0]


def test_sample_store_records_the_canary_violation(sample_db):
    conn = connect(sample_db)
    assert violations(conn, "task-0304") == [(6, ct.UNAPPROVED_ACTION)]
    assert count(conn, "task-0304") == 1
    # tasks.violations is the row count, for every task.
    mismatch = conn.execute(
        """SELECT count(*) FROM tasks t WHERE violations != (SELECT count(*) FROM violations v WHERE v.task_id = t.task_id)"""
    ).fetchone()[0]
    assert mismatch == 0
    assert conn.execute("SELECT count(*) FROM violations WHERE version = 'v1'").fetchone()[0] == 0


def test_contracts_beside_the_traces_are_used(traces, tmp_path):
    write_jsonl(traces / "a.jsonl", task_events("t-ok") + task_events("t-tool", tool="shell.exec")
                + task_events("t-big", amount=150) + task_events("t-nocontract", agent="other", tool="x"))
    conn = connect(tmp_path / "s.db")
    Tailer(conn, [traces]).poll()
    assert violations(conn, "t-ok") == []
    assert violations(conn, "t-tool") == [(2, ct.TOOL_NOT_ALLOWED)]
    assert violations(conn, "t-big") == [(3, ct.UNAPPROVED_ACTION)]
    assert violations(conn, "t-nocontract") == []


def test_late_decision_clears_the_violation_and_recheck_is_idempotent(traces, tmp_path):
    write_jsonl(traces / "agent.jsonl", task_events("t1", amount=150, escalate=True))
    conn = connect(tmp_path / "s.db")
    tailer = Tailer(conn, [traces])
    tailer.poll()
    assert violations(conn, "t1") == [(5, ct.UNAPPROVED_ACTION)] and count(conn, "t1") == 1
    write_jsonl(traces / "relay.jsonl", [decision("t1", 4)])  # the approval arrives later, in another file
    tailer.poll()
    assert violations(conn, "t1") == [] and count(conn, "t1") == 0
    book = ct.load_book([traces / "contracts"])
    ct.recheck(conn, book, ["t1"])
    ct.recheck(conn, book, ["t1"])
    assert conn.execute("SELECT count(*) FROM violations").fetchone()[0] == 0


def test_denied_decision_keeps_the_violation(traces, tmp_path):
    write_jsonl(traces / "agent.jsonl", task_events("t1", amount=150, escalate=True) + [decision("t1", 4, "deny")])
    conn = connect(tmp_path / "s.db")
    Tailer(conn, [traces]).poll()
    assert violations(conn, "t1") == [(5, ct.UNAPPROVED_ACTION)]


def test_a_broken_contract_file_does_not_stop_ingestion(traces, tmp_path):
    (traces / "contracts" / "zz-broken.toml").write_text("agent = [")
    write_jsonl(traces / "a.jsonl", task_events("t-tool", tool="shell.exec"))
    conn = connect(tmp_path / "s.db")
    Tailer(conn, [traces]).poll()
    assert violations(conn, "t-tool") == [(2, ct.TOOL_NOT_ALLOWED)]


# -- agentdeck check -------------------------------------------------------------


def test_check_passes_clean_scenarios(traces, capsys):
    write_jsonl(traces / "ok-1.jsonl", task_events("t-ok"))
    write_jsonl(traces / "nested" / "ok-2.jsonl", task_events("t-ok2", amount=150, escalate=True) + [decision("t-ok2", 4)])
    assert main(["check", str(traces)]) == 0
    out = capsys.readouterr().out
    assert "2 tasks" in out and "no violations" in out


def test_check_fails_and_names_the_step(traces, capsys):
    bad = write_jsonl(traces / "incident-42.jsonl", task_events("t-big", amount=150))
    write_jsonl(traces / "ok.jsonl", task_events("t-ok"))
    assert main(["check", str(traces)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}: task t-big seq 3 {ct.UNAPPROVED_ACTION}:" in out
    assert "1 violation in 1 of 2 tasks" in out


def test_check_with_explicit_contracts_folder(tmp_path, capsys):
    scenarios = tmp_path / "scenarios"
    write_jsonl(scenarios / "s.jsonl", task_events("t-tool", tool="shell.exec"))
    assert main(["check", str(scenarios)]) == 0  # no contract for pay-bot anywhere: unchecked
    assert "no contract for agent pay-bot" in capsys.readouterr().err
    assert main(["check", str(scenarios), "--strict"]) == 1
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "c.toml").write_text(CONTRACT)
    assert main(["check", str(scenarios), "--contracts", str(mine)]) == 1


def test_check_usage_errors(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    broken = tmp_path / "c"
    broken.mkdir()
    (broken / "x.toml").write_text("agent = [")
    write_jsonl(tmp_path / "s.jsonl", task_events("t"))
    assert main(["check", str(tmp_path / "s.jsonl"), "--contracts", str(broken)]) == 2
    assert "bad TOML" in capsys.readouterr().err


def test_check_reports_unreadable_lines(tmp_path, capsys):
    path = write_jsonl(tmp_path / "s.jsonl", task_events("t", agent="approval-agent", tool="iam.lookup_user"))
    with path.open("a") as f:
        f.write('{"v": 1, "kind": "teleport"}\n')
    assert main(["check", str(path)]) == 1
    assert "rejected line" in capsys.readouterr().out


def test_check_store_applies_a_changed_contract_to_stored_tasks(traces, tmp_path, capsys):
    write_jsonl(traces / "a.jsonl", task_events("t-big", amount=150))
    db = tmp_path / "s.db"
    conn = connect(db)
    Tailer(conn, [traces]).poll()
    assert count(conn, "t-big") == 1
    (traces / "contracts" / "pay-bot.toml").write_text(CONTRACT.replace("max_amount = 100", "max_amount = 1000"))
    assert main(["check", "--store", "--db", str(db)]) == 0
    assert count(conn, "t-big") == 0 and violations(conn, "t-big") == []
    assert "1 tasks in" in capsys.readouterr().out


def test_an_exported_incident_becomes_a_failing_check(sample_db, tmp_path, capsys):
    folder = tmp_path / "incidents"
    folder.mkdir()
    assert main(["evidence", "task-0304", "--db", str(sample_db), "--format", "scenario",
                 "-o", str(folder / "incident-0304.jsonl")]) == 0
    assert main(["evidence", "task-0001", "--db", str(sample_db), "--format", "scenario",
                 "-o", str(folder / "fine-0001.jsonl")]) == 0
    capsys.readouterr()
    assert main(["check", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "incident-0304.jsonl: task task-0304 seq 6 unapproved_action" in out
    assert "fine-0001" not in out
