"""The one transaction helper: commits, rolls back, nests, and names the real failure."""

from __future__ import annotations

import sqlite3

import pytest

from agentdeck.store.db import connect
from agentdeck.store.txn import StoreFull, StoreLocked, StoreReadOnly, atomic


def _conn(tmp_path):
    conn = connect(tmp_path / "s.db")
    conn.execute("CREATE TABLE t (x)")
    return conn


def count(conn):
    return conn.execute("SELECT count(*) FROM t").fetchone()[0]


def test_commits_on_success_and_rolls_back_on_error(tmp_path):
    conn = _conn(tmp_path)
    with atomic(conn):
        conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(ValueError):
        with atomic(conn):
            conn.execute("INSERT INTO t VALUES (2)")
            raise ValueError("boom")
    assert count(conn) == 1
    assert not conn.in_transaction


def test_nested_block_rolls_back_alone(tmp_path):
    conn = _conn(tmp_path)
    with atomic(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(ValueError):
            with atomic(conn):
                conn.execute("INSERT INTO t VALUES (2)")
                raise ValueError("inner")
    assert count(conn) == 1


def test_full_disk_is_named_not_masked_by_rollback(tmp_path):
    conn = _conn(tmp_path)
    conn.execute("PRAGMA max_page_count = 5")  # what a full file system looks like to SQLite
    with pytest.raises(StoreFull) as info:
        with atomic(conn):
            conn.executemany("INSERT INTO t VALUES (?)", [("x" * 2000,)] * 200)
    message = str(info.value)
    assert "disk is full" in message and "free space" in message
    assert "no transaction is active" not in message
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert not conn.in_transaction


def test_read_only_store_is_named(tmp_path):
    conn = _conn(tmp_path)
    conn.execute("PRAGMA query_only = ON")  # SQLite answers as for a read-only file
    with pytest.raises(StoreReadOnly) as info:
        with atomic(conn):
            conn.execute("INSERT INTO t VALUES (1)")
    assert "read-only" in str(info.value) and "permissions" in str(info.value)


def test_locked_store_is_named(tmp_path):
    conn = _conn(tmp_path)
    other = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        with pytest.raises(StoreLocked) as info:
            with atomic(conn):
                conn.execute("INSERT INTO t VALUES (1)")
        assert "locked by another process" in str(info.value)
    finally:
        other.execute("ROLLBACK")
    assert count(conn) == 0
