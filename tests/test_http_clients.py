"""The console's shared HTTP clients (replay/http_clients.py): one per timeout, made as each call made its own.

Real servers on 127.0.0.1 only. What a user relies on: a shared client changes nothing about what is called
and how (the allowlist is asked per call, no redirect is followed, no cookie carries over from one call to the
next, the timeout is the same), and the console closes it when it exits.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from agentdeck.replay import compensate, http_clients
from agentdeck.replay.compensate import Outcome, Plan
from agentdeck.replay.http_clients import ClientPool
from agentdeck.store.db import connect
from agentdeck.store.txn import atomic
from conftest import point_hook_at
from http_support import answer_json


class Server:
    """Answers 503 to the first ``fail_first`` requests, then 200 (``/set-cookie`` sets a cookie, ``/redirect``
    answers 302 to ``target``), and
    keeps each request's path, Cookie header and the client's port (one port: one kept-alive connection)."""

    def __init__(self, target: str = "", fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.seen: list[tuple[str, str | None, int]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real system's server

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.seen.append((self.path, self.headers.get("Cookie"), self.client_address[1]))
                body = json.dumps({"ok": True}).encode()
                failing = len(server.seen) <= server.fail_first
                headers = ((("Set-Cookie", "session=s3cr3t; Path=/"),) if self.path == "/set-cookie" else
                           (("Location", target),) if self.path == "/redirect" else ())
                answer_json(self, 302 if self.path == "/redirect" else 503 if failing else 200, body, headers)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_one_client_per_timeout_made_as_each_call_made_its_own_and_closed_with_the_pool():
    pool = ClientPool()
    five = pool.get(5.0)
    assert pool.get(5.0) is five and pool.get(10.0) is not five
    assert five.timeout == httpx.Timeout(5.0) and pool.get(10.0).timeout == httpx.Timeout(10.0)
    assert not five.follow_redirects and not five.trust_env
    pool.close()
    assert five.is_closed
    again = pool.get(5.0)  # a call after close (a worker finishing as the console exits) still works
    assert again is not five and not again.is_closed
    pool.close()


def test_a_shared_client_sends_no_cookie_an_earlier_answer_set_and_follows_no_redirect():
    pool = ClientPool()
    with Server() as elsewhere, Server(target=f"{elsewhere.url}/landed") as system:
        client = pool.get(5.0)
        assert client.post(f"{system.url}/set-cookie").status_code == 200
        assert client.post(f"{system.url}/next").status_code == 200
        assert [cookie for _, cookie, _ in system.seen] == [None, None]
        assert client.post(f"{system.url}/redirect").status_code == 302  # an answer, not a way elsewhere
        assert elsewhere.seen == []
        # The same kept-alive connection for every call: no client (and TLS context) made per call.
        assert len({port for _, _, port in system.seen}) == 1
    pool.close()


def count_clients_made(monkeypatch) -> list[float]:
    """The timeouts of the clients made from now on (http_clients.new_client counted)."""
    made: list[float] = []
    real = http_clients.new_client

    def counted(timeout: float) -> httpx.Client:
        made.append(timeout)
        return real(timeout)

    monkeypatch.setattr(http_clients, "new_client", counted)
    return made


def test_compensations_share_the_pool_and_the_allowlist_is_still_asked_for_each(conn, monkeypatch):
    made = count_clients_made(monkeypatch)
    pool = ClientPool()
    with Server(fail_first=1) as system:
        point_hook_at(conn, system.url, "act-0001")
        allow = {f"127.0.0.1:{system.httpd.server_address[1]}"}
        plan = compensate.prepare(conn, "act-0001", allow)
        assert isinstance(plan, Plan)
        # Not allowed any more when run: refused before any client is asked for, nothing called.
        refused = compensate.commit(conn, plan, operator="ops", now=1.0, allow_hosts=frozenset(), clients=pool)
        assert isinstance(refused, Outcome) and not refused.ok and "allowlist" in (refused.error or "")
        assert system.seen == [] and made == []
        first = compensate.commit(conn, plan, operator="ops", now=2.0, allow_hosts=allow, clients=pool)
        second = compensate.commit(conn, plan, operator="ops", now=3.0, allow_hosts=allow, clients=pool)
        assert isinstance(first, Outcome) and not first.ok and first.status == 503
        assert isinstance(second, Outcome) and second.ok and second.status == 200  # the operator's retry
        assert made == [compensate.DEFAULT_TIMEOUT]  # one client, the timeout as before
        assert [path for path, _, _ in system.seen] == ["/compensate", "/compensate"]
        assert len({port for _, _, port in system.seen}) == 1
    pool.close()


def test_a_delivery_uses_the_shared_client_only_when_it_calls_back(sample_db, tmp_path, monkeypatch):
    from agentdeck.console.service.delivery import DeliverySettings, deliver_one
    from test_review_console import _decided_escalation

    made = count_clients_made(monkeypatch)
    pool = ClientPool()
    with Server() as agent:
        esc = _decided_escalation(sample_db, f"{agent.url}/cb", tmp_path / "in")
        blocked = DeliverySettings(tmp_path / "box.jsonl", frozenset(), attempts=1)
        c = connect(sample_db)
        try:
            assert deliver_one(c, esc, blocked, clients=pool) == "blocked"  # not allowed: no client asked for
            assert made == [] and agent.seen == []
            with atomic(c):  # (as the operator's retry, R, sets it)
                c.execute("UPDATE escalations SET delivery = 'pending' WHERE escalation_id = ?", (esc,))
            allowed = DeliverySettings(tmp_path / "box.jsonl", frozenset({f"127.0.0.1:{agent.httpd.server_address[1]}"}),
                                       attempts=1)
            assert deliver_one(c, esc, allowed, clients=pool) == "delivered"
        finally:
            c.close()
        assert made == [allowed.timeout] and [path for path, _, _ in agent.seen] == ["/cb"]
        assert not pool.get(allowed.timeout).is_closed  # the pool's owner closes it, not the call
    pool.close()


async def test_the_console_closes_its_shared_clients_when_it_exits(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=(80, 24)):
        client = app.deck.http.get(5.0)
        assert not client.is_closed
    assert client.is_closed


def test_a_delivery_in_flight_when_the_console_exits_is_delivered_and_its_client_closed_after(sample_db, tmp_path):
    """Quitting (q) right after a decision: the app closes its shared clients while the callback is in flight. The
    call must end as it would have with a client of its own (delivered), not 'failed' on a client closed under it
    ('failed' is not redelivered at the next start: it waits for the operator's R)."""
    from agentdeck.console.service.delivery import DeliverySettings, deliver_one
    from test_review_console import _decided_escalation

    httpd, arrived, answer = slow_server()
    port = httpd.server_address[1]
    pool = ClientPool()
    esc = _decided_escalation(sample_db, f"http://127.0.0.1:{port}/cb", tmp_path / "in")
    settings = DeliverySettings(tmp_path / "box.jsonl", frozenset({f"127.0.0.1:{port}"}), attempts=2, backoff=0.0)
    result: list[str | None] = []

    def deliver() -> None:
        c = connect(sample_db)
        try:
            result.append(deliver_one(c, esc, settings, clients=pool))
        finally:
            c.close()

    worker = threading.Thread(target=deliver)
    worker.start()
    try:
        assert arrived.wait(20)
        client = pool.get(settings.timeout)
        pool.close()  # the console exits (AgentDeck.on_unmount -> DeckService.close)
    finally:
        answer.set()
        worker.join(20)
        httpd.shutdown()
        httpd.server_close()
    assert result == ["delivered"]
    assert client.is_closed  # closed all the same, once the call was done with it


def test_a_compensation_in_flight_when_the_console_exits_records_what_the_system_answered(conn):
    """As for a callback: the compensation the operator confirmed just before q ends with the system's answer
    (done), not 'failed' on a client closed under it while the system did undo."""
    httpd, arrived, answer = slow_server()
    port = httpd.server_address[1]
    pool = ClientPool()
    point_hook_at(conn, f"http://127.0.0.1:{port}", "act-0001")
    allow = frozenset({f"127.0.0.1:{port}"})
    plan = compensate.prepare(conn, "act-0001", allow)
    assert isinstance(plan, Plan)
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(
        compensate.commit(conn, plan, operator="ops", now=2.0, allow_hosts=allow, clients=pool)))
    worker.start()
    try:
        assert arrived.wait(20)
        pool.close()  # the console exits
    finally:
        answer.set()
        worker.join(20)
        httpd.shutdown()
        httpd.server_close()
    [outcome] = result
    assert isinstance(outcome, Outcome) and outcome.ok and outcome.status == 200, outcome


def slow_server() -> tuple[ThreadingHTTPServer, threading.Event, threading.Event]:
    """A server on 127.0.0.1 that answers 200 to a POST once ``answer`` is set (``arrived``: a request came)."""
    arrived, answer = threading.Event(), threading.Event()

    class Slow(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            arrived.set()
            answer.wait(20)
            answer_json(self, 200, b"{}")

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, arrived, answer
