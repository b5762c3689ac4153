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
