"""The audit trail's hash chain: edits, deletions and reorderings are reported."""

from __future__ import annotations

import pytest

from agentdeck.console.cli import main
from agentdeck.store import audit
from agentdeck.store.db import connect
from agentdeck.store.txn import atomic


@pytest.fixture
def trail(tmp_path):
    path = tmp_path / "a.db"
    conn = connect(path)
    for i in range(5):
        with atomic(conn):
            audit.append(conn, ts=100.0 + i, actor="maria", kind="evidence.export", subject=f"task-{i}",
                         detail={"format": "json"})
        audit.checkpoint(conn)
    yield path, conn
    conn.close()


def test_intact_trail(trail, capsys):
    path, conn = trail
    assert audit.verify(conn) == (5, [])
    assert main(["verify", "--db", str(path)]) == 0
    assert "OK: the audit trail" in capsys.readouterr().out


def test_edit_is_reported(trail, capsys):
    path, conn = trail
    conn.execute("UPDATE audit SET detail = '{\"format\":\"md\"}' WHERE id = 3")
    _, problems = audit.verify(conn)
    assert [(p.record_id, "edited" in p.what) for p in problems] == [(3, True)]
    assert main(["verify", "--db", str(path)]) == 1
    assert "record 3: contents do not match its signature (edited)" in capsys.readouterr().out


def test_delete_in_the_middle_is_reported(trail):
    _, conn = trail
    conn.execute("DELETE FROM audit WHERE id = 2")
    _, problems = audit.verify(conn)
    assert any(p.record_id == 3 and "missing (deleted)" in p.what for p in problems)


def test_delete_of_the_newest_is_reported(trail):
    _, conn = trail
    conn.execute("DELETE FROM audit WHERE id = 5")
    _, problems = audit.verify(conn)
    assert any("newer records were removed" in p.what for p in problems)


def test_reorder_is_reported(trail):
    _, conn = trail
    conn.execute("UPDATE audit SET id = -1 WHERE id = 2")
    conn.execute("UPDATE audit SET id = 2 WHERE id = 3")
    conn.execute("UPDATE audit SET id = 3 WHERE id = -1")
    _, problems = audit.verify(conn)
    assert {p.record_id for p in problems} >= {2, 3}
    assert any("does not follow" in p.what for p in problems)


def test_append_outside_a_transaction_is_refused(trail):
    _, conn = trail
    with pytest.raises(RuntimeError):
        audit.append(conn, ts=1.0, actor="x", kind="k", subject="s", detail={})


def test_no_store_is_exit_2(tmp_path, capsys):
    assert main(["verify", "--db", str(tmp_path / "none.db")]) == 2


def test_a_trail_from_before_signing_verifies_and_says_it_is_not_anchored(tmp_path, monkeypatch, capsys):
    """A store upgraded from an unsigned trail: old records keep their sha256, new ones are signed."""
    path = tmp_path / "old.db"
    conn = connect(path)
    with monkeypatch.context() as m:
        m.setattr(audit, "_store_key", lambda conn: None)  # how the previous release wrote records
        for i in range(2):
            with atomic(conn):
                audit.append(conn, ts=10.0 + i, actor="old", kind="evidence.export", subject=f"t-{i}", detail={})
    assert not (tmp_path / "audit.key").exists()
    assert main(["verify", "--db", str(path)]) == 0  # no key yet: the chain is all there is
    with atomic(conn):
        audit.append(conn, ts=20.0, actor="new", kind="evidence.export", subject="t-2", detail={})
    audit.checkpoint(conn)
    assert conn.execute("SELECT hash FROM audit WHERE id = 3").fetchone()[0].startswith("hmac:")
    assert main(["verify", "--db", str(path)]) == 0
    assert "records 1..2 predate signing" in capsys.readouterr().out
    # Rewriting an old record means recomputing the chain, and the signed record after it then fails.
    conn.execute("UPDATE audit SET actor = 'someone' WHERE id = 1")
    prev = audit.GENESIS
    for rec_id in (1, 2):
        r = conn.execute("SELECT ts, actor, kind, subject, detail FROM audit WHERE id = ?", (rec_id,)).fetchone()
        h = audit._digest(prev, rec_id, *tuple(r))
        conn.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", (prev, h, rec_id))
        prev = h
    conn.execute("UPDATE audit SET prev_hash = ? WHERE id = 3", (prev,))
    assert main(["verify", "--db", str(path)]) == 1
    assert "record 3: contents do not match its signature (edited)" in capsys.readouterr().out


def test_a_checkpoint_inside_an_open_transaction_never_anchors_a_record_that_rolls_back(tmp_path):
    conn = connect(tmp_path / "c.db")
    with pytest.raises(KeyError):
        with atomic(conn):
            audit.append(conn, ts=1.0, actor="a", kind="evidence.export", subject="t", detail={})
            audit.checkpoint(conn)  # too early: skipped
            raise KeyError("the act failed after its record was appended")
    assert not (tmp_path / "audit-checkpoints.log").exists() or (tmp_path / "audit-checkpoints.log").read_text() == ""
    with atomic(conn):
        audit.append(conn, ts=2.0, actor="b", kind="evidence.export", subject="t", detail={})
    audit.checkpoint(conn)
    assert audit.verify(conn) == (1, [])


def test_verify_while_a_console_keeps_recording_reports_no_false_tampering(tmp_path):
    """Records and checkpoints committed during a check are wholly in its snapshot or wholly not."""
    import threading

    path = tmp_path / "busy.db"
    writer = connect(path)
    with atomic(writer):
        audit.append(writer, ts=0.0, actor="w", kind="evidence.export", subject="t", detail={})
    audit.checkpoint(writer)
    done = threading.Event()

    def record() -> None:
        conn = connect(path)
        try:
            for i in range(150):
                with atomic(conn):
                    audit.append(conn, ts=1.0 + i, actor="w", kind="evidence.export", subject=f"t-{i}", detail={})
                audit.checkpoint(conn)
        finally:
            conn.close()
            done.set()

    thread = threading.Thread(target=record)
    thread.start()
    reader = connect(path, readonly=True)
    checks = 0
    while not done.is_set() or checks == 0:
        report = audit.check(reader)
        assert report.problems == [] and report.unchecked == [], report.problems
        checks += 1
    thread.join(timeout=60)
    assert audit.check(reader).records == 151
