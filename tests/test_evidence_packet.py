"""Evidence packets: the checklist, redaction, the digest, the export record, the CLI."""

from __future__ import annotations

import json

import pytest

from agentdeck.console.cli import main
from agentdeck.replay.evidence import export, load_packet, verify_packet
from agentdeck.replay.redact import MARK, redact
from agentdeck.store import audit
from agentdeck.store.db import connect
from agentdeck.store.events import parse_event


def test_packet_holds_every_checklist_item(conn, tmp_path):
    out = tmp_path / "p.json"
    export(conn, "req-0001", fmt="json", out=out, operator="auditor", now=1795600000.0)
    packet = json.loads(out.read_text())
    c = packet["checklist"]
    assert c["request"]["request_id"] == "req-0001" and c["request"]["timestamp"].startswith("2026-11-24T09:")
    assert c["agent_version"]["id"] == "v1" and c["agent_version"]["model"] == "gpt-4.1-2025-04"
    assert c["plan_summary"]["summary"].startswith("Check the request")
    assert c["tool_calls"][0]["input"] == {"user": "alice"} and c["tool_calls"][0]["results"][0]["output"]["user"] == "alice"
    assert c["applied_policies"][0]["policy_id"] == "POL-REFUND-3" and c["applied_policies"][0]["verdict"] == "escalate"
    assert any("after human approval" in j["text"] for j in c["justification"])
    (action,) = c["actions"]
    assert action["before"] == {"refunded": 0} and action["downstream_response"]["status"] == 200
    assert c["compensation_reference"][0]["hook"]["idempotency_key"] == "undo-act-0001"
    (decision,) = packet["human_decisions"]
    assert (decision["decision"], decision["decided_by"]) == ("approved", "tom.r")
    assert packet["missing"] == [] and len(packet["digest"]["value"]) == 64


def test_every_export_is_an_audit_record_and_the_head_is_carried(conn, tmp_path):
    head_before = audit.head(conn)
    _, detail = export(conn, "task-0001", fmt="json", out=tmp_path / "a.json", operator="auditor", now=1.0)
    packet = json.loads((tmp_path / "a.json").read_text())
    assert packet["audit_head"] == head_before
    rec = conn.execute("SELECT actor, kind, subject, detail FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    assert (rec["actor"], rec["kind"], rec["subject"]) == ("auditor", "evidence.export", "task-0001")
    assert json.loads(rec["detail"])["digest"] == packet["digest"]["value"] == detail["digest"]
    assert audit.verify(conn)[1] == []


def test_secrets_are_redacted_by_pattern():
    payload = {
        "headers": {"Authorization": "Bearer abcdefghijklmnop1234", "X-Trace": "ok"},
        "password": "hunter2",
        "idempotency_key": "undo-act-1",
        "note": "use AKIAIOSFODNN7EXAMPLE and token=s3cr3tvalue please",
        "url": "https://bob:pa55word@db.internal/x",
        "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "log": "Authorization: Bearer ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "tokens_in": 1200,
    }
    clean, n = redact(payload)
    text = json.dumps(clean)
    for secret in ("abcdefghijklmnop1234", "hunter2", "AKIAIOSFODNN7EXAMPLE", "s3cr3tvalue", "pa55word",
                   "dozjgNryP4J3", "ghp_abcdef"):
        assert secret not in text
    assert clean["idempotency_key"] == "undo-act-1" and clean["tokens_in"] == 1200
    assert clean["headers"]["X-Trace"] == "ok" and clean["password"] == MARK and n >= 7


def test_secrets_in_a_trace_never_reach_the_packet(conn, tmp_path):
    row = conn.execute("SELECT id, payload FROM events WHERE task_id = 'task-0001' AND kind = 'tool_result'").fetchone()
    event = json.loads(row["payload"])
    event["output"]["api_key"] = "sk-live-0123456789abcdefghij"
    event["output"]["notes"] = "db password=Tr0ub4dor&3"
    conn.execute("UPDATE events SET payload = ? WHERE id = ?", (json.dumps(event), row["id"]))
    text, _ = export(conn, "task-0001", fmt="md", out=None, operator="a", now=1.0)
    assert "sk-live-0123456789abcdefghij" not in text and "Tr0ub4dor" not in text and MARK in text
    scenario, detail = export(conn, "task-0001", fmt="scenario", out=None, operator="a", now=2.0)
    assert "sk-live-0123" not in scenario and "Tr0ub4dor" not in scenario and detail["redactions"] == 2


@pytest.mark.parametrize("fmt", ["json", "md"])
def test_untouched_packet_verifies_and_an_edit_is_caught(conn, tmp_path, fmt):
    out = tmp_path / f"p.{fmt}"
    export(conn, "task-0001", fmt=fmt, out=out, operator="auditor", now=1.0)
    text = out.read_text()
    assert verify_packet(text, conn) == []
    edited = text.replace("tom.r", "tom.x", 1)
    assert edited != text
    assert any("edited" in p for p in verify_packet(edited, conn))


def test_md_human_text_edit_is_caught(conn, tmp_path):
    text, _ = export(conn, "task-0001", fmt="md", out=None, operator="auditor", now=1.0)
    edited = text.replace("## Applied policies", "## Applied policies\n\n- POL-FAKE@1: allow", 1)
    assert verify_packet(edited, conn) == ["the Markdown text differs from the packet it embeds (edited)"]


def test_packet_from_another_store_is_flagged(conn, tmp_path, sample_db):
    text, _ = export(conn, "task-0001", fmt="json", out=None, operator="auditor", now=1.0)
    other = connect(tmp_path / "other.db")
    problems = verify_packet(text, other)
    assert "this store has no export record for this packet" in problems


def test_scenario_export_is_valid_trace_in_seq_order(conn, tmp_path):
    out = tmp_path / "regressions" / "t1.jsonl"
    export(conn, "req-0001", fmt="scenario", out=out, operator="auditor", now=1.0)
    events = [parse_event(line) for line in out.read_text().splitlines()]
    assert [e.seq for e in events] == list(range(10)) and events[0].kind == "task_start"


def test_cli_evidence_and_verify(sample_db, tmp_path, capsys):
    out = tmp_path / "p.md"
    assert main(["evidence", "req-0001", "--db", str(sample_db), "--format", "md", "-o", str(out)]) == 0
    assert "wrote md for task-0001" in capsys.readouterr().err
    assert main(["verify", "--db", str(sample_db), "--packet", str(out)]) == 0
    assert "intact" in capsys.readouterr().out
    out.write_text(out.read_text().replace("approval-agent", "approval-agemt"))
    assert main(["verify", "--db", str(sample_db), "--packet", str(out)]) == 1
    assert "TAMPERED" in capsys.readouterr().out
    assert main(["evidence", "nope", "--db", str(sample_db)]) == 2
    assert "no task or request 'nope'" in capsys.readouterr().err
    garbage = tmp_path / "g.json"
    garbage.write_text("{not json")
    assert main(["verify", "--db", str(sample_db), "--packet", str(garbage)]) == 2


def test_exported_scenario_runs_in_the_regression_check(sample_db, tmp_path, capsys):
    out = tmp_path / "regressions" / "incident.jsonl"
    assert main(["evidence", "task-0023", "--db", str(sample_db), "--format", "scenario", "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["check", str(tmp_path / "regressions")]) in (0, 1)
    assert "1 tasks in 1 files" in capsys.readouterr().out


def test_console_decision_is_in_the_replay_and_the_packet(conn):
    from agentdeck.replay.reconstruct import reconstruct
    from agentdeck.store import decisions

    deadline = conn.execute("SELECT deadline FROM escalations WHERE escalation_id = 'esc-0001'").fetchone()[0]
    conn.execute("UPDATE escalations SET status = 'pending', decided_by = NULL, decided_at = NULL, decision_reason = NULL "
                 "WHERE escalation_id = 'esc-0001'")
    decisions.decide(conn, "esc-0001", "approve", by="maria.ops", reason="refund confirmed by phone", now=deadline - 60)
    r = reconstruct(conn, "task-0001")
    (esc,) = r.escalations
    assert (esc.status, esc.decided_by, esc.decision_reason) == ("approved", "maria.ops", "refund confirmed by phone")
    assert [(a["kind"], a["actor"], a["subject"]) for a in r.audit] == [("decision", "maria.ops", "esc-0001")]
    text, _ = export(conn, "task-0001", fmt="json", out=None, operator="auditor", now=deadline)
    packet = json.loads(text)
    assert packet["human_decisions"][0]["decided_by"] == "maria.ops"
    assert packet["audit_records"][0]["kind"] == "decision"


def test_cli_packet_from_another_store_is_not_confirmed_but_not_called_tampered(sample_db, tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["evidence", "task-0001", "--db", str(sample_db), "-o", str(out)]) == 0
    other = tmp_path / "other.db"
    connect(other).close()
    assert main(["verify", "--db", str(other), "--packet", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "NOT CONFIRMED" in printed and "TAMPERED" not in printed
