"""The command line as a user runs it: real subprocesses, real files, a real store."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agentdeck.console.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "traces"


def agentdeck(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "AGENTDECK_DB"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "agentdeck.console.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def count(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def test_ingest_sample_data_prints_a_summary_with_its_rejects(tmp_path):
    from agentdeck.sample_data.build import MALFORMED

    db = tmp_path / "s.db"
    lines = sum(1 for p in SAMPLE.glob("*.jsonl") for ln in p.read_bytes().splitlines() if ln.strip())
    out = agentdeck("ingest", "--db", str(db), str(SAMPLE))
    assert out.returncode == 0, out.stderr
    tasks = count(db, "tasks")
    assert f"{lines - len(MALFORMED)} events, {tasks} tasks, {len(MALFORMED)} rejects in " in out.stdout
    assert "Traceback" not in out.stderr
    assert count(db, "rejects") == len(MALFORMED) == 4
    again = agentdeck("ingest", "--db", str(db), str(SAMPLE))
    assert again.stdout.startswith("0 events, 0 tasks, 0 rejects")
    assert count(db, "events") == lines - len(MALFORMED)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    out = agentdeck(command, "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: agentdeck {command}")
    assert "--db" in out.stdout


def test_top_level_help_lists_the_commands():
    out = agentdeck("--help")
    assert out.returncode == 0
    for command in COMMANDS:
        assert command in out.stdout


def _one_event_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "traces"
    folder.mkdir()
    (folder / "a.jsonl").write_text(json.dumps(
        {"v": 1, "kind": "plan", "ts": "2026-11-24T09:00:00Z", "task_id": "t", "seq": 0, "summary": "s"}) + "\n")
    return folder


def test_store_path_from_flag_then_environment_then_default(tmp_path):
    folder = _one_event_folder(tmp_path)
    work = tmp_path / "cwd"
    work.mkdir()
    flag, env = tmp_path / "flag.db", tmp_path / "env.db"
    assert agentdeck("ingest", "--db", str(flag), str(folder), cwd=work,
                     env={"AGENTDECK_DB": str(env)}).returncode == 0
    assert flag.exists() and not env.exists()
    assert agentdeck("ingest", str(folder), cwd=work, env={"AGENTDECK_DB": str(env)}).returncode == 0
    assert env.exists() and not (work / "var").exists()
    assert agentdeck("ingest", str(folder), cwd=work).returncode == 0
    assert count(work / "var" / "agentdeck.db", "events") == 1


def test_missing_path_is_a_clear_message(tmp_path):
    folder = _one_event_folder(tmp_path)
    db = tmp_path / "s.db"
    out = agentdeck("ingest", "--db", str(db), str(tmp_path / "nope"))
    assert out.returncode == 2  # unusable input (docs/cli.md)
    assert out.stderr.strip() == f"agentdeck: {tmp_path / 'nope'}: no such file or directory"
    out = agentdeck("ingest", "--db", str(db), str(tmp_path / "nope"), str(folder))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stdout.startswith("1 events, 1 tasks, 0 rejects")


def test_folders_are_searched_recursively_like_check(tmp_path):
    folder = tmp_path / "traces"
    (folder / "agent-a" / "2026-11-24").mkdir(parents=True)
    (folder / "outbox").mkdir()
    line = {"v": 1, "kind": "plan", "ts": "2026-11-24T09:00:00Z", "task_id": "deep", "seq": 0, "summary": "s"}
    (folder / "agent-a" / "2026-11-24" / "a.jsonl").write_text(json.dumps(line) + "\n")
    (folder / "outbox" / "decisions.jsonl").write_text('{"not": "a trace"}\n')  # the console's outbox: skipped
    db = tmp_path / "s.db"
    out = agentdeck("ingest", "--db", str(db), str(folder))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("1 events, 1 tasks, 0 rejects")
    assert count(db, "rejects") == 0
    checked = agentdeck("check", str(folder))
    assert "1 tasks in 1 files" in checked.stdout


def test_unusable_store_is_a_clear_message(tmp_path):
    folder = _one_event_folder(tmp_path)
    bad = tmp_path / "not-a-db"
    bad.write_text("this is not a database, it is a note\n" * 100)
    out = agentdeck("ingest", "--db", str(bad), str(folder))
    assert out.returncode == 2
    assert out.stderr.startswith(f"agentdeck: cannot use the store {bad}: the store file is damaged or not an agentdeck store")
    assert "Traceback" not in out.stderr


def test_follow_ingests_new_lines_until_interrupted(tmp_path):
    import signal
    import time

    folder = _one_event_folder(tmp_path)
    db = tmp_path / "s.db"
    proc = subprocess.Popen([sys.executable, "-m", "agentdeck.console.cli", "ingest", "--follow", "--db", str(db), str(folder)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (db.exists() and _safe_count(db) == 1):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        (folder / "b.jsonl").write_text(json.dumps(
            {"v": 1, "kind": "plan", "ts": "2026-11-24T09:00:01Z", "task_id": "u", "seq": 0, "summary": "s"}) + "\n")
        while _safe_count(db) < 2:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out.startswith("2 events, 2 tasks, 0 rejects")
    assert "Traceback" not in err


def _safe_count(db: Path) -> int:
    try:
        return count(db, "events")
    except sqlite3.OperationalError:
        return 0


def test_schema_command_matches_the_committed_schema():
    out = agentdeck("schema")
    assert out.returncode == 0
    committed = (ROOT / "docs" / "trace-schema.json").read_text()
    assert json.loads(out.stdout) == json.loads(committed)


def test_committed_schema_is_generated_from_the_models():
    from agentdeck.store.events import json_schema

    committed = json.loads((ROOT / "docs" / "trace-schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema())), \
        "docs/trace-schema.json is stale: run `agentdeck schema -o docs/trace-schema.json`"


def test_the_summary_counts_the_tasks_this_run_wrote_not_the_store(tmp_path):
    # The count comes from the store (tasks written since the run began), not from ids kept in memory.
    def event(task: str, seq: int) -> str:
        return json.dumps({"v": 1, "kind": "plan", "ts": "2026-11-24T09:00:00Z", "task_id": task, "seq": seq,
                           "summary": "s"}) + "\n"

    folder = tmp_path / "traces"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(event(f"t{n}", 0) for n in range(5)))
    db = tmp_path / "s.db"
    first = agentdeck("ingest", "--db", str(db), str(folder))
    assert first.stdout.startswith("5 events, 5 tasks, 0 rejects"), first.stdout
    # A later file: one more event for a stored task, two events for a new one.
    (folder / "b.jsonl").write_text(event("t3", 1) + event("t9", 0) + event("t9", 1))
    second = agentdeck("ingest", "--db", str(db), str(folder))
    assert second.stdout.startswith("3 events, 2 tasks, 0 rejects"), second.stdout
    assert count(db, "tasks") == 6
