"""After a prune: archives read back into the same rows; verify, old packets and evidence still work."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentdeck.console.cli import main
from agentdeck.store import decisions
from agentdeck.store.archive import ArchiveError, restore
from agentdeck.store.db import connect
from agentdeck.store.prune import run_prune
from agentdeck.store.retention import RetentionPolicy
from test_prune_support import DAY, EVENT_COLUMNS, TASK_COLUMNS, ingest, rows, task_lines, write_trace

NOW = float(int(time.time()))
ESC_COLUMNS = ("escalation_id, task_id, seq, ts, agent, risk, risk_rank, reason, deadline, policy_id, justification,"
               " proposed_action, callback_url, status, decided_by, decided_at, decision_reason")
ACTION_COLUMNS = "action_id, task_id, seq, ts, system, operation, amount, status, justification, compensation"


def _snapshot(db: Path, where: str = "1") -> dict[str, list[tuple]]:
    conn = connect(db)
    try:
        return {
            "events": rows(conn, f"events WHERE {where}", EVENT_COLUMNS, "task_id, seq, payload"),
            "tasks": rows(conn, f"tasks WHERE {where}", TASK_COLUMNS, "task_id"),
            "escalations": rows(conn, f"escalations WHERE {where}", ESC_COLUMNS, "escalation_id"),
            "actions": rows(conn, f"actions WHERE {where}", ACTION_COLUMNS, "action_id"),
            "violations": rows(conn, f"violations WHERE {where}", "task_id, seq, rule, detail", "task_id, seq, rule"),
        }
    finally:
        conn.close()


def _store(tmp_path: Path) -> Path:
    tasks = [task_lines(f"old-{i:02d}", NOW - 400 * DAY + i * 60, escalation="approve" if i % 3 == 0 else None,
                        action=i % 4 == 0) for i in range(10)]
    # Checked against the bundled approval-agent contract: it has violations, which must come back too.
    tasks += [task_lines("console-decided", NOW - 400 * DAY, escalation="pending", action=True, agent="approval-agent")]
    tasks += [task_lines(f"new-{i}", NOW - DAY + i) for i in range(2)]
    db = tmp_path / "agentdeck.db"
    ingest(db, write_trace(tmp_path / "traces" / "a.jsonl", tasks))
    conn = connect(db)
    decisions.decide(conn, "esc-console-decided", "approve", by="maria", reason="checked", now=NOW - 400 * DAY + 60)
    conn.execute("UPDATE escalations SET delivery = 'delivered'")
    conn.close()
    return db


def test_reingesting_an_archive_gives_back_the_same_rows(tmp_path):
    db = _store(tmp_path)
    old = "task_id LIKE 'old-%' OR task_id = 'console-decided'"
    before = _snapshot(db, old)
    assert before["violations"] and before["escalations"] and before["actions"]  # so the comparison means something
    report = run_prune(db, RetentionPolicy(batch_events=25), NOW)
    assert report.removed_tasks == 11 and len(report.archives) == 1
    assert _snapshot(db, old)["events"] == []
    archive = next(iter(report.archives))

    # Into a fresh store, with `agentdeck ingest` (a folder: its *.jsonl.gz files).
    fresh = tmp_path / "fresh.db"
    assert main(["ingest", "--db", str(fresh), "--quiet", str(Path(archive).parent)]) == 0
    got = _snapshot(fresh)
    for table in ("events", "tasks", "actions", "violations"):
        assert got[table] == before[table], table
    # Trace-relayed decisions come back from the events; the console's own is only in the other store's audit.
    assert [e for e in got["escalations"] if e[0] != "esc-console-decided"] == \
        [e for e in before["escalations"] if e[0] != "esc-console-decided"]

    # Into the store it came from: everything as it was, the console's decision from the audit trail.
    assert main(["ingest", "--db", str(db), "--quiet", archive]) == 0
    assert _snapshot(db, old) == before
    # Again: nothing is stored twice.
    assert main(["ingest", "--db", str(db), "--quiet", archive]) == 0
    assert main(["ingest", "--db", str(fresh), "--quiet", archive]) == 0
    assert _snapshot(db, old) == before
    assert _snapshot(fresh)["events"] == before["events"]
    # Not re-sent: a restored decision carries no pending delivery.
    conn = connect(db)
    assert decisions.undelivered(conn) == []
    conn.close()


def test_verify_and_a_packet_exported_before_pruning_still_pass(tmp_path, capsys):
    db = _store(tmp_path)
    packet = tmp_path / "old-00.json"
    md = tmp_path / "console-decided.md"
    assert main(["evidence", "--db", str(db), "old-00", "-o", str(packet), "--user", "maria"]) == 0
    assert main(["evidence", "--db", str(db), "console-decided", "--format", "md", "-o", str(md)]) == 0
    report = run_prune(db, RetentionPolicy(), NOW)
    assert report.removed_tasks == 11
    capsys.readouterr()
    assert main(["verify", "--db", str(db)]) == 0
    assert main(["verify", "--db", str(db), "--packet", str(packet)]) == 0
    assert main(["verify", "--db", str(db), "--packet", str(md)]) == 0
    assert capsys.readouterr().out.count("OK:") == 3


def test_evidence_for_a_pruned_task_names_its_archive_and_rebuilds_the_packet(tmp_path, capsys):
    db = _store(tmp_path)
    before = tmp_path / "before.json"
    assert main(["evidence", "--db", str(db), "console-decided", "-o", str(before), "--user", "maria"]) == 0
    report = run_prune(db, RetentionPolicy(), NOW)
    archive = next(iter(report.archives))
    capsys.readouterr()
    after = tmp_path / "after.json"
    assert main(["evidence", "--db", str(db), "req-console-decided", "-o", str(after), "--user", "maria"]) == 0
    err = capsys.readouterr().err
    assert "console-decided was pruned on" in err and archive in err and "sha256" in err
    assert main(["verify", "--db", str(db), "--packet", str(after)]) == 0
    old, new = json.loads(before.read_text()), json.loads(after.read_text())
    # The same decision path; only export-time fields (and the audit records since) differ.
    for key in ("checklist", "task"):
        assert new[key] == old[key], key
    # The decision comes back from the audit trail; its delivery state is not archived.
    assert [{**d, "delivery": None} for d in old["human_decisions"]] == new["human_decisions"]
    assert main(["evidence", "--db", str(db), "old-01", "--format", "scenario", "-o", str(tmp_path / "s.jsonl")]) == 0
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 9

    # An archive changed after pruning is refused, saying where it was expected.
    data = gzip.decompress(Path(archive).read_bytes()).replace(b'"look, then act"', b'"look, then ACT"')
    Path(archive).write_bytes(gzip.compress(data))
    capsys.readouterr()
    assert main(["evidence", "--db", str(db), "old-01"]) == 2
    err = capsys.readouterr().err
    assert "do not match the recorded digest" in err or "cannot read" in err


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=10_000), flip=st.integers(min_value=-1, max_value=10_000),
       byte=st.integers(min_value=0, max_value=255))
def test_a_damaged_archive_is_an_error_never_a_crash_or_a_duplicate(tmp_path_factory, cut, flip, byte):
    tmp = tmp_path_factory.mktemp("damaged")
    lines = [line for i in range(6) for line in task_lines(f"t{i}", NOW - 50 * DAY + i)]
    good = b"".join(gzip.compress("".join(x + "\n" for x in lines[j:j + 20]).encode()) for j in range(0, len(lines), 20))
    data = bytearray(good[: cut % (len(good) + 1)])
    if data and flip >= 0:
        data[flip % len(data)] = byte
    path = tmp / "2026-01-01.jsonl.gz"
    path.write_bytes(bytes(data))
    conn = connect(tmp / "s.db")
    try:
        for _ in range(2):  # twice: the second read never duplicates what the first stored
            try:
                restore(conn, path, post_commit=[])
            except ArchiveError:
                pass
        stored = [r[0] for r in conn.execute("SELECT payload FROM events")]
        assert len(stored) == len(set(stored))
        # Only whole, checked members are read: nothing damaged is ever stored.
        assert set(stored) <= set(lines)
    finally:
        conn.close()


def test_evidence_for_a_task_pruned_without_archive_says_so(tmp_path, capsys):
    db = _store(tmp_path)
    assert main(["prune", "--db", str(db), "--no-archive"]) == 0
    capsys.readouterr()
    assert main(["evidence", "--db", str(db), "old-02"]) == 2
    err = capsys.readouterr().err
    assert "old-02 was pruned on" in err and "without an archive" in err and "sha256" in err


def test_ingest_of_a_damaged_archive_keeps_what_came_before_and_exits_2(tmp_path, capsys):
    db = _store(tmp_path)
    report = run_prune(db, RetentionPolicy(batch_events=25), NOW)
    archive = Path(next(iter(report.archives)))
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) - 30])  # the last member cut short
    fresh = tmp_path / "fresh.db"
    assert main(["ingest", "--db", str(fresh), "--quiet", str(archive)]) == 2
    assert "damaged after" in capsys.readouterr().err
    conn = connect(fresh)
    try:
        stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()
    assert 0 < stored < report.removed_events  # the whole members before the damage
