"""The receiver cannot be held open: connections (and so threads) are bounded,
every read and every request has a time limit, store connections come from a
small pool, and nothing is left behind once the clients are gone."""

from __future__ import annotations

from conftest import HTTP

import os
import socket
import threading
import time

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from receiver_support import agent_spans, wait_for

from agentdeck.store.otlp_receiver import Receiver

PARTIAL_HEADERS = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS:"))


def read_all(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def test_a_thousand_slow_connections_do_not_make_a_thousand_threads(tmp_path):
    fds_before, threads_before, rss_before = open_fds(), threading.active_count(), rss_mib()
    receiver = Receiver(tmp_path / "store.db", "127.0.0.1", 0, max_connections=32, idle_timeout=8.0,
                        request_timeout=8.0).start()
    clients: list[socket.socket] = []
    most_threads = 0
    try:
        for _ in range(1000):
            s = socket.create_connection(receiver.address, timeout=10)
            s.sendall(PARTIAL_HEADERS)  # ...and never the blank line that ends the headers
            clients.append(s)
            most_threads = max(most_threads, threading.active_count())
        assert wait_for(lambda: receiver.stats.busy + receiver.stats.connections == 1000)
        assert receiver.stats.peak_connections <= 32 and receiver.stats.busy > 0
        assert most_threads <= threads_before + 1 + 32  # the accept loop and one a connection
        # Those beyond the bound were told to come back later, not left hanging.
        answer = read_all(clients[-1], 5)  # the first 32 were admitted
        assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer
        # The slow ones are cut off by the request deadline; then the receiver serves again.
        assert wait_for(lambda: receiver.open_connections == 0, timeout=30)
        body = encode_spans(agent_spans()).SerializeToString()
        ok = HTTP.post(receiver.endpoint, content=body, headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        assert ok.status_code == 200
        assert receiver.pool.opened <= 4
    finally:
        for s in clients:
            s.close()
        receiver.close()
    # Nothing kept: no store connection, socket or thread outlives the clients.
    assert wait_for(lambda: threading.active_count() <= threads_before)
    assert open_fds() <= fds_before
    # Nor memory to speak of (an unbounded receiver kept 170 MB after this).
    assert rss_mib() - rss_before < 40


def test_a_trickling_request_is_cut_off_at_its_deadline(tmp_path):
    with Receiver(tmp_path / "store.db", "127.0.0.1", 0, idle_timeout=1.0, request_timeout=1.5) as receiver:
        s = socket.create_connection(receiver.address, timeout=10)
        started = time.monotonic()
        closed = False
        with s:
            # One byte every 0.2 s: each read is within the idle timeout, the whole is not.
            for byte in PARTIAL_HEADERS * 10:
                try:
                    s.sendall(bytes([byte]))
                except OSError:
                    closed = True
                    break
                if time.monotonic() - started > 8:
                    break
                time.sleep(0.2)  # the client's pace, not a wait for the server
            answer = read_all(s, 5)
        assert closed or answer == b"" or answer.startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < 8
        assert receiver.open_connections == 0 or wait_for(lambda: receiver.open_connections == 0)


def test_a_stalled_body_gets_408(tmp_path):
    with Receiver(tmp_path / "store.db", "127.0.0.1", 0, idle_timeout=0.5, request_timeout=5) as receiver:
        with socket.create_connection(receiver.address, timeout=10) as s:
            s.sendall(PARTIAL_HEADERS + b"Content-Length: 1000\r\n\r\n{\"resourceSpans\": [")
            answer = read_all(s, 10)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert b"request not received in time" in answer
        assert receiver.stats.timeouts == 1


def test_concurrent_requests_share_a_few_store_connections(tmp_path):
    fds_before = open_fds()
    statuses: list[int] = []
    with Receiver(tmp_path / "store.db", "127.0.0.1", 0, store_connections=2) as receiver:
        bodies = [encode_spans(agent_spans(tools=3)).SerializeToString() for _ in range(24)]

        def send(body: bytes) -> None:
            r = HTTP.post(receiver.endpoint, content=body, headers={"Content-Type": "application/x-protobuf"}, timeout=30)
            statuses.append(r.status_code)

        threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert statuses == [200] * 24
        assert receiver.pool.opened <= 2
        assert receiver.stats.spans == 24 * 4
    assert open_fds() <= fds_before


def test_bodies_in_progress_are_bounded_and_the_rest_wait(tmp_path):
    """Memory is bounded by the bodies read at once, not by the connections open:
    a request waits (within its own deadline) for a body slot."""
    with Receiver(tmp_path / "store.db", "127.0.0.1", 0, max_bodies=1, idle_timeout=3, request_timeout=1.0) as receiver:
        with socket.create_connection(receiver.address, timeout=10) as stalled:
            stalled.sendall(PARTIAL_HEADERS + b"Content-Length: 1000\r\n\r\n{")  # holds the one body slot
            assert wait_for(lambda: receiver._bodies._value == 0)  # the bound under test
            body = encode_spans(agent_spans()).SerializeToString()
            started = time.monotonic()
            waiting = HTTP.post(receiver.endpoint, content=body, headers={"Content-Type": "application/x-protobuf"}, timeout=10)
            waited = time.monotonic() - started
            assert read_all(stalled, 10).startswith(b"HTTP/1.1 408")
        # It was served once the stalled body was cut off at its deadline, not beside it.
        assert waiting.status_code == 200 and waited >= 0.3
