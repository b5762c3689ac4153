"""Delivering a decision to the agent's callback: a real HTTP server on 127.0.0.1, driven from the console."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agentdeck.replay.hosts import check_url
from conftest import FIXED_NOW
from agentdeck.store import outbox
from test_escalations_support import approving, ingest_events, pending_events, row_of, settle


class Receiver:
    """A local decision endpoint: fails the first ``fail_first`` requests with 503, then applies each key once."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: list[tuple[str | None, dict]] = []
        self.effects: dict[str, dict] = {}  # idempotency key -> body, applied once
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                key = self.headers.get("Idempotency-Key")
                with receiver.lock:
                    receiver.requests.append((key, body))
                    fail = len(receiver.requests) <= receiver.fail_first
                    if not fail and key not in receiver.effects:
                        receiver.effects[key] = body
                self.send_response(503 if fail else 200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/decisions"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


async def wait_delivery(pilot, db, escalation_id: str, rounds: int = 200) -> dict:
    """Wait (bounded) until the delivery worker has finished with this escalation."""
    for _ in range(rounds):
        await settle(pilot, 1)
        row = row_of(db, escalation_id)
        if row["delivery"] not in (None, "pending"):
            return row
    raise AssertionError(f"delivery of {escalation_id} did not finish: {row['delivery']}")


async def show_decided(pilot, escalation_id: str) -> None:
    """Switch to the decided view and put the cursor on one escalation."""
    await pilot.press("h")
    await settle(pilot)
    table = pilot.app.screen.query_one("#esc-table")
    table.move_cursor(row=table.get_row_index(escalation_id))
    await settle(pilot)


async def approve_high(pilot, app) -> None:
    await pilot.press("2")
    await settle(pilot)
    await pilot.press("down")  # esc-t-expired is first; esc-t-high second
    await settle(pilot)
    await approving(pilot)
    await pilot.press(*"ok")
    await pilot.press("enter")
    await settle(pilot)


async def test_callback_fails_once_then_succeeds_with_one_effect(sample_db, make_app, tmp_path):
    box = tmp_path / "outbox" / "decisions.jsonl"
    with Receiver(fail_first=1) as rx:
        ingest_events(sample_db, pending_events(callback_url=rx.url), tmp_path / "in")
        app = make_app(sample_db, allow_hosts=frozenset({f"127.0.0.1:{rx.port}"}), outbox=box)
        app.deck.delivery.backoff = 0.01
        async with app.run_test(size=(140, 40)) as pilot:
            await approve_high(pilot, app)
            row = await wait_delivery(pilot, sample_db, "esc-t-high")
        assert row["delivery"] == "delivered" and row["delivery_error"] is None
        assert row["delivery_attempts"] == 2
        key = row["idempotency_key"]
        assert [k for k, _ in rx.requests] == [key, key]  # the retry carried the same key
        assert list(rx.effects) == [key]  # exactly one successful effect
        body = rx.effects[key]
        assert body["escalation_id"] == "esc-t-high" and body["decision"] == "approve"
        assert body["decided_by"] == "tester" and body["reason"] == "ok" and body["idempotency_key"] == key
    lines = outbox.read(box)
    assert [(line["escalation_id"], line["idempotency_key"]) for line in lines] == [("esc-t-high", key)]


async def test_callback_host_not_on_allowlist_is_never_called(sample_db, make_app, tmp_path):
    box = tmp_path / "outbox" / "decisions.jsonl"
    with Receiver() as rx:
        ingest_events(sample_db, pending_events(callback_url=rx.url), tmp_path / "in")
        # Same host, other port: not allowed.
        app = make_app(sample_db, allow_hosts=frozenset({f"127.0.0.1:{rx.port + 1}", "hooks.example.com"}), outbox=box)
        async with app.run_test(size=(140, 40)) as pilot:
            await approve_high(pilot, app)
            row = await wait_delivery(pilot, sample_db, "esc-t-high")
            await show_decided(pilot, "esc-t-high")
            detail = app.screen.query_one("#esc-detail-body").render()
        assert rx.requests == []
    assert row["delivery"] == "blocked" and row["delivery_attempts"] == 0
    assert f"127.0.0.1:{rx.port} is not on the operator's allowlist" in row["delivery_error"]
    assert "blocked" in str(detail)
    # The outbox still carries the decision.
    assert [line["escalation_id"] for line in outbox.read(box)] == ["esc-t-high"]


async def test_failed_delivery_is_retried_with_r(sample_db, make_app, tmp_path):
    with Receiver(fail_first=3) as rx:
        ingest_events(sample_db, pending_events(callback_url=rx.url), tmp_path / "in")
        app = make_app(sample_db, allow_hosts=frozenset({"127.0.0.1"}), outbox=tmp_path / "box.jsonl")
        app.deck.delivery.backoff = 0.01
        app.deck.delivery.attempts = 2
        async with app.run_test(size=(140, 40)) as pilot:
            await approve_high(pilot, app)
            row = await wait_delivery(pilot, sample_db, "esc-t-high")
            assert row["delivery"] == "failed" and "HTTP 503" in row["delivery_error"]
            assert rx.effects == {}
            await show_decided(pilot, "esc-t-high")  # the failed delivery is in the decided view
            await pilot.press("R")
            await settle(pilot)
            row = await wait_delivery(pilot, sample_db, "esc-t-high")
        assert row["delivery"] == "delivered"
        assert list(rx.effects) == [row["idempotency_key"]]
        assert len(rx.requests) == 4


@pytest.mark.parametrize("url,allow,ok", [
    ("http://127.0.0.1:8080/x", {"127.0.0.1"}, True),
    ("http://127.0.0.1:8080/x", {"127.0.0.1:8080"}, True),
    ("http://127.0.0.1:8081/x", {"127.0.0.1:8080"}, False),
    ("https://hooks.example.com/x", {"hooks.example.com:443"}, True),
    ("http://hooks.example.com/x", {"hooks.example.com:443"}, False),
    ("http://HOOKS.example.com/x", {"hooks.example.com"}, True),
    ("http://127.0.0.1:8080@evil.example/x", {"127.0.0.1", "127.0.0.1:8080"}, False),  # userinfo trick
    ("file:///etc/passwd", {"127.0.0.1"}, False),
    ("not a url", {"127.0.0.1"}, False),
])
def test_allowlist_matches_host_or_host_and_port(url, allow, ok):
    assert (check_url(url, frozenset(allow)) is None) is ok
