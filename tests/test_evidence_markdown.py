"""The Markdown evidence packet: a document for people, that trace text cannot turn into markup or forge.

Issue 10 item 5 (trace text escaped; begin/end markers unforgeable) and issue 13 (summary, timeline,
compensation in the outcome, `evidence -o x.md`, `verify --packet README.md`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentdeck.console.cli import main
from agentdeck.replay.evidence import export, load_packet, verify_packet
from agentdeck.replay.evidence_md import BEGIN, END, md
from agentdeck.store.db import connect
from agentdeck.store.tailer import Tailer

from conftest import FIXED_NOW, SAMPLE_TRACES

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = {
    "script": "<script>alert(1)</script>",
    "img": '<img src=x onerror="alert(1)">',
    "link": "[click me](javascript:alert(1))",
    "image": "![x](javascript:alert(1))",
    "autolink": "<javascript:alert(1)>",
    "comment": f"{END} after {BEGIN}",
    "entity": "&#106;avascript:alert(1)",
    "fence": "```\n# heading\n```",
}


def _store(tmp_path: Path, *, task_id: str = "task-0002", reason: str | None = None, note: str | None = None) -> Path:
    """The sample task task-0002 (renamed), optionally with hostile text in its request and a tool output."""
    lines = []
    for line in (SAMPLE_TRACES / "records-agent-1.jsonl").read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("task_id") != "task-0002":
            continue
        event["task_id"] = task_id
        if note is not None and event["kind"] == "task_start":
            event["request"] = note
        if note is not None and event["kind"] == "plan":
            event["steps"] = [note, "then " + note]
        if reason is not None and event["kind"] == "policy_check":
            event["reason"] = reason
        lines.append(json.dumps(event))
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    db = tmp_path / "s.db"
    conn = connect(db)
    Tailer(conn, [tmp_path / "t.jsonl"]).poll()
    conn.close()
    return db


def _export(db: Path, task_id: str = "task-0002") -> str:
    conn = connect(db)
    try:
        return export(conn, task_id, fmt="md", out=None, operator="auditor", now=FIXED_NOW)[0]
    finally:
        conn.close()


def _prose(text: str) -> str:
    """The document outside fenced JSON blocks (where Markdown is rendered)."""
    return re.sub(r"```json\n.*?\n```", "", text, flags=re.DOTALL)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_trace_text_never_becomes_html_or_a_link(tmp_path, name):
    db = _store(tmp_path, note=HOSTILE[name], reason=HOSTILE[name])
    text = _export(db)
    prose = _prose(text)
    assert "<script" not in prose and "<img" not in prose and "<javascript" not in prose
    # A link needs an unescaped "](", an entity an unescaped "&": both are written escaped.
    assert not re.search(r"(?<!\\)\]\(", prose) and not re.search(r"(?<!\\)&#", prose)
    assert not re.search(r"^#+ heading", text, flags=re.MULTILINE)
    assert text.count(BEGIN) == 1 and text.count(END) == 1  # the real markers only
    assert verify_packet(text, connect(db)) == []


@pytest.mark.parametrize("where", ["task_id", "reason"])
def test_a_marker_inside_the_content_does_not_break_a_genuine_packet(tmp_path, where):
    evil = f"x{BEGIN}\n```json\n{{}}\n```\n{END}y"
    db = _store(tmp_path, task_id=evil if where == "task_id" else "task-0002",
                reason=evil if where == "reason" else None)
    text = _export(db, evil if where == "task_id" else "task-0002")
    assert verify_packet(text, connect(db)) == []
    packet, fmt = load_packet(text)
    assert fmt == "md" and (packet["task"]["task_id"] == evil if where == "task_id" else True)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_md_escapes_any_text_to_one_line_without_markup(text):
    out = md(text)
    assert "\n" not in out and "<" not in out and ">" not in out
    # Every Markdown-active character is escaped (preceded by an odd number of backslashes).
    for m in re.finditer(r"[`*\[\]!|~]", out):
        run = len(out[: m.start()]) - len(out[: m.start()].rstrip("\\"))
        assert run % 2 == 1, (text, out)


def test_the_packet_opens_with_a_plain_summary_and_a_numbered_timeline(sample_db):
    conn = connect(sample_db)
    text, _ = export(conn, "task-0001", fmt="md", out=None, operator="auditor", now=FIXED_NOW)
    head = text.split("## Raw detail")[0]
    assert text.index("## Summary") < text.index("## Timeline") < text.index("## Raw detail")
    assert "- **Who:** agent approval-agent version v1 (model gpt-4.1-2025-04, " in head
    assert "decided by tom.r (approved esc-" in head
    assert "- **What:** Refund order #59454 for alice: 2390.45 EUR (request req-0001)" in head
    assert "- **When:** 2026-11-24 09:00:55Z to 2026-11-24 09:01:58Z" in head
    assert "- **Outcome:** success" in head
    assert "1. 09:00:55Z (seq 0) request req-0001: Refund order #59454 for alice: 2390.45 EUR" in head
    assert "8. 09:01:57Z (seq 7) decision approve by tom.r" in head
    assert "1. look up alice" in head  # the plan as a numbered list
    assert '{"id"' not in head and '"model"' not in head  # agent and version are prose, not raw JSON
    assert "```json" not in head  # JSON only in the raw detail and the machine-readable block


def test_after_a_compensation_the_outcome_no_longer_says_success(sample_db):
    conn = connect(sample_db)
    conn.execute("UPDATE actions SET compensated_at = ?, compensated_by = 'maria', compensation_status = 'ok' "
                 "WHERE task_id = 'task-0001'", (FIXED_NOW - 60,))
    text, _ = export(conn, "task-0001", fmt="md", out=None, operator="auditor", now=FIXED_NOW)
    packet, _ = load_packet(text)
    assert packet["task"]["outcome"] == "compensated" and packet["task"]["reported_outcome"] == "success"
    line = next(x for x in text.splitlines() if x.startswith("- **Outcome:**"))
    assert line.startswith("- **Outcome:** compensated (the agent reported success); act-0001 undone by maria at ")
    assert "- act-0001: undone by maria at 2026-11-24 14:59:00Z (ok)" in text


def test_evidence_o_md_writes_markdown_and_o_json_writes_json(sample_db, tmp_path, capsys):
    md_out, json_out = tmp_path / "x.md", tmp_path / "x.json"
    assert main(["evidence", "--db", str(sample_db), "-o", str(md_out), "task-0001"]) == 0
    assert md_out.read_text().startswith("# Evidence packet: task-0001\n")
    assert main(["evidence", "--db", str(sample_db), "-o", str(json_out), "task-0001"]) == 0
    assert json.loads(json_out.read_text())["format"] == "agentdeck-evidence/1"
    assert main(["verify", "--db", str(sample_db), "--packet", str(md_out)]) == 0


def test_evidence_format_that_contradicts_the_file_name_is_a_usage_error(sample_db, tmp_path, capsys):
    assert main(["evidence", "--db", str(sample_db), "--format", "json", "-o", str(tmp_path / "x.md"), "task-0001"]) == 2
    assert "--format json does not match" in capsys.readouterr().err
    assert not (tmp_path / "x.md").exists()


def test_verify_packet_readme_names_the_real_problem(sample_db, capsys):
    assert main(["verify", "--db", str(sample_db), "--packet", str(ROOT / "README.md")]) == 2
    err = capsys.readouterr().err
    assert "not an evidence packet" in err and "agentdeck-evidence block" in err
    assert "Expecting value" not in err


def test_verify_packet_cut_short_says_so(sample_db, tmp_path, capsys):
    text = _export(sample_db, "task-0001")
    cut = tmp_path / "cut.md"
    cut.write_text(text[: text.index(END)])
    assert main(["verify", "--db", str(sample_db), "--packet", str(cut)]) == 2
    assert "end marker is missing" in capsys.readouterr().err


def test_a_packet_from_the_renderer_before_the_summary_still_verifies(sample_db):
    """Packets exported before this layout (v2: digest + JSON blocks) stay checkable with their store."""
    from agentdeck.replay.evidence_md import _V2, _render_v2

    conn = connect(sample_db)
    text, _ = export(conn, "task-0001", fmt="json", out=None, operator="auditor", now=FIXED_NOW)
    packet = json.loads(text)
    old = _render_v2(packet, _V2)
    assert "## Summary" not in old
    assert verify_packet(old, conn) == []
    assert verify_packet(old.replace("- Secrets redacted:", "- Secrets  redacted:"), conn) != []


def test_the_timeline_shows_the_date_of_a_step_on_another_day(sample_db):
    conn = connect(sample_db)
    row = conn.execute("SELECT id, payload FROM events WHERE task_id = 'task-0001' AND kind = 'task_end'").fetchone()
    event = json.loads(row["payload"])
    event["ts"] = "2026-11-25T08:00:00.000Z"
    from datetime import datetime

    next_day = datetime.fromisoformat("2026-11-25T08:00:00+00:00").timestamp()
    conn.execute("UPDATE events SET payload = ?, ts = ? WHERE id = ?", (json.dumps(event), next_day, row["id"]))
    text, _ = export(conn, "task-0001", fmt="md", out=None, operator="auditor", now=FIXED_NOW)
    assert "1. 09:00:55Z (seq 0)" in text and "10. 2026-11-25 08:00:00Z (seq 9) end: success" in text
