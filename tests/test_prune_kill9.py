"""A prune killed at any point loses nothing and duplicates nothing; two prunes never both run."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from agentdeck.store import audit
from agentdeck.store.archive import members
from agentdeck.store.db import connect
from agentdeck.store.prune import run_prune
from agentdeck.store.retention import RetentionPolicy
from test_prune_support import DAY, EVENT_COLUMNS, ingest, rows, task_lines, write_trace

NOW = float(int(time.time()))
OLD = 240
BATCH = "40"  # events a step: many steps, so kills land between and inside them


def _build(tmp_path: Path) -> tuple[Path, Counter, list[tuple]]:
    tasks = [task_lines(f"old-{i:03d}", NOW - 400 * DAY + i, escalation="approve" if i % 5 == 0 else None)
             for i in range(OLD)]
    tasks += [task_lines(f"new-{i:02d}", NOW - DAY + i) for i in range(20)]
    db = tmp_path / "agentdeck.db"
    ingest(db, write_trace(tmp_path / "traces" / "a.jsonl", tasks))
    conn = connect(db)
    try:
        old_lines = Counter(r[0] for r in conn.execute("SELECT payload FROM events WHERE task_id LIKE 'old-%'"))
        new_rows = rows(conn, "events WHERE task_id LIKE 'new-%'", EVENT_COLUMNS, "task_id, seq")
    finally:
        conn.close()
    return db, old_lines, new_rows


def _archived(db: Path) -> Counter:
    lines: Counter = Counter()
    for f in sorted(db.parent.joinpath(db.name + "-archive").glob("*.jsonl.gz")):
        with f.open("rb") as fh:
            for member in members(fh):
                lines.update(member.decode().splitlines())
    return lines


def _prune_cmd(db: Path) -> list[str]:
    return [sys.executable, "-m", "agentdeck.console.cli", "prune", "--db", str(db), "--batch-events", BATCH]


def _lease_seen(db: Path, proc: subprocess.Popen, timeout: float = 20.0) -> bool:
    """Wait (bounded) until the prune holds its lease, i.e. it is past start-up and pruning."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
            try:
                if conn.execute("SELECT 1 FROM prune_lease").fetchone():
                    return True
            finally:
                conn.close()
        except sqlite3.OperationalError:
            pass
        time.sleep(0.002)
    return False


def _check(db: Path, old_lines: Counter, new_rows: list[tuple]) -> None:
    assert _archived(db) == old_lines  # every pruned line archived, exactly once
    conn = connect(db)
    try:
        assert rows(conn, "events", EVENT_COLUMNS, "task_id, seq") == new_rows  # the rest untouched
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 20
        states = Counter(r[0] for r in conn.execute("SELECT state FROM archived_tasks"))
        assert states == Counter({"pruned": OLD})
        assert conn.execute("SELECT count(DISTINCT task_id) FROM archived_tasks").fetchone()[0] == OLD
        named: Counter = Counter()
        for (detail,) in conn.execute("SELECT json_extract(detail, '$.tasks') FROM audit WHERE kind = 'retention.archive'"):
            named.update(json.loads(detail).keys())
        assert named == Counter({f"old-{i:03d}": 1 for i in range(OLD)})  # the audit names each task once
        assert audit.verify(conn)[1] == []
        for table in ("escalations", "actions"):
            assert conn.execute(f"SELECT count(*) FROM {table} WHERE task_id LIKE 'old-%'").fetchone()[0] == 0
    finally:
        conn.close()


def test_kill9_at_random_points_then_a_rerun_matches_a_clean_prune(tmp_path):
    db, old_lines, new_rows = _build(tmp_path)
    # How long a whole prune takes here, measured on a copy (kills are spread over that time).
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / db.name).write_bytes(db.read_bytes())
    proc = subprocess.Popen(_prune_cmd(clean / db.name), stdout=subprocess.DEVNULL)
    assert _lease_seen(clean / db.name, proc) or proc.wait() == 0
    t0 = time.monotonic()
    assert proc.wait(timeout=120) == 0
    span = max(time.monotonic() - t0, 0.05)

    rng = random.Random(int(os.environ.get("PRUNE_KILL_SEED", "15")))
    killed = 0
    for _ in range(6):
        proc = subprocess.Popen(_prune_cmd(db), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if _lease_seen(db, proc):
            time.sleep(rng.uniform(0, span * 0.8))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                killed += 1
        proc.wait(timeout=120)
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read() if proc.stderr else ""
    assert killed >= 1  # at least one run died mid-prune
    # One more, left to finish, completes what the killed ones started.
    done = subprocess.run(_prune_cmd(db), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    _check(db, old_lines, new_rows)


class _Crash(BaseException):
    """Stands for the process dying at this point (not an Exception: nothing may catch it)."""


@pytest.mark.parametrize("where", ["after_append", "after_record", "mid_delete"])
def test_each_crash_point_is_completed_or_redone(tmp_path, monkeypatch, where):
    from agentdeck.store import prune as prune_mod

    db, old_lines, new_rows = _build(tmp_path)
    calls = Counter()

    def crash_on_third(name, real):
        def wrapper(*a, **kw):
            calls[name] += 1
            if calls[name] == 3:
                if name == "append_member":
                    real(*a, **kw)  # the member is on disk, fsynced, but never recorded
                raise _Crash()
            return real(*a, **kw)
        return wrapper

    if where == "after_append":
        monkeypatch.setattr(prune_mod, "append_member", crash_on_third("append_member", prune_mod.append_member))
    elif where == "after_record":
        monkeypatch.setattr(prune_mod, "_delete", crash_on_third("_delete", prune_mod._delete))
    else:
        monkeypatch.setattr(prune_mod, "still_prunable_many",
                            crash_on_third("still_prunable_many", prune_mod.still_prunable_many))
    conn = connect(db)
    with pytest.raises(_Crash):
        run_prune(conn, RetentionPolicy(batch_events=int(BATCH)), NOW)
    conn.close()
    monkeypatch.undo()
    # The dead prune's lease names this (live) process: a new process would see it gone; here, drop it.
    conn = connect(db)
    conn.execute("DELETE FROM prune_lease")
    conn.close()
    report = run_prune(db, RetentionPolicy(batch_events=int(BATCH)), NOW)
    if where == "after_append":
        assert report.truncated  # the unrecorded member was cut off and its tasks archived again
    else:
        assert report.resumed > 0  # recorded but not deleted: finished first
    _check(db, old_lines, new_rows)


def test_two_prunes_racing_never_both_run(tmp_path):
    db, old_lines, new_rows = _build(tmp_path)
    procs = [subprocess.Popen(_prune_cmd(db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=120), p.stdout.read() if p.stdout else "", p.stderr.read() if p.stderr else "")
               for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes in ([0, 0], [0, 2]), results
    if codes == [0, 2]:
        assert "another prune is running" in next(r[2] for r in results if r[0] == 2)
    else:  # one finished before the other started: the second found nothing left
        assert sum("removed 0 tasks" in r[1] for r in results) == 1, results
    _check(db, old_lines, new_rows)


def test_prune_beside_a_live_ingest_loses_and_duplicates_nothing(tmp_path):
    """Ingest keeps writing (new tasks, and late events for tasks being pruned) while a prune runs."""
    import threading

    from agentdeck.store.archive import ArchivedTask, read_task
    from agentdeck.store.tailer import Tailer

    db, _, _ = _build(tmp_path)
    traces = tmp_path / "traces"
    stop = threading.Event()
    errors: list[BaseException] = []

    def ingest_more() -> None:
        conn = connect(db)
        tailer = Tailer(conn, [traces])
        try:
            for n in range(40):
                late = [task_lines(f"old-{(n * 7) % OLD:03d}", NOW - 400 * DAY)[-1].replace('"seq":', f'"seq":{n + 1}0')]
                write_trace(traces / f"more-{n:02d}.jsonl", [task_lines(f"live-{n:02d}", NOW - 60), late])
                tailer.poll()
                if stop.is_set():
                    break
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            conn.close()

    writer = threading.Thread(target=ingest_more)
    writer.start()
    try:
        while writer.is_alive():
            run_prune(db, RetentionPolicy(batch_events=int(BATCH)), NOW)
    finally:
        stop.set()
        writer.join(timeout=60)
    assert not errors
    run_prune(db, RetentionPolicy(batch_events=int(BATCH)), NOW)

    ingested: Counter = Counter()
    for f in traces.glob("*.jsonl"):
        ingested.update(f.read_text().splitlines())
    conn = connect(db)
    try:
        held = Counter(r[0] for r in conn.execute("SELECT payload FROM events"))
        archived: Counter = Counter()
        for row in conn.execute("""SELECT task_id, request_id, archive, member_offset, member_length, digest, events,
                                   state, archived_at, pruned_at, reason FROM archived_tasks WHERE state = 'pruned'"""):
            archived.update(read_task(ArchivedTask(*tuple(row))))
        assert conn.execute("SELECT count(*) FROM tasks WHERE task_id LIKE 'live-%'").fetchone()[0] == 40
        assert audit.verify(conn)[1] == []
    finally:
        conn.close()
    # Every line ingested is in the store or in the archive of a pruned task, exactly once.
    assert held + archived == ingested
