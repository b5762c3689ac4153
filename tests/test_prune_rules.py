"""agentdeck prune: which tasks go, which stay and why; archive or not; dry run; settings."""

from __future__ import annotations

import gzip
import json
import os
import socket
import time
from collections import Counter
from pathlib import Path

import pytest

from agentdeck.console.cli import main
from agentdeck.store import audit, decisions
from agentdeck.store.db import connect
from agentdeck.store.prune import PruneBusy, acquire, run_prune
from agentdeck.store.retention import (
    KEEP_NOTABLE, KEEP_PENDING, KEEP_RECENT, KEEP_UNDELIVERED, PolicyError, RetentionPolicy, load_policy,
)
from test_prune_support import DAY, EVENT_COLUMNS, ingest, rows, task_lines, write_trace

NOW = float(int(time.time()))  # the CLI prunes as of the real clock


@pytest.fixture
def store(tmp_path) -> Path:
    """12 old plain tasks, 3 recent ones, one old task with an approved escalation and an action."""
    tasks = [task_lines(f"old-{i:02d}", NOW - 40 * DAY + i * 60) for i in range(12)]
    tasks += [task_lines(f"new-{i}", NOW - 3 * DAY + i) for i in range(3)]
    tasks += [task_lines("esc-old", NOW - 40 * DAY, escalation="pending", action=True)]
    db = tmp_path / "agentdeck.db"
    ingest(db, write_trace(tmp_path / "traces" / "a.jsonl", tasks))
    conn = connect(db)
    # A person approves it in the console (40 days ago) and the decision was delivered.
    decisions.decide(conn, "esc-esc-old", "approve", by="maria", reason="fine", now=NOW - 40 * DAY + 600)
    conn.execute("UPDATE escalations SET delivery = 'delivered'")
    conn.close()
    return db


def _events(db: Path) -> list[tuple]:
    conn = connect(db)
    try:
        return rows(conn, "events", EVENT_COLUMNS, "task_id, seq")
    finally:
        conn.close()


def _archive_lines(folder: Path) -> list[str]:
    out = []
    for f in sorted(folder.glob("*.jsonl.gz")):
        out += gzip.decompress(f.read_bytes()).decode().splitlines()
    return out


def test_dry_run_says_what_would_go_and_changes_nothing(store, capsys):
    before = _events(store)
    size = store.stat().st_size
    code = main(["prune", "--db", str(store), "--dry-run", "--list"])
    out = capsys.readouterr().out
    assert code == 0
    assert "would remove 12 tasks (" in out
    assert "old-00" in out and "new-0" not in out.split("kept")[0]
    assert f"3  {KEEP_RECENT}" in out and f"1  {KEEP_NOTABLE}" in out
    assert _events(store) == before
    assert store.stat().st_size == size
    assert not (store.parent / "agentdeck.db-archive").exists()


def test_prune_archives_then_removes_old_tasks_keeps_recent_and_notable(store):
    before = _events(store)
    report = run_prune(store, RetentionPolicy(batch_events=30), NOW)
    assert report.removed_tasks == 12
    after = _events(store)
    assert {r[0] for r in after} == {"new-0", "new-1", "new-2", "esc-old"}
    # The archive holds exactly the removed events, payloads byte for byte, each once.
    removed = [r for r in before if r[0].startswith("old-")]
    archived = _archive_lines(store.parent / "agentdeck.db-archive")
    assert sorted(archived) == sorted(r[4] for r in removed)
    assert report.removed_events == len(removed)
    conn = connect(store)
    try:
        got = conn.execute("SELECT task_id, state, archive IS NOT NULL, digest FROM archived_tasks").fetchall()
        assert len(got) == 12 and all(r[1] == "pruned" and r[2] for r in got)
        # The audit trail names every archived task by its digest, and still verifies.
        named: dict[str, str] = {}
        for (detail,) in conn.execute("SELECT detail FROM audit WHERE kind = 'retention.archive'"):
            named.update(json.loads(detail)["tasks"])
        assert named == {r[0]: r[3] for r in got}
        assert audit.verify(conn)[1] == []
        # Nothing of theirs is left in any per-task table.
        for table in ("tasks", "escalations", "actions", "violations", "compensations"):
            assert conn.execute(f"SELECT count(*) FROM {table} WHERE task_id LIKE 'old-%'").fetchone()[0] == 0
    finally:
        conn.close()


def test_prune_without_archive_records_digests_only(store, tmp_path, capsys):
    assert main(["prune", "--db", str(store), "--no-archive"]) == 0
    out = capsys.readouterr().out
    assert "removed 12 tasks" in out and "no archive written" in out
    assert not (tmp_path / "agentdeck.db-archive").exists()
    conn = connect(store)
    try:
        rows_ = conn.execute("SELECT archive, state, length(digest) FROM archived_tasks").fetchall()
        assert len(rows_) == 12 and all(r[0] is None and r[1] == "pruned" and r[2] == 64 for r in rows_)
        assert conn.execute("SELECT count(*) FROM audit WHERE kind = 'retention.prune'").fetchone()[0] >= 1
    finally:
        conn.close()


def test_task_with_approved_escalation_outlives_its_raw_neighbours(store):
    run_prune(store, RetentionPolicy(), NOW)
    conn = connect(store)
    try:
        row = conn.execute("SELECT status, decided_by FROM escalations WHERE task_id = 'esc-old'").fetchone()
        assert tuple(row) == ("approved", "maria")
        assert conn.execute("SELECT count(*) FROM events WHERE task_id LIKE 'old-%'").fetchone()[0] == 0
    finally:
        conn.close()
    # A year later it goes too, archived like the others.
    report = run_prune(store, RetentionPolicy(), NOW + 366 * DAY)
    assert report.notable_removed == 1
    assert "esc-old" in {json.loads(line)["task_id"] for line in _archive_lines(store.parent / "agentdeck.db-archive")}


def test_unfinished_work_is_kept_whatever_its_age(tmp_path):
    db = tmp_path / "s.db"
    ingest(db, write_trace(tmp_path / "t.jsonl", [task_lines("waiting", NOW - 900 * DAY, escalation="pending"),
                                                  task_lines("undelivered", NOW - 900 * DAY, escalation="pending")]))
    conn = connect(db)
    decisions.decide(conn, "esc-undelivered", "deny", by="maria", reason="no", now=NOW - 899 * DAY)
    conn.close()
    report = run_prune(db, RetentionPolicy(), NOW)
    assert report.removed_tasks == 0
    assert report.kept == Counter({KEEP_PENDING: 1, KEEP_UNDELIVERED: 1})


def test_recent_human_act_keeps_an_old_task(store):
    conn = connect(store)
    conn.execute("UPDATE escalations SET decided_at = ? WHERE task_id = 'esc-old'", (NOW - 1 * DAY,))
    conn.close()
    report = run_prune(store, RetentionPolicy(raw_days=30, notable_days=30), NOW)
    assert report.kept[KEEP_NOTABLE] == 1


def test_settings_from_config_file_then_flags(tmp_path, store, capsys):
    cfg = tmp_path / "agentdeck.toml"
    cfg.write_text("[retention]\nraw_days = 50\nnotable_days = 400\narchive_dir = 'arch'\n")
    p = load_policy(cfg, raw_days=None)
    assert (p.raw_days, p.notable_days, p.archive_dir) == (50, 400, tmp_path / "arch")  # beside the file
    assert load_policy(cfg, raw_days=10).raw_days == 10
    # 50 days: nothing old enough.
    assert main(["prune", "--db", str(store), "--config", str(cfg), "--dry-run"]) == 0
    assert "would remove 0 tasks" in capsys.readouterr().out
    cfg.write_text("[retention]\nraw_days = 100\nnotable_days = 10\n")
    with pytest.raises(PolicyError, match="notable_days"):
        load_policy(cfg)
    assert main(["prune", "--db", str(store), "--config", str(cfg)]) == 2
    cfg.write_text("[retention]\naudit = 'never'\n")
    assert main(["prune", "--db", str(store), "--config", str(cfg)]) == 2
    assert "retention setting audit" in capsys.readouterr().err
    assert main(["prune", "--db", str(store), "--config", str(tmp_path / "missing.toml")]) == 2
    assert main(["prune", "--db", str(tmp_path / "nothing.db")]) == 2


def test_a_second_prune_refuses_while_one_holds_the_lease(store, capsys):
    conn = connect(store)
    # A live process that is not us holds it (our parent, on this host).
    conn.execute("INSERT INTO prune_lease (id, pid, host, started, until) VALUES (1, ?, ?, 0, 1e12)",
                 (os.getppid(), socket.gethostname()))
    with pytest.raises(PruneBusy):
        acquire(conn)
    conn.close()
    assert main(["prune", "--db", str(store)]) == 2
    assert "another prune is running" in capsys.readouterr().err
    assert len(_events(store)) > 40  # nothing was removed
    # A lease whose process is gone is taken over.
    conn = connect(store)
    conn.execute("UPDATE prune_lease SET pid = 999999999")
    conn.close()
    assert main(["prune", "--db", str(store)]) == 0


def test_new_events_for_a_task_being_pruned_keep_it(store, monkeypatch):
    """A late event arriving between archiving and deleting: the task stays whole in the store."""
    from agentdeck.store import prune as prune_mod

    real = prune_mod._delete

    def late_event(conn, rows_, policy, now, report):
        extra = task_lines("old-03", NOW - 40 * DAY + 180)[-1].replace('"seq":9', '"seq":99')
        write_trace(store.parent / "traces" / "late.jsonl", [[extra]])
        ingest(store, store.parent / "traces")
        return real(conn, rows_, policy, now, report)

    monkeypatch.setattr(prune_mod, "_delete", late_event)
    report = run_prune(store, RetentionPolicy(), NOW)
    assert ("old-03", "new events arrived while it was being pruned") in report.changed
    conn = connect(store)
    try:
        assert conn.execute("SELECT events FROM tasks WHERE task_id = 'old-03'").fetchone()[0] == 10
        assert conn.execute("SELECT state FROM archived_tasks WHERE task_id = 'old-03'").fetchone()[0] == "kept"
    finally:
        conn.close()


def test_compact_once_then_later_prunes_shrink_the_file(tmp_path, capsys):
    tasks = [task_lines(f"a-{i:03d}", NOW - 200 * DAY + i, steps=20) for i in range(150)]
    tasks += [task_lines(f"b-{i:03d}", NOW - 100 * DAY + i, steps=20) for i in range(150)]
    tasks += [task_lines(f"c-{i:03d}", NOW - DAY + i, steps=20) for i in range(20)]
    db = tmp_path / "s.db"
    ingest(db, write_trace(tmp_path / "t.jsonl", tasks))
    size0 = db.stat().st_size
    # First: the store was made without incremental vacuum; --compact rewrites it once and switches it.
    assert main(["prune", "--db", str(db), "--raw-days", "150", "--notable-days", "150", "--compact"]) == 0
    capsys.readouterr()
    conn = connect(db)
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    conn.close()
    size1 = db.stat().st_size
    assert size1 < size0 * 0.75
    # Later prunes give pages back in small steps, without a full rewrite.
    assert main(["prune", "--db", str(db)]) == 0
    assert "shrinks only after" not in capsys.readouterr().out
    conn = connect(db)
    try:
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 20
    finally:
        conn.close()
    assert db.stat().st_size < size1 * 0.6


def test_stop_between_steps_leaves_a_consistent_store_and_a_rerun_finishes(store):
    import threading

    stop = threading.Event()
    report = run_prune(store, RetentionPolicy(batch_events=20), NOW, stop=stop, on_step=lambda r: stop.set())
    assert report.interrupted and 0 < report.removed_tasks < 12
    conn = connect(store)
    try:
        assert conn.execute("SELECT count(*) FROM archived_tasks WHERE state = 'archived'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM prune_lease").fetchone()[0] == 0
    finally:
        conn.close()
    again = run_prune(store, RetentionPolicy(batch_events=20), NOW)
    assert report.removed_tasks + again.removed_tasks == 12 and not again.interrupted


def test_archives_moved_away_do_not_stop_later_prunes_but_appending_to_a_changed_one_is_refused(store, tmp_path):
    from agentdeck.store.archive import ArchiveError

    def old_task(name: str) -> None:
        write_trace(store.parent / "traces" / f"{name}.jsonl", [task_lines(name, NOW - 60 * DAY)])
        ingest(store, store.parent / "traces")

    first = run_prune(store, RetentionPolicy(), NOW)
    Path(next(iter(first.archives))).rename(tmp_path / "cold-storage.jsonl.gz")  # old archives go elsewhere
    old_task("later-1")
    second = run_prune(store, RetentionPolicy(), NOW + DAY)  # another day, another file: not blocked
    assert second.removed_tasks == 1 and not second.truncated
    # That day's archive cut short behind our back: the next prune that day refuses to append to it.
    today = Path(next(iter(second.archives)))
    today.write_bytes(today.read_bytes()[:10])
    old_task("later-2")
    with pytest.raises(ArchiveError, match="moved, truncated or replaced"):
        run_prune(store, RetentionPolicy(), NOW + DAY)
    conn = connect(store)
    try:  # nothing was removed that is not archived
        assert conn.execute("SELECT count(*) FROM tasks WHERE task_id = 'later-2'").fetchone()[0] == 1
    finally:
        conn.close()
