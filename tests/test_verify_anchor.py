"""The audit trail cannot be quietly erased or rewritten by someone who can write the database.

Each test plays the attacker the issue describes: full write access to the store file, but not to the
audit key (kept outside the database) nor to a copy of the checkpoint file.
"""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from agentdeck.console.cli import main
from agentdeck.replay.evidence import canonical, export
from agentdeck.store import audit
from agentdeck.store.audit import _digest
from agentdeck.store.db import connect
from agentdeck.store.decisions import decide
from conftest import FIXED_NOW
from test_escalations_support import esc_db  # noqa: F401  (fixture)


@pytest.fixture
def decided(esc_db):
    """The sample store (its escalations decided by agents, relayed in traces) after three people decided
    three more in the console."""
    conn = connect(esc_db)
    pending = ["esc-t-high", "esc-t-hostile", "esc-t-low"]
    for i, eid in enumerate(pending):
        out = decide(conn, eid, "deny", by=f"op{i}", reason="not this time", now=FIXED_NOW + i)
        assert out.applied
    yield esc_db, conn, pending
    conn.close()


def _verify(db, *extra) -> int:
    return main(["verify", "--db", str(db), *extra])


def test_the_untouched_trail_verifies_with_signatures_and_checkpoints(decided, capsys):
    db, conn, _ = decided
    assert _verify(db) == 0
    out = capsys.readouterr().out
    assert "OK: the audit trail" in out and "3 checkpoints matched" in out


def test_deleting_every_record_and_the_head_is_tampering(decided, capsys):
    db, conn, pending = decided
    conn.execute("DELETE FROM audit")
    conn.execute("DELETE FROM meta WHERE key = 'audit:head'")
    assert _verify(db) == 1
    out = capsys.readouterr().out
    assert "TAMPERED" in out
    assert f"escalation {pending[0]} is denied by op0" in out and "no audit record" in out
    assert "gone from the trail (deleted)" in out  # the checkpoints outside the store remember them


def test_deleting_records_and_the_local_checkpoints_is_still_caught_by_the_decisions(decided, capsys):
    db, conn, pending = decided
    conn.execute("DELETE FROM audit")
    conn.execute("DELETE FROM meta WHERE key = 'audit:head'")
    os.unlink(db.parent / "audit-checkpoints.log")
    assert _verify(db) == 1
    assert f"escalation {pending[2]} is denied by op2" in capsys.readouterr().out


def _rewrite_with_sha256(conn, edit_id: int, detail: str) -> None:
    """What an attacker without the key can do: edit a record and recompute the whole chain and the head."""
    conn.execute("UPDATE audit SET detail = ? WHERE id = ?", (detail, edit_id))
    prev = audit.GENESIS
    for rec_id, ts, actor, kind, subject, det in conn.execute(
            "SELECT id, ts, actor, kind, subject, detail FROM audit ORDER BY id").fetchall():
        h = _digest(prev, rec_id, ts, actor, kind, subject, det)
        conn.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", (prev, h, rec_id))
        prev = h
    conn.execute("UPDATE meta SET value = ? WHERE key = 'audit:head'", (f"{rec_id}:{prev}",))


def test_an_edit_with_a_recomputed_chain_and_head_is_tampering(decided, capsys):
    db, conn, pending = decided
    rec = conn.execute("SELECT id, detail FROM audit WHERE subject = ?", (pending[1],)).fetchone()
    detail = json.loads(rec["detail"])
    detail["reason"] = "approved after a call"  # rewrite history: what the person said
    _rewrite_with_sha256(conn, rec["id"], json.dumps(detail, sort_keys=True, separators=(",", ":")))
    assert _verify(db) == 1
    out = capsys.readouterr().out
    assert "TAMPERED" in out and "differs from its checkpoint" in out
    # The attacker also deletes the checkpoints beside the store: the key alone still gives it away.
    os.unlink(db.parent / "audit-checkpoints.log")
    assert _verify(db) == 1
    assert "none of the 3 records is signed" in capsys.readouterr().out


def test_a_forged_signature_is_caught_at_that_record(decided, capsys):
    db, conn, _ = decided
    conn.execute("UPDATE audit SET actor = 'someone-else' WHERE id = 2")
    assert _verify(db) == 1
    assert "record 2: contents do not match its signature (edited)" in capsys.readouterr().out


def test_truncating_the_trail_and_the_local_checkpoints_is_caught_by_an_operators_copy(decided, tmp_path, capsys):
    db, conn, pending = decided
    copy = tmp_path / "elsewhere.log"
    shutil.copy(db.parent / "audit-checkpoints.log", copy)
    # Remove the newest record, roll the head back, reopen the escalation, and drop the last checkpoint line.
    conn.execute("DELETE FROM audit WHERE id = 3")
    h = conn.execute("SELECT id, hash FROM audit WHERE id = 2").fetchone()
    conn.execute("UPDATE meta SET value = ? WHERE key = 'audit:head'", (f"{h[0]}:{h[1]}",))
    conn.execute("UPDATE escalations SET status = 'pending', decided_by = NULL, decided_at = NULL WHERE escalation_id = ?",
                 (pending[2],))
    local = db.parent / "audit-checkpoints.log"
    local.write_text("".join(local.read_text().splitlines(keepends=True)[:2]))
    assert _verify(db, "--checkpoints", str(copy)) == 1
    assert "record 3: was anchored by the checkpoint" in capsys.readouterr().out


def test_a_changed_escalation_row_is_caught(decided, capsys):
    db, conn, pending = decided
    conn.execute("UPDATE escalations SET status = 'approved' WHERE escalation_id = ?", (pending[0],))
    assert _verify(db) == 1
    out = capsys.readouterr().out
    assert f"says escalation {pending[0]} was denied by op0" in out and "the row was changed" in out


def test_a_forged_checkpoint_line_is_caught(decided, capsys):
    db, conn, _ = decided
    with (db.parent / "audit-checkpoints.log").open("a") as f:
        f.write(json.dumps({"id": 9, "hash": "x", "at": "2026-01-01T00:00:00.000Z", "key_id": "k", "mac": "0"}) + "\n")
    assert _verify(db) == 2  # signed with a key id we do not hold: cannot vouch for it, and says so
    assert "checkpoint line 4 is signed with key k" in capsys.readouterr().out


def test_a_checkpoint_edited_with_the_right_key_id_is_tampering(decided, capsys):
    db, conn, _ = decided
    path = db.parent / "audit-checkpoints.log"
    lines = path.read_text().splitlines()
    cp = json.loads(lines[0])
    cp["id"] = 2
    path.write_text("\n".join([json.dumps(cp), *lines[1:]]) + "\n")
    assert _verify(db) == 1
    assert "checkpoint line 1 is not signed by the audit key" in capsys.readouterr().out


def test_a_pruned_escalation_is_accepted_when_its_task_is_archived(decided, capsys):
    db, conn, pending = decided
    task_id = conn.execute("SELECT task_id FROM escalations WHERE escalation_id = ?", (pending[0],)).fetchone()[0]
    conn.execute("DELETE FROM escalations WHERE escalation_id = ?", (pending[0],))
    assert _verify(db) == 1
    assert f"decides escalation {pending[0]}, which is gone from the store" in capsys.readouterr().out
    # As prune records it (store/migrations/retention.py); a task it had to keep whole excuses nothing.
    conn.execute("INSERT INTO archived_tasks (task_id, archive, digest, events, max_event_id, notable, reason, "
                 "archived_at, state) VALUES (?, 'archive-1.jsonl.gz', 'abc', 1, 1, 1, 'test', 0, 'kept')", (task_id,))
    assert _verify(db) == 1
    conn.execute("UPDATE archived_tasks SET state = 'pruned' WHERE task_id = ?", (task_id,))
    assert _verify(db) == 0


def test_a_compensation_whose_records_were_deleted_is_caught(sample_db, capsys):
    from agentdeck.replay import compensate, handlers

    conn = connect(sample_db)
    action_id = conn.execute("SELECT action_id FROM actions WHERE compensation IS NOT NULL AND compensated_at IS NULL "
                             "LIMIT 1").fetchone()[0]
    conn.execute("UPDATE actions SET compensation = ? WHERE action_id = ?",
                 (json.dumps({"type": "handler", "handler": "test.undo", "idempotency_key": "k-1"}), action_id))
    handlers.register("test.undo")(lambda args, key: {"status": 200, "body": {"undone": True}})
    try:
        plan = compensate.prepare(conn, action_id, frozenset())
        assert isinstance(plan, compensate.Plan)
        assert compensate.commit(conn, plan, operator="maria", now=FIXED_NOW, allow_hosts=frozenset()).ok
    finally:
        handlers.unregister("test.undo")
    assert _verify(sample_db) == 0
    capsys.readouterr()
    conn.execute("DELETE FROM audit WHERE kind LIKE 'compensation.%'")
    assert _verify(sample_db) == 1
    out = capsys.readouterr().out
    assert f"compensation of {action_id} (attempt 1) by maria" in out and "no audit record of its request" in out


def test_the_key_is_created_private_beside_the_store(decided):
    db, _, _ = decided
    key = db.parent / "audit.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(bytes.fromhex(key.read_text().strip())) == 32


def test_the_key_path_is_configurable(esc_db, tmp_path, monkeypatch, capsys):
    sample_db = esc_db
    elsewhere = tmp_path / "keys" / "agentdeck.key"
    monkeypatch.setenv("AGENTDECK_AUDIT_KEY", str(elsewhere))
    conn = connect(sample_db)
    decide(conn, "esc-t-low", "deny", by="op", reason="r", now=FIXED_NOW)
    assert elsewhere.exists() and not (sample_db.parent / "audit.key").exists()
    assert _verify(sample_db) == 0
    monkeypatch.delenv("AGENTDECK_AUDIT_KEY")
    assert _verify(sample_db) == 2  # signed, but no key where it was looked for: cannot check, says where
    assert "no audit key at" in capsys.readouterr().out
    assert _verify(sample_db, "--key", str(elsewhere)) == 0


# ---- evidence packets carry their anchor ----------------------------------------------------------


def _forge(packet: dict) -> dict:
    """Edit a packet and recompute its digest, as anyone can."""
    import hashlib

    packet["task"]["outcome"] = "success (edited)"
    packet["digest"]["value"] = hashlib.sha256(canonical(packet)).hexdigest()
    return packet


@pytest.mark.parametrize("strip_anchor", [False, True])
def test_an_edited_packet_with_a_recomputed_digest_fails_without_the_store(sample_db, tmp_path, capsys, strip_anchor):
    conn = connect(sample_db)
    out = tmp_path / "p.json"
    export(conn, "task-0001", fmt="json", out=out, operator="auditor", now=FIXED_NOW)
    conn.close()
    key = sample_db.parent / "audit.key"
    packet = _forge(json.loads(out.read_text()))
    if strip_anchor:
        del packet["anchor"]
    out.write_text(json.dumps(packet))
    elsewhere = tmp_path / "no-store" / "agentdeck.db"  # the auditor has the packet and the key, not the store
    rc = main(["verify", "--db", str(elsewhere), "--key", str(key), "--packet", str(out)])
    text = capsys.readouterr().out
    assert rc == 1 and "OK" not in text
    assert ("signature does not match" in text) if not strip_anchor else ("not signed" in text)


def test_an_untouched_packet_verifies_without_the_store_with_the_key(sample_db, tmp_path, capsys):
    conn = connect(sample_db)
    out = tmp_path / "p.md"
    export(conn, "task-0001", fmt="md", out=out, operator="auditor", now=FIXED_NOW)
    conn.close()
    key = sample_db.parent / "audit.key"
    rc = main(["verify", "--db", str(tmp_path / "none.db"), "--key", str(key), "--packet", str(out)])
    assert rc == 0 and "signed with audit key" in capsys.readouterr().out


def test_a_decision_that_cannot_be_signed_is_not_recorded_and_says_why(esc_db, tmp_path, monkeypatch):
    from agentdeck.store.anchor import AnchorError

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("AGENTDECK_AUDIT_KEY", str(blocker / "audit.key"))
    conn = connect(esc_db)
    with pytest.raises(AnchorError, match="cannot create the audit key .*not-a-folder/audit.key"):
        decide(conn, "esc-t-low", "deny", by="op", reason="r", now=FIXED_NOW)
    row = conn.execute("SELECT status FROM escalations WHERE escalation_id = 'esc-t-low'").fetchone()
    assert row[0] == "pending" and conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 0


def test_an_archived_tasks_relayed_decision_needs_no_event_in_the_store(sample_db, capsys):
    """Pruning moves a task's events to an archive: its agent-relayed decision is then vouched for by the archive."""
    conn = connect(sample_db)
    eid, task_id = conn.execute("SELECT escalation_id, task_id FROM escalations WHERE status != 'pending' LIMIT 1").fetchone()
    conn.execute("DELETE FROM events WHERE task_id = ?", (task_id,))
    assert _verify(sample_db) == 1
    assert f"escalation {eid} is" in capsys.readouterr().out
    conn.execute("CREATE TABLE archives (task_id TEXT, archive TEXT, sha256 TEXT)")
    conn.execute("INSERT INTO archives VALUES (?, 'a.jsonl.gz', 'x')", (task_id,))
    assert _verify(sample_db) == 0
