"""The regression suite: run an agent on cases, judge each run, report it for people and CI."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from agentdeck.console.cli import main
from agentdeck.replay.suite import report, runner
from agentdeck.replay.suite.case import Case, load_suite

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "sample_data" / "suite"
HELPERS = Path(__file__).resolve().parent / "suite_agents.py"
V1 = f"{sys.executable} -m agentdeck.sample_data.suite_agent --version v1"
V2 = f"{sys.executable} -m agentdeck.sample_data.suite_agent --version v2"


def helper(mode: str) -> str:
    return f"{sys.executable} {HELPERS} {mode}"


def one_case(**changes) -> Case:
    case = json.loads((SUITE / "clean-04.json").read_text())  # refund 120.50 EUR to dinesh: v1 acts
    for key, value in changes.items():
        target = case
        *path, last = key.split("__")
        for p in path:
            target = target[p]
        target[last] = value
    return Case.model_validate(case)


def run_one(case: Case, tmp_path: Path, command: str = V1, **kw) -> runner.CaseResult:
    return runner.run_suite(command, [case], tmp_path / "out", **kw).results[0]


def test_the_bundled_top_30_is_10_clean_10_ambiguous_10_adversarial():
    cases, problems = load_suite(SUITE)
    assert not problems
    assert [sum(c.flavour == f for c in cases) for f in ("clean", "ambiguous", "adversarial")] == [10, 10, 10]


def test_a_case_passes_and_its_trace_is_kept(tmp_path):
    result = run_one(one_case(), tmp_path)
    assert result.passed, result.reason
    trace = result.runs[0].trace
    assert trace.exists() and '"kind": "action"' in trace.read_text()


@pytest.mark.parametrize("changes, reason", [
    ({"expect__outcome": "escalate"}, "expected escalate, agent acted: payments.refund"),
    ({"expect__must_not": [{"action": "payments.refund", "params": {"user": "dinesh"}}]}, "must not happen: payments.refund"),
    ({"expect__limits": {"max_amount": 100.0}}, "moved 120.5, above the case's limit 100"),
    ({"expect__limits": {"systems": ["crm"]}}, "system payments outside crm"),
    ({"expect__evidence": ["plan", "reasoning"]}, "trace lacks reasoning"),
])
def test_each_expectation_kind_fails_a_run_that_breaks_it(tmp_path, changes, reason):
    result = run_one(one_case(**changes), tmp_path)
    assert not result.passed
    assert reason in result.reason


def test_a_contract_violation_fails_the_run(tmp_path):
    contracts = tmp_path / "contracts"
    shutil.copytree(ROOT / "sample_data" / "contracts", contracts)
    path = contracts / "approval-agent.toml"
    path.write_text(path.read_text().replace("max_amount = 500.0", "max_amount = 100.0"))
    result = run_one(one_case(), tmp_path, contract_dirs=[contracts])
    assert "contract: seq" in result.reason and "unapproved_action" in result.reason


def test_a_hung_agent_is_killed_at_the_timeout_and_fails(tmp_path):
    result = run_one(one_case(), tmp_path, helper("hang"), timeout=1.0)
    assert not result.passed and result.reason.startswith("timed out")
    assert result.runs[0].seconds < 15


def test_a_tool_call_the_case_does_not_cover_fails_and_nothing_live_is_called(tmp_path):
    result = run_one(one_case(), tmp_path, helper("uncovered"))
    assert "tool call the case does not cover: shell.exec" in result.reason


def test_an_agent_that_crashes_or_breaks_the_protocol_fails(tmp_path):
    assert "agent exited 3" in run_one(one_case(), tmp_path, helper("crash")).reason
    assert "protocol: not a JSON line" in run_one(one_case(), tmp_path, helper("garbage")).reason


def test_a_flaky_case_shows_as_flaky_with_its_pass_rate(tmp_path):
    case = Case.model_validate(json.loads((SUITE / "adversarial-01.json").read_text()))
    result = run_one(case, tmp_path, helper("flaky"), repeat=4)
    assert (result.passes, len(result.runs)) == (2, 4) and result.flaky and not result.passed
    lo, hi = result.interval()
    assert 0 < lo < 0.5 < hi < 1


def test_v2_regresses_on_adversarial_cases_hidden_in_tool_output(tmp_path):
    cases, _ = load_suite(SUITE)
    cases = [c for c in cases if c.flavour == "adversarial"]
    base = runner.run_suite(V1, cases, tmp_path / "v1", jobs=2)
    cand = runner.run_suite(V2, cases, tmp_path / "v2", jobs=2)
    regressed, improved = runner.compare(base, cand)
    hidden = {c.id for c in cases if any("notes" in (t.output or {}) for t in c.tools)}
    assert set(regressed) == hidden and len(hidden) == 6 and improved == []


def test_junit_output_is_accepted_by_a_junit_parser(tmp_path):
    from junitparser import Failure, JUnitXml

    case = one_case(expect__outcome="deny")
    case = case.model_copy(update={"id": "bad\x1b[31m-case"})
    result = runner.run_suite(V1, [one_case(), case], tmp_path / "out")
    path = tmp_path / "junit.xml"
    report.write_junit(result, path)
    xml = JUnitXml.fromfile(str(path))
    cases = [c for suite in xml for c in suite]
    assert len(cases) == 2
    failed = [c for c in cases if not c.is_passed]
    assert len(failed) == 1 and isinstance(failed[0].result[0], Failure)
    assert "expected deny" in failed[0].result[0].message


def test_the_cli_exit_codes_json_and_table(tmp_path, capsys):
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(SUITE / "clean-04.json", suite)
    shutil.copy(SUITE / "adversarial-01.json", suite)
    args = ["suite", "run", str(suite), "--out", str(tmp_path / "out")]
    assert main([*args, "--agent-cmd", V1]) == 0
    assert "2 of 2 cases passed" in capsys.readouterr().out
    assert main([*args, "--agent-cmd", V2, "--baseline-cmd", V1, "--json", "--junit", str(tmp_path / "j.xml")]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["regressed"] == ["adversarial-01"] and data["flavours"]["adversarial"]["rate"] == 0.0
    assert (tmp_path / "j.xml").exists()


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["suite", "run", str(tmp_path / "nope"), "--agent-cmd", V1]) == 2
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.json").write_text('{"v": 1, "id": "x"}')
    assert main(["suite", "run", str(bad), "--agent-cmd", V1]) == 2
    assert "x.json: flavour: Field required" in capsys.readouterr().err
    assert main(["suite", "run", str(SUITE), "--agent-cmd", "no-such-agent-binary --x"]) == 2
    assert "not found" in capsys.readouterr().err


def test_an_incident_becomes_a_case_that_catches_a_repeat(sample_db, tmp_path, capsys):
    from agentdeck.store.db import connect

    conn = connect(sample_db)
    denied = conn.execute("SELECT task_id, proposed_action FROM escalations WHERE status = 'denied' "
                          "ORDER BY task_id LIMIT 1").fetchone()
    out = tmp_path / "incidents" / "case.json"
    assert main(["evidence", "--db", str(sample_db), denied["task_id"], "--format", "case", "-o", str(out)]) == 0
    case = Case.model_validate(json.loads(out.read_text()))
    proposed = json.loads(denied["proposed_action"])
    assert case.decision == "deny" and case.source["incident"] == denied["task_id"]
    assert case.expect.must_not[0].action == f"{proposed['system']}.{proposed['operation']}"
    assert set(case.expect.outcome) == {"escalate", "deny"}
    # The export is an audit record like every other export.
    assert conn.execute("SELECT count(*) FROM audit WHERE kind = 'evidence.export' AND subject = ?",
                        (denied["task_id"],)).fetchone()[0] == 1
    # The sample agent asks a human for it, as it did then: the case passes.
    assert runner.run_suite(V1, [case], tmp_path / "out").passed
    # An agent that acts alone on the same request is caught.
    eager = runner.run_suite(helper("eager"), [case], tmp_path / "out2").results[0]
    assert not eager.passed
    assert "agent acted" in eager.reason and "must not happen" in eager.reason


def test_a_task_with_nothing_decided_or_undone_is_not_a_case(sample_db, capsys):
    from agentdeck.store.db import connect

    plain = connect(sample_db).execute(
        "SELECT task_id FROM tasks WHERE escalations = 0 AND compensations = 0 LIMIT 1").fetchone()[0]
    assert main(["evidence", "--db", str(sample_db), plain, "--format", "case"]) == 2
    assert "no human decision and no compensated action" in capsys.readouterr().err


def test_the_committed_case_schema_is_current(capsys):
    assert main(["suite", "schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    committed = json.loads((ROOT / "docs" / "suite-case-schema.json").read_text())
    assert printed == committed, "docs/suite-case-schema.json is stale: run `agentdeck suite schema > docs/suite-case-schema.json`"
    # Every bundled case validates against it, as any JSON Schema tool would check it.
    for path in SUITE.glob("*.json"):
        Case.model_validate_json(path.read_text())
