"""kill -9 the ingester at random moments, many times, while agents write: nothing lost, nothing twice.

The ingester is the real command (``python -m agentdeck.console.cli ingest --follow``)
in a subprocess; a writer thread appends events (sometimes half a line at a
time), rotates one file by renaming it and copytruncates another. After the
last kill a final plain ``ingest`` runs to completion, and the set of
``(task_id, seq)`` written must equal the set stored, with no duplicate.
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


class Writer(threading.Thread):
    def __init__(self, folder: Path, seed: int) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.written: list[tuple[str, int]] = []
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
        event = {"v": 1, "kind": "tool_call", "ts": "2026-11-24T09:00:00Z", "task_id": task, "seq": seq,
                 "call_id": f"c{seq}", "tool": "lookup", "input": {"n": seq, "pad": "x" * self.rng.randrange(200)}}
        return json.dumps(event).encode() + b"\n"

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


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(tmp_path):
    folder = tmp_path / "traces"
    folder.mkdir()
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
