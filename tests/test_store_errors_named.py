"""A full disk, a read-only store and a locked store are named as such, never
"cannot rollback - no transaction is active" (issue 9): by the decision that
hit them, and by a real command through the CLI's top-level handler."""

from __future__ import annotations

import json
import sqlite3

import pytest

from conftest import FIXED_NOW
from agentdeck.console.cli import main
from agentdeck.store import db as store_db
from agentdeck.store import decisions
from agentdeck.store.db import connect
from agentdeck.store.txn import StoreFull, StoreLocked, StoreReadOnly
from test_escalations_support import audit_records, esc_db, row_of  # noqa: F401  (fixture)

LONG_REASON = "checked with the account owner; " * 60  # a decision that needs new pages


def _fill(conn: sqlite3.Connection) -> None:
    """Use up every page the store may have, as a full file system would."""
    conn.execute("PRAGMA max_page_count = " + str(conn.execute("PRAGMA page_count").fetchone()[0]))
    for size in (1500, 300, 50, 1):  # big rows, then ever smaller ones into what room is left
        try:
            while True:
                conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (f"filler-{conn.total_changes}", "x" * size))
        except sqlite3.OperationalError as exc:
            assert "full" in str(exc)


def _assert_named(message: str, *words: str) -> None:
    assert "no transaction is active" not in message
    for word in words:
        assert word in message, message


def test_deciding_on_a_full_disk_says_the_disk_is_full(esc_db):
    conn = connect(esc_db)
    _fill(conn)
    with pytest.raises(StoreFull) as info:
        decisions.decide(conn, "esc-t-low", "deny", by="alice", reason=LONG_REASON, now=FIXED_NOW)
    _assert_named(str(info.value), "disk is full", "free space")
    assert not conn.in_transaction
    assert row_of(esc_db, "esc-t-low")["status"] == "pending"  # nothing half-written
    assert audit_records(esc_db, "esc-t-low") == []


def test_deciding_on_a_read_only_store_says_read_only(esc_db):
    conn = connect(esc_db, readonly=True)
    with pytest.raises(StoreReadOnly) as info:
        decisions.decide(conn, "esc-t-low", "deny", by="alice", reason="wrong order", now=FIXED_NOW)
    _assert_named(str(info.value), "read-only", "permissions")
    assert row_of(esc_db, "esc-t-low")["status"] == "pending"


def test_deciding_on_a_locked_store_says_locked(esc_db):
    holder = connect(esc_db)
    holder.execute("BEGIN IMMEDIATE")  # another console or ingester in the middle of a write
    conn = connect(esc_db)
    conn.execute("PRAGMA busy_timeout = 100")
    try:
        for attempt in (lambda: decisions.decide(conn, "esc-t-low", "deny", by="a", reason="r", now=FIXED_NOW),
                        lambda: decisions.expire_due(conn, now=FIXED_NOW + 86400 * 365, policy="deny"),
                        lambda: decisions.request_retry(conn, "esc-t-low", by="a", now=FIXED_NOW)):
            with pytest.raises(StoreLocked) as info:
                attempt()
            _assert_named(str(info.value), "locked by another process")
            assert not conn.in_transaction
    finally:
        holder.execute("ROLLBACK")
    out = decisions.decide(conn, "esc-t-low", "deny", by="alice", reason="wrong order", now=FIXED_NOW)
    assert out.applied  # once the lock is gone the same call works


# --- the same, through a real command -----------------------------------


def _trace_folder(tmp_path):
    folder = tmp_path / "traces"
    folder.mkdir()
    (folder / "a.jsonl").write_text(json.dumps(
        {"v": 1, "kind": "plan", "ts": "2026-11-24T09:00:00Z", "task_id": "t", "seq": 0, "summary": "s"}) + "\n")
    return folder


def test_a_command_on_a_full_disk_names_it(tmp_path, capsys, monkeypatch):
    # A new store on a file system with room for two pages: creating the schema fills it.
    monkeypatch.setattr(store_db, "PRAGMAS", [*store_db.PRAGMAS, "PRAGMA max_page_count = 2"])
    db = tmp_path / "s.db"
    assert main(["ingest", "--quiet", "--db", str(db), str(_trace_folder(tmp_path))]) == 2
    err = capsys.readouterr().err
    _assert_named(err, f"cannot use the store {db}", "disk is full", "free space")
    assert "Traceback" not in err


def test_a_command_on_a_read_only_store_names_it(sample_db, capsys, monkeypatch):
    monkeypatch.setattr(store_db, "PRAGMAS", [*store_db.PRAGMAS, "PRAGMA query_only = ON"])
    assert main(["evidence", "--db", str(sample_db), "req-0001"]) == 2  # an export is audited: a write
    err = capsys.readouterr().err
    _assert_named(err, f"cannot use the store {sample_db}", "read-only", "permissions")


def test_a_command_on_a_locked_store_names_it(sample_db, capsys, monkeypatch):
    monkeypatch.setattr(store_db, "PRAGMAS", ["PRAGMA busy_timeout = 100", *store_db.PRAGMAS[1:]])
    holder = sqlite3.connect(sample_db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert main(["evidence", "--db", str(sample_db), "req-0001"]) == 2
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    err = capsys.readouterr().err
    _assert_named(err, f"cannot use the store {sample_db}", "locked by another process")
