"""Review findings in replay, evidence and canary: hostile ids, hook headers and packets never escape or crash."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import pytest
from textual.widgets import Static

from agentdeck.console.cli import main
from agentdeck.replay import compensate
from agentdeck.replay.evidence import check_packet, FORMAT, canonical, export, packet_filename, verify_packet
from agentdeck.store.db import connect
from agentdeck.store.tailer import Tailer

from conftest import FIXED_NOW, SAMPLE_TRACES

HERE = Path(__file__).resolve().parent
# What console/safe.py shows as a visible escape: C0 (but tab/newline), DEL, C1, bidi, zero-width, surrogates.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064"
                    "\u2066-\u2069\ufeff\ufff9-\ufffb\ud800-\udfff]")
OSC52 = "\x1b]52;c;ZXZpbA==\x07"  # "put 'evil' on the clipboard"


def _store_with_task_id(tmp_path: Path, new_id: str) -> Path:
    """A store holding one sample task (task-0002) renamed to ``new_id``."""
    lines = []
    for line in (SAMPLE_TRACES / "records-agent-1.jsonl").read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("task_id") == "task-0002":
            event["task_id"] = new_id
            lines.append(json.dumps(event))
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    db = tmp_path / "s.db"
    conn = connect(db)
    Tailer(conn, [tmp_path / "t.jsonl"]).poll()
    conn.close()
    return db


# ---- 1. a task id cannot steer where the Replay screen writes its packet ----------------------------


@pytest.mark.parametrize("task_id", ["../../escaped/pwn", "/etc/cron.d/x", "..", "a/../../b", "~root/x"])
def test_packet_filename_stays_a_plain_name_in_its_folder(tmp_path, task_id):
    name = packet_filename(task_id, "20261124T150000Z")
    assert "/" not in name and not name.startswith(".") and len(name) < 120
    assert (tmp_path / name).resolve().parent == tmp_path.resolve()


def test_packet_filenames_of_ids_that_slug_alike_differ():
    assert packet_filename("a/b", "s") != packet_filename("a_b", "s")
    assert packet_filename("task-0001", "s").startswith("task-0001-")


async def test_replay_export_keeps_the_packet_inside_the_evidence_dir(tmp_path, monkeypatch, make_app):
    evil = "../../escaped/pwn"
    db = _store_with_task_id(tmp_path, evil)
    ev = tmp_path / "a" / "b" / "evidence"
    app = make_app(db, evidence_dir=str(ev))
    async with app.run_test(size=(140, 40)) as pilot:
        app.open_replay(evil)
        for _ in range(2):
            await pilot.pause()
            await app.settled()
        await pilot.press("e")
        for _ in range(2):
            await pilot.pause()
            await app.settled()
        await pilot.pause()
        status = str(app.screen.query_one("#replay-status", Static).render())
    written = list(tmp_path.rglob("*.md"))
    assert len(written) == 1 and written[0].resolve().parent == ev.resolve(), written
    assert "Evidence packet written to" in status
    assert verify_packet(written[0].read_text(), connect(db)) == []


# ---- 2. a hook's headers cannot crash a compensation or leave it 'running' ---------------------------


def _http_action(conn) -> tuple[str, dict]:
    action_id = conn.execute(
        "SELECT action_id FROM actions WHERE compensation LIKE '%\"http\"%' AND compensated_at IS NULL LIMIT 1"
    ).fetchone()[0]
    hook = json.loads(conn.execute("SELECT compensation FROM actions WHERE action_id = ?", (action_id,)).fetchone()[0])
    return action_id, hook


@pytest.mark.parametrize("change, named", [
    ({"headers": {"X-Note": "r\u00e9vert"}}, "X-Note"),
    ({"headers": {"X-Note": "a\r\nX-Injected: 1"}}, "X-Note"),
    ({"headers": {"X Bad": "v"}}, "X Bad"),
    ({"headers": ["X-Note", "v"]}, "headers"),
    ({"method": "P\u00d6ST"}, "method"),
])
def test_a_hook_header_http_cannot_carry_is_refused_with_the_reason(sample_db, change, named):
    conn = connect(sample_db)
    action_id, hook = _http_action(conn)
    hook.update(url="http://127.0.0.1:9/compensate", **change)
    conn.execute("UPDATE actions SET compensation = ? WHERE action_id = ?", (json.dumps(hook), action_id))
    refused = compensate.prepare(conn, action_id, frozenset({"127.0.0.1:9"}))
    assert isinstance(refused, compensate.Refusal) and named in refused.reason
    assert conn.execute("SELECT count(*) FROM compensations").fetchone()[0] == 0


def test_an_unexpected_error_in_the_http_call_is_a_failed_retryable_attempt(sample_db):
    """httpx raises UnicodeEncodeError (not an HTTPError) for a non-ASCII header: record it, don't raise."""
    conn = connect(sample_db)
    action_id, hook = _http_action(conn)
    hook["url"] = "http://127.0.0.1:9/compensate"  # nothing listens; never reached anyway
    conn.execute("UPDATE actions SET compensation = ? WHERE action_id = ?", (json.dumps(hook), action_id))
    allow = frozenset({"127.0.0.1:9"})
    plan = compensate.prepare(conn, action_id, allow)
    assert isinstance(plan, compensate.Plan)
    bad = dataclasses.replace(plan, headers={**plan.headers, "X-Note": "r\u00e9vert"})
    outcome = compensate.commit(conn, bad, operator="tester", now=FIXED_NOW, allow_hosts=allow, timeout=2)
    assert not outcome.ok and "UnicodeEncodeError" in outcome.error
    assert conn.execute("SELECT status FROM compensations WHERE action_id = ?", (action_id,)).fetchone()[0] == "failed"
    row = conn.execute("SELECT compensation_status FROM actions WHERE action_id = ?", (action_id,)).fetchone()
    assert row[0] == "failed"
    kinds = [k for (k,) in conn.execute("SELECT kind FROM audit WHERE subject = ? ORDER BY id", (action_id,))]
    assert kinds[-2:] == ["compensation.requested", "compensation.result"]
    assert isinstance(compensate.prepare(conn, action_id, allow), compensate.Plan)  # a retry is allowed


# ---- 3./4. verify --packet: wrong shapes are clear errors, nothing from the packet reaches the terminal ---


def _packet_file(tmp_path: Path, **fields) -> Path:
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"format": FORMAT, **fields}))
    return f


GOOD_DIGEST = {"algorithm": "sha256", "value": "a"}
GOOD_HEAD = {"id": 1, "hash": "h"}


@pytest.mark.parametrize("fields, where", [
    ({"digest": "x", "audit_head": GOOD_HEAD}, "digest"),
    ({"audit_head": GOOD_HEAD}, "digest"),
    ({"digest": GOOD_DIGEST, "audit_head": [1]}, "audit_head"),
    ({"digest": GOOD_DIGEST, "audit_head": {"id": 10**30, "hash": "h"}}, "audit_head.id"),
    ({"digest": GOOD_DIGEST, "audit_head": {"id": "1", "hash": "h"}}, "audit_head.id"),
    ({"digest": {"algorithm": "sha256", "value": {"a": 1}}, "audit_head": GOOD_HEAD}, "digest.value"),
    ({"digest": GOOD_DIGEST, "audit_head": {"id": 1, "hash": ["h"]}}, "audit_head.hash"),
])
def test_verify_a_packet_of_the_wrong_shape_is_a_clear_error(sample_db, tmp_path, capsys, fields, where):
    rc = main(["verify", "--db", str(sample_db), "--packet", str(_packet_file(tmp_path, **fields))])
    err = capsys.readouterr().err
    assert rc == 2
    assert "not a well-formed evidence packet" in err and f"{where}:" in err and "_Digest" not in err


@pytest.mark.parametrize("number, why", [("NaN", "NaN is not a JSON number"), ("1e400", "1e400 is out of range")])
def test_verify_a_packet_with_a_number_that_has_no_canonical_form_is_a_clear_error(sample_db, tmp_path, capsys,
                                                                                   number, why):
    f = tmp_path / "p.json"
    f.write_text(f'{{"format": "{FORMAT}", "digest": {{"algorithm": "sha256", "value": "a"}}, '
                 f'"audit_head": {{"id": 1, "hash": "h"}}, "x": {number}}}')
    assert main(["verify", "--db", str(sample_db), "--packet", str(f)]) == 2
    assert why in capsys.readouterr().err


def test_verify_a_packet_with_a_lone_surrogate_is_checked_not_crashed(sample_db, tmp_path, capsys):
    f = _packet_file(tmp_path, digest=GOOD_DIGEST, audit_head=GOOD_HEAD, note="\ud800")
    assert main(["verify", "--db", str(sample_db), "--packet", str(f)]) == 1
    assert "TAMPERED" in capsys.readouterr().out


def test_a_well_shaped_forged_markdown_packet_is_tampered_not_a_crash(sample_db, tmp_path, capsys):
    """Digest matches (the forger computed it) but the packet is not one the renderer can draw."""
    packet = {"format": FORMAT, "audit_head": GOOD_HEAD, "checklist": []}
    packet["digest"] = {"algorithm": "sha256", "value": hashlib.sha256(canonical(packet)).hexdigest()}
    f = tmp_path / "p.md"
    f.write_text(f"x\n<!-- agentdeck-evidence:begin -->\n```json\n{json.dumps(packet)}\n```\n"
                 f"<!-- agentdeck-evidence:end -->\n")
    assert main(["verify", "--db", str(sample_db), "--packet", str(f)]) == 1
    assert "differs from the packet it embeds" in capsys.readouterr().out


def test_verify_does_not_echo_escape_sequences_from_a_packet(sample_db, tmp_path, capsys):
    f = _packet_file(tmp_path, digest=GOOD_DIGEST, audit_head={"id": OSC52, "hash": "h"})
    assert main(["verify", "--db", str(sample_db), "--packet", str(f)]) == 2
    out = capsys.readouterr()
    assert "\x1b" not in out.out + out.err and "\x07" not in out.out + out.err


def test_evidence_cli_does_not_echo_escape_sequences_from_a_task_id(tmp_path, capsys):
    evil = "task-0002" + OSC52
    db = _store_with_task_id(tmp_path, evil)
    assert main(["evidence", "--db", str(db), "-o", str(tmp_path / "out.md"), "--format", "md", evil]) == 0
    err = capsys.readouterr().err
    assert "wrote md for task-0002␛]52;c;ZXZpbA==\\x07 to" in err
    assert main(["evidence", "--db", str(db), "nope\u202e"]) == 2
    assert not UNSAFE.search(capsys.readouterr().err)


# ---- 5. canary for an agent with no tasks ---------------------------------------------------------


def test_canary_for_an_unknown_agent_exits_3_with_a_message(sample_db, capsys):
    rc = main(["canary", "--db", str(sample_db), "--agent", "nobody", "--baseline", "v1", "--canary", "v2"])
    err = capsys.readouterr().err
    assert rc == 3
    assert "no tasks for version v1, v2" in err and "no tasks for agent nobody" in err


def test_canary_analysis_of_no_tasks_is_zero_counts(sample_db):
    from agentdeck.store import canary

    report = canary.analyse(connect(sample_db), "nobody", "v1", "v2", now=FIXED_NOW)
    assert (report.n_baseline, report.n_canary) == (0, 0)
    assert report.verdict == "hold"


# ---- 6. the Replay status line shows a task id as text --------------------------------------------


async def test_replay_status_line_does_not_pass_escape_sequences(tmp_path, monkeypatch, make_app):
    evil = "task-0002" + OSC52
    db = _store_with_task_id(tmp_path, evil)
    app = make_app(db, evidence_dir=str(tmp_path / "ev"))
    async with app.run_test(size=(140, 40)) as pilot:
        app.open_replay(evil)
        for _ in range(2):
            await pilot.pause()
            await app.settled()
        # Read the "writing …" line before the event loop runs again: the worker's result cannot replace it yet.
        app.screen.action_export()
        shown = str(app.screen.query_one("#replay-status", Static).render())
        assert "writing the evidence packet for task-0002␛]52" in shown and "\x1b" not in shown
        await app.settled()
        await pilot.pause()


# ---- 7. evidence files carry no raw control or bidi characters ---------------------------------------


HOSTILE_NOTE = "caf\u00e9 \u202eevil\u202c \x9b31m na\u00efve ```x"


@pytest.fixture
def hostile_conn(sample_db):
    conn = connect(sample_db)
    row = conn.execute("SELECT id, payload FROM events WHERE task_id = 'task-0001' AND kind = 'tool_result'").fetchone()
    event = json.loads(row["payload"])
    event["output"]["note"] = HOSTILE_NOTE
    conn.execute("UPDATE events SET payload = ? WHERE id = ?", (json.dumps(event), row["id"]))
    yield conn
    conn.close()


def test_json_packet_is_ascii_and_round_trips_to_a_verified_packet(hostile_conn):
    text, _ = export(hostile_conn, "task-0001", fmt="json", out=None, operator="auditor", now=FIXED_NOW)
    assert text.isascii()
    packet = json.loads(text)
    assert packet["checklist"]["tool_calls"][0]["results"][0]["output"]["note"] == HOSTILE_NOTE
    assert verify_packet(text, hostile_conn) == []


def test_scenario_is_ascii_and_keeps_the_events(hostile_conn):
    text, _ = export(hostile_conn, "task-0001", fmt="scenario", out=None, operator="auditor", now=FIXED_NOW)
    assert text.isascii()
    notes = [json.loads(line).get("output", {}).get("note") for line in text.splitlines()]
    assert HOSTILE_NOTE in notes


def test_markdown_packet_shows_control_and_bidi_characters_as_escapes(hostile_conn):
    text, _ = export(hostile_conn, "task-0001", fmt="md", out=None, operator="auditor", now=FIXED_NOW)
    assert not UNSAFE.search(text)
    assert '"note": "café \\u202eevil\\u202c \\u009b31m naïve \\u0060\\u0060\\u0060x"' in text  # readable, valid JSON
    assert verify_packet(text, hostile_conn) == []
    assert any("edited" in p for p in verify_packet(text.replace("\\u202eevil", "\\u202egood", 1), hostile_conn))


def test_markdown_prose_lines_show_bidi_characters_as_escapes(tmp_path, capsys):
    evil = "task-0002\u202e\x9b"
    db = _store_with_task_id(tmp_path, evil)
    text, _ = export(connect(db), evil, fmt="md", out=None, operator="auditor", now=FIXED_NOW)
    assert text.startswith("# Evidence packet: task-0002\\u202e\\x9b\n")
    assert not UNSAFE.search(text)


def test_a_markdown_packet_written_before_the_escaping_still_verifies():
    """Written by the previous renderer (raw bidi and C1 in it): a packet handed out then must stay checkable."""
    legacy = (HERE / "data" / "evidence-legacy-task-0001.md").read_text(encoding="utf-8")
    assert "\u202e" in legacy  # really the old rendering
    check = check_packet(legacy)
    # Untouched; but written before packets were signed, so without its store it is not confirmed either.
    assert check.integrity == [] and any("not signed" in p for p in check.provenance)
    assert check_packet(legacy.replace("naïve", "naive", 1)).integrity != []


async def test_replay_export_refuses_a_file_name_that_resolves_outside_the_evidence_dir(sample_db, tmp_path,
                                                                                      monkeypatch, make_app):
    """Belt and braces behind the slug: a symlink planted under the packet's name is not followed out."""
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / packet_filename("task-0001", "20261124T150000Z")).symlink_to(tmp_path / "outside.md")
    app = make_app(sample_db, evidence_dir=str(ev))
    async with app.run_test(size=(140, 40)) as pilot:
        app.open_replay("task-0001")
        for _ in range(2):
            await pilot.pause()
            await app.settled()
        await pilot.press("e")
        for _ in range(2):
            await pilot.pause()
            await app.settled()
        await pilot.pause()
        status = str(app.screen.query_one("#replay-status", Static).render())
    assert "Export refused" in status and "outside the evidence folder" in status
    assert not (tmp_path / "outside.md").exists()
