"""A console killed with SIGKILL in the middle of delivering: the decision is neither lost nor applied twice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from agentdeck.console.service.delivery import CLAIM_SECONDS, DeliverySettings, deliver_one
from conftest import FIXED_NOW
from agentdeck.store import outbox
from agentdeck.store.db import connect
from test_delivery_callback import Receiver
from test_escalations_support import ingest_events, pending_events, row_of

ROOT = Path(__file__).resolve().parents[1]


def wait_for(condition, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_kill_during_callback_then_redeliver_once(sample_db, tmp_path):
    box = tmp_path / "outbox" / "decisions.jsonl"
    # A callback endpoint that accepts the connection and never answers: the
    # dying console is stuck in its POST when it is killed.
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(8)
    port = black_hole.getsockname()[1]
    ingest_events(sample_db, pending_events(callback_url=f"http://127.0.0.1:{port}/decisions"), tmp_path / "in")
    script = textwrap.dedent(f"""
        from pathlib import Path
        from agentdeck.console.service.delivery import DeliverySettings, deliver_one
        from agentdeck.store import decisions
        from agentdeck.store.db import connect
        conn = connect({str(sample_db)!r})
        decisions.decide(conn, "esc-t-high", "approve", by="alice", reason="ok", now={FIXED_NOW!r})
        deliver_one(conn, "esc-t-high", DeliverySettings(Path({str(box)!r}), frozenset({{"127.0.0.1"}}), timeout=60))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        # The outbox line is written before the POST; once it is there, the POST is under way.
        wait_for(lambda: box.exists() and box.read_bytes().endswith(b"\n"))
        wait_for(lambda: row_of(sample_db, "esc-t-high")["delivery_attempts"] == 1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        black_hole.close()

    row = row_of(sample_db, "esc-t-high")
    assert (row["status"], row["decided_by"], row["delivery"]) == ("approved", "alice", "pending")
    assert row["outbox_at"] is not None and row["delivery_claimed_until"] is not None

    with Receiver() as rx:
        # The agent's endpoint is back, on another port: point the escalation at it.
        conn = connect(sample_db)
        conn.execute("UPDATE escalations SET callback_url = ? WHERE escalation_id = 'esc-t-high'", (rx.url,))
        settings = DeliverySettings(box, frozenset({"127.0.0.1"}))
        # While the dead console's claim holds, nobody delivers (no double POST from a live one).
        assert deliver_one(conn, "esc-t-high", settings) is None
        # Once it lapses, the next console (startup or sweep) delivers it.
        later = lambda: time.time() + CLAIM_SECONDS + 1  # noqa: E731
        assert deliver_one(conn, "esc-t-high", settings, clock=later) == "delivered"
        assert [k for k, _ in rx.requests] == [row["idempotency_key"]]
    # The outbox line was not written a second time.
    assert [line["idempotency_key"] for line in outbox.read(box)] == [row["idempotency_key"]]
    assert len(box.read_bytes().splitlines()) == 1
