"""A backlog import may leave the tasks' secondary indexes out and build them after: never lost, never for long.

What an operator relies on: after an import (finished, interrupted or killed
with SIGKILL) every query runs on the same indexes as a store that never
deferred any, as soon as anything opens the store for writing; a console
opened during an import takes them back at once; and the rows are the same
as an import without deferral.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentdeck.store import deferred_indexes, tailer as tailer_mod
from agentdeck.store.db import connect
from agentdeck.store.tailer import Tailer

from test_ingest_kill9 import ROOT, Writer, clean_violations, contract_folder, count, violations, write_contract_backlog

META = deferred_indexes.META_KEY


def task_indexes(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return sorted(tuple(r) for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks'"
                               " AND sql IS NOT NULL").fetchall())


def note(db: Path) -> str | None:
    """The deferral note, read without opening the store as agentdeck does (which would restore)."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (META,)).fetchone()
        return row[0] if row else None
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()


@pytest.fixture
def fresh_indexes(tmp_path) -> list[tuple[str, str]]:
    conn = connect(tmp_path / "fresh.db")
    try:
        out = task_indexes(conn)
    finally:
        conn.close()
    assert {name for name, _ in out} >= set(deferred_indexes.DEFERRABLE)
    return out


def write_backlog(folder: Path, tasks: int) -> Writer:
    writer = Writer(folder, 3)
    with open(folder / "agent-0.jsonl", "wb") as f:
        for n in range(tasks * 20):
            f.write(writer.line(f"t-{n // 20}"))
    return writer


def tailed_contract_backlog(tmp_path: Path, tasks: int) -> tuple[sqlite3.Connection, Path]:
    """A trace folder with the kill-bot contract and a backlog of ``tasks`` tasks, tailed into tmp_path/store.db:
    (the store, the contract's file)."""
    folder = contract_folder(tmp_path / "traces")
    write_backlog(folder, tasks)
    conn = connect(tmp_path / "store.db")
    Tailer(conn, [folder]).poll()  # the sources table names the folder: its contracts/ is read
    return conn, folder / "contracts" / "kill-bot.toml"


def test_a_store_opened_after_a_kill_while_deferred_has_every_index_again(tmp_path, fresh_indexes):
    db = tmp_path / "store.db"
    conn = connect(db)
    assert deferred_indexes.defer(conn) == list(deferred_indexes.DEFERRABLE)
    conn.close()  # as if killed: nothing built them again
    assert note(db) is not None
    raw = sqlite3.connect(db)
    assert {n for n, _ in task_indexes(raw)}.isdisjoint(deferred_indexes.DEFERRABLE)
    raw.close()

    conn = connect(db)  # any read-write open, before anything reads
    assert task_indexes(conn) == fresh_indexes
    assert note(db) is None
    # The console's Tasks list pages over its expression index again.
    plan = " ".join(r[3] for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT task_id FROM tasks ORDER BY coalesce(started, last_ts), task_id LIMIT 50"))
    assert "tasks_console_seen" in plan
    conn.close()


def test_a_store_locked_by_another_writer_still_opens_and_its_indexes_wait(tmp_path, monkeypatch):
    """Missing indexes only slow queries: another process holding the write lock must not make the open fail."""
    from agentdeck.store import db as db_mod

    db = tmp_path / "store.db"
    conn = connect(db)
    deferred_indexes.defer(conn)
    conn.close()
    monkeypatch.setattr(db_mod, "PRAGMAS", [p for p in db_mod.PRAGMAS if "busy_timeout" not in p]
                        + ["PRAGMA busy_timeout = 50"])
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # an import's batch, the console's ingest starting beside it
    try:
        opened = connect(db)
        assert opened.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0
        opened.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert note(db) is not None  # still owed: the next open (or an open tailer's pass) builds them
    connect(db).close()
    assert note(db) is None


def test_a_deferring_import_stores_what_a_plain_one_does_and_ends_with_its_indexes(tmp_path, fresh_indexes,
                                                                                 monkeypatch):
    folder = tmp_path / "traces"
    folder.mkdir()
    write_backlog(folder, 300)
    monkeypatch.setattr(tailer_mod, "DEFER_MIN_BYTES", 64 * 1024)
    seen_during: list[set[str]] = []
    stores = {}
    for defer in (False, True):
        db = tmp_path / f"defer-{defer}.db"
        conn = connect(db)
        watcher = sqlite3.connect(db)

        def on_batch(_batch, watcher=watcher, defer=defer) -> None:
            if defer:
                seen_during.append({n for n, _ in task_indexes(watcher)})

        Tailer(conn, [folder], batch_bytes=32 * 1024, on_batch=on_batch, defer_indexes=defer).poll()
        assert task_indexes(conn) == fresh_indexes
        assert note(db) is None
        stores[defer] = (conn.execute("SELECT task_id, seq, kind, payload FROM events ORDER BY id").fetchall(),
                         conn.execute("SELECT * FROM tasks ORDER BY task_id").fetchall())
        watcher.close()
        conn.close()
    assert seen_during and all(s.isdisjoint(deferred_indexes.DEFERRABLE) for s in seen_during)
    (ev_plain, tasks_plain), (ev_defer, tasks_defer) = stores[False], stores[True]
    assert ev_plain == ev_defer
    strip = [[v for k, v in zip(r.keys(), r) if k != "updated_at"] for r in tasks_plain]
    assert strip == [[v for k, v in zip(r.keys(), r) if k != "updated_at"] for r in tasks_defer]


def test_no_deferral_for_a_small_backlog_or_into_a_large_store(tmp_path, monkeypatch, fresh_indexes):
    folder = tmp_path / "traces"
    folder.mkdir()
    write_backlog(folder, 50)
    size = (folder / "agent-0.jsonl").stat().st_size
    db = tmp_path / "store.db"
    conn = connect(db)
    seen: list[set[str]] = []
    on_batch = lambda _b: seen.append({n for n, _ in task_indexes(conn)})  # noqa: E731
    monkeypatch.setattr(tailer_mod, "DEFER_MIN_BYTES", size + 1)
    Tailer(conn, [folder], batch_bytes=8 * 1024, on_batch=on_batch, defer_indexes=True).poll()
    assert seen and all(s >= set(deferred_indexes.DEFERRABLE) for s in seen)
    # Now the store holds 50 tasks: a backlog smaller than 50 KiB more is not worth rebuilding them.
    (folder / "agent-1.jsonl").write_bytes((folder / "agent-0.jsonl").read_bytes()[: 40 * 1024].replace(b"t-", b"u-"))
    monkeypatch.setattr(tailer_mod, "DEFER_MIN_BYTES", 1)
    seen.clear()
    Tailer(conn, [folder], batch_bytes=8 * 1024, on_batch=on_batch, defer_indexes=True).poll()
    assert seen and all(s >= set(deferred_indexes.DEFERRABLE) for s in seen)
    conn.close()


def test_a_store_opened_while_an_import_defers_takes_its_indexes_back_at_once(tmp_path, fresh_indexes,
                                                                            monkeypatch):
    folder = tmp_path / "traces"
    folder.mkdir()
    write_backlog(folder, 1000)  # batches are at least 1 MiB (store/reader.py): several of them
    monkeypatch.setattr(tailer_mod, "DEFER_MIN_BYTES", 64 * 1024)
    db = tmp_path / "store.db"
    conn = connect(db)
    batches = 0
    after_console: list[list] = []

    def on_batch(_batch) -> None:
        nonlocal batches
        batches += 1
        if batches == 1:
            assert {n for n, _ in task_indexes(conn)}.isdisjoint(deferred_indexes.DEFERRABLE)
            console = connect(db)  # a console (or any command) opened mid-import
            after_console.append(task_indexes(console))
            console.close()
        else:
            after_console.append(task_indexes(conn))

    stats = Tailer(conn, [folder], batch_bytes=32 * 1024, on_batch=on_batch, defer_indexes=True).poll()
    assert batches >= 3 and stats.events == 20_000
    assert all(seen == fresh_indexes for seen in after_console)  # and the import did not drop them again
    assert task_indexes(conn) == fresh_indexes and note(db) is None
    assert conn.execute("SELECT sum(events) FROM tasks").fetchone()[0] == 20_000
    conn.close()


DEFERRING_INGEST = (
    "import sys; from agentdeck.store import tailer; tailer.DEFER_MIN_BYTES = 256 * 1024; "
    "from agentdeck.console.cli import main; sys.exit(main(sys.argv[1:]))"
)


def test_kill_9_while_indexes_are_deferred(tmp_path, fresh_indexes):
    """SIGKILL during a deferring import: the next open builds the indexes; events and violations exactly once."""
    folder = contract_folder(tmp_path / "traces")
    writer = write_contract_backlog(folder, 11, files=2, lines=15_000, per_task=40, prefix="defer")
    db = tmp_path / "store.db"
    cmd = [sys.executable, "-c", DEFERRING_INGEST, "ingest", "--quiet", "--db", str(db), str(folder)]
    rng = random.Random(int.from_bytes(os.urandom(4)))
    killed_deferred = 0
    for _ in range(3):
        before = count(db)
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        # Kill once the import has dropped the indexes and committed something.
        while (note(db) is None or count(db) == before) and proc.poll() is None:
            assert time.monotonic() < deadline, "the import neither deferred nor committed in 60 s"
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if note(db) is not None:
            killed_deferred += 1
            conn = connect(db)  # what any command, or the console, does first
            assert task_indexes(conn) == fresh_indexes
            conn.close()
            assert note(db) is None
    assert killed_deferred, "no kill landed while the indexes were deferred"
    final = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    conn = connect(db)
    assert task_indexes(conn) == fresh_indexes and note(db) is None
    assert sorted(tuple(r) for r in conn.execute("SELECT task_id, seq FROM events")) == sorted(writer.written)
    assert conn.execute("SELECT sum(events) FROM tasks").fetchone()[0] == len(writer.written)
    conn.close()

    expected = clean_violations(tmp_path, writer, timeout=120)
    assert len(expected) > 20
    assert violations(db) == expected


def test_a_killed_imports_indexes_show_in_health_and_come_back_in_an_open_tailers_next_pass(tmp_path, fresh_indexes):
    """A console (its ingest process, its health) had the store open before an import deferred and was killed."""
    from agentdeck.store import health

    folder = tmp_path / "traces"
    folder.mkdir()
    write_backlog(folder, 5)
    db = tmp_path / "store.db"
    conn = connect(db)  # opened before the import: connect() had nothing to build then
    reader = connect(db, readonly=True)  # the console's health reads with one of these

    # While the import that deferred them lives, nobody takes them from it: health says why lists are slow.
    assert deferred_indexes.defer(conn)
    assert not deferred_indexes.abandoned(reader)
    live = [p for p in health.check(reader, time.time()).problems if p.key == "deferred-indexes"]
    assert len(live) == 1 and "running" in live[0].what
    deferred_indexes.restore(conn)

    killed = subprocess.run(
        [sys.executable, "-c", "import os, signal, sys; from agentdeck.store.db import connect; "
         "from agentdeck.store import deferred_indexes as d; d.defer(connect(sys.argv[1])); "
         "os.kill(os.getpid(), signal.SIGKILL)", str(db)], cwd=ROOT, timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert deferred_indexes.abandoned(reader)
    shown = [p for p in health.check(reader, time.time()).problems if p.key == "deferred-indexes"]
    assert len(shown) == 1 and "cut off" in shown[0].what and "tasks_console_seen" in shown[0].detail
    assert shown[0].todo

    Tailer(conn, [folder]).poll()  # the console's ingest: its next pass
    assert task_indexes(conn) == fresh_indexes and note(db) is None
    assert not [p for p in health.check(reader, time.time()).problems if p.key == "deferred-indexes"]
    reader.close()
    conn.close()

