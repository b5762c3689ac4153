"""The console's ingest process follows a trace folder with the batch wait it is given ([ingest] batch_wait)."""

from __future__ import annotations

import subprocess
import sys
import time

from agentdeck.store.db import connect
from tasks_support import task_lines, write_trace


def test_the_ingest_process_commits_appends_with_the_batch_wait_it_is_given(tmp_path):
    db = tmp_path / "s.db"
    traces = tmp_path / "traces"
    traces.mkdir()
    connect(db).close()
    proc = subprocess.Popen([sys.executable, "-m", "agentdeck.console.ingest_process", "--db", str(db),
                             "--no-canary", "--batch-wait", "0.005", "--with-parent", str(traces)],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        conn = connect(db, readonly=True)
        for n in range(3):  # appended while it follows, one task at a time: each committed
            write_trace(traces / "agent.jsonl", task_lines(f"t-{n}", at=n * 10))
            deadline = time.monotonic() + 20
            while conn.execute("SELECT count(*) FROM tasks").fetchone()[0] < n + 1:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "not committed in time"
                time.sleep(0.01)
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 3 * 4
        conn.close()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # (--with-parent: it stops when its stdin closes)
        proc.wait(10)
    assert proc.returncode == 0
