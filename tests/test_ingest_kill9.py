"""kill -9 the ingester at random moments, many times, while agents write: nothing lost, nothing twice.

The ingester is the real command (``python -m agentdeck.console.cli ingest --follow``)
in a subprocess; a writer thread appends events (sometimes half a line at a
time), rotates one file by renaming it and copytruncates another. After the
last kill a final plain ``ingest`` runs to completion, and the set of
``(task_id, seq)`` written must equal the set stored, with no duplicate.

Derived rows are held to the same bar: the agents break their contract now
and then (a tool it does not allow), and the violations stored after all the
kills must equal those of one clean ingest of every line written.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KILLS = 12
CONTRACT = """
agent = "kill-bot"
[tools]
allow = ["lookup"]
"""


class Writer(threading.Thread):
    def __init__(self, folder: Path, seed: int) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.written: list[tuple[str, int]] = []
        self.lines: list[bytes] = []  # every line, in the order written (for the clean ingest)
        self.seq: dict[str, int] = {}
        self.rotated = self.truncated = False
        # Set by the test once the store knows the file: a file renamed away
        # to a name that does not match before any ingester saw it is, by
        # design, not read (see docs/trace-format.md).
        self.rotate = threading.Event()
        self.truncate = threading.Event()

    def line(self, task: str) -> bytes:
        seq = self.seq.get(task, 0)
        self.seq[task] = seq + 1
        self.written.append((task, seq))
        env = {"v": 1, "ts": "2026-11-24T09:00:00Z", "task_id": task, "seq": seq}
        if seq == 0:
            event = {**env, "kind": "task_start", "request_id": f"r-{task}", "agent": "kill-bot",
                     "agent_version": {"id": "v1"}}
        else:
            # Now and then a tool the contract does not allow: a violation to derive.
            tool = "shell.exec" if self.rng.random() < 0.05 else "lookup"
            event = {**env, "kind": "tool_call", "call_id": f"c{seq}", "tool": tool,
                     "input": {"n": seq, "pad": "x" * self.rng.randrange(200)}}
        line = json.dumps(event).encode() + b"\n"
        self.lines.append(line)
        return line

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            for i in range(3):
                path = self.folder / f"agent-{i}.jsonl"
                data = b"".join(self.line(f"task-{i}-{n // 400}") for _ in range(self.rng.randrange(1, 10)))
                with open(path, "ab", buffering=0) as f:
                    if self.rng.random() < 0.3:  # a line split over two writes
                        cut = self.rng.randrange(1, len(data))
                        f.write(data[:cut])
                        time.sleep(0.002)
                        f.write(data[cut:])
                    else:
                        f.write(data)
            n += 1
            if self.rotate.is_set() and not self.rotated:
                (self.folder / "agent-0.jsonl").rename(self.folder / "agent-0.jsonl.1")
                self.rotated = True
            if self.truncate.is_set() and not self.truncated:
                src = self.folder / "agent-1.jsonl"
                shutil.copyfile(src, self.folder / "agent-1.jsonl.1")
                with open(src, "r+b") as f:
                    f.truncate(0)
                self.truncated = True
            time.sleep(0.005)


def count(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # not migrated yet
    finally:
        conn.close()


def known(db: Path, name: str) -> bool:
    """The store has read some of this file."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM sources WHERE path LIKE ? AND offset > 0",
                            (f"%/{name}",)).fetchone()[0] > 0
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def ingest_cmd(db: Path, folder: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "agentdeck.console.cli", "ingest", "--quiet", "--db", str(db), str(folder), *extra]


def violations(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        rows = sorted(conn.execute("SELECT task_id, seq, rule, detail FROM violations").fetchall())
        # tasks.violations is each task's row count
        assert conn.execute("""SELECT count(*) FROM tasks t WHERE violations !=
                               (SELECT count(*) FROM violations v WHERE v.task_id = t.task_id)""").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM contract_pending").fetchone()[0] == 0
        return rows
    finally:
        conn.close()


def contract_folder(folder: Path) -> Path:
    """A trace folder with the kill-bot contract in it."""
    (folder / "contracts").mkdir(parents=True)
    (folder / "contracts" / "kill-bot.toml").write_text(CONTRACT)
    return folder


def write_contract_backlog(folder: Path, seed: int, files: int, lines: int, per_task: int, prefix: str) -> Writer:
    """``files`` files of ``lines`` lines each, ``per_task`` lines a task, written at once (no writer thread)."""
    writer = Writer(folder, seed)
    for i in range(files):
        with open(folder / f"agent-{i}.jsonl", "wb") as f:
            for n in range(lines):
                f.write(writer.line(f"{prefix}-{i}-{n // per_task}"))
    return writer


def clean_violations(tmp_path: Path, writer: Writer, timeout: float = 60) -> list[tuple]:
    """The violations of one clean ingest of every line ``writer`` wrote: what a killed store must hold."""
    clean = contract_folder(tmp_path / "clean")
    (clean / "all.jsonl").write_bytes(b"".join(writer.lines))
    once = subprocess.run(ingest_cmd(tmp_path / "clean.db", clean), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert once.returncode == 0, once.stderr
    return violations(tmp_path / "clean.db")


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(tmp_path):
    folder = tmp_path / "traces"
    folder.mkdir()
    (folder / "contracts").mkdir()
    (folder / "contracts" / "kill-bot.toml").write_text(CONTRACT)
    db = tmp_path / "store.db"
    rng = random.Random(int.from_bytes(os.urandom(4)))
    writer = Writer(folder, rng.randrange(1 << 30))
    writer.start()
    try:
        for round_ in range(KILLS):
            before = count(db)
            proc = subprocess.Popen(ingest_cmd(db, folder, "--follow"), cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if round_ % 3:
                # Most kills land while it is committing: wait until it has
                # committed something, then kill at a random moment after.
                deadline = time.monotonic() + 20
                while count(db) == before:
                    assert proc.poll() is None, "the ingester exited by itself"
                    assert time.monotonic() < deadline, "the ingester committed nothing in 20 s"
                    time.sleep(0.01)
                time.sleep(rng.uniform(0, 0.3))
            else:
                time.sleep(rng.uniform(0, 0.5))  # anywhere, start-up and migrations included
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
            if round_ >= 3 and known(db, "agent-0.jsonl"):
                writer.rotate.set()  # rename rotation, while no ingester runs or while one does
            if round_ >= 6 and known(db, "agent-1.jsonl"):
                writer.truncate.set()
    finally:
        writer.stop.set()
        writer.join(10)
    assert writer.rotated and writer.truncated

    final = subprocess.run(ingest_cmd(db, folder), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert final.returncode == 0, final.stderr

    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT task_id, seq FROM events").fetchall()
    assert len(rows) == len(writer.written)
    assert set(rows) == set(writer.written)
    assert conn.execute("SELECT count(*) FROM rejects").fetchone()[0] == 0
    # The tasks summary counts each event once too.
    assert conn.execute("SELECT sum(events) FROM tasks").fetchone()[0] == len(writer.written)
    conn.close()

    # Violations are as exactly-once as events: the same as one clean ingest of every line written.
    expected = clean_violations(tmp_path, writer)
    assert expected, "the writer broke the contract at least once"
    assert violations(db) == expected


def test_kill_9_during_a_bulk_import_keeps_violations_exactly_once(tmp_path):
    """A backlog large enough for parse processes, killed mid-import a few times: violations equal a clean import's."""
    folder = contract_folder(tmp_path / "traces")
    writer = write_contract_backlog(folder, 7, files=3, lines=30_000, per_task=50, prefix="bulk")
    assert sum(p.stat().st_size for p in folder.glob("*.jsonl")) > 16 * 1024 * 1024  # the parallel path
    db = tmp_path / "store.db"
    rng = random.Random(int.from_bytes(os.urandom(4)))
    for _ in range(4):
        before = count(db)
        proc = subprocess.Popen(ingest_cmd(db, folder), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while count(db) == before and proc.poll() is None:
            assert time.monotonic() < deadline, "the import committed nothing in 60 s"
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    final = subprocess.run(ingest_cmd(db, folder), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    conn = sqlite3.connect(db)
    assert sorted(conn.execute("SELECT task_id, seq FROM events").fetchall()) == sorted(writer.written)
    conn.close()

    expected = clean_violations(tmp_path, writer, timeout=120)
    assert len(expected) > 100
    assert violations(db) == expected
