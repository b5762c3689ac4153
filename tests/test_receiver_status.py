"""What an OTLP receiver refuses reaches the console's operator: the receiver is an ingester in the store, its
refusals of the last minute are problems (header and Problems view), and a receiver that died shows as stalled.
Before, a sender with a wrong token or pointed at a wrong path lost its spans and only the sender knew."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import httpx
from receiver_support import TOKEN_A, wait_for

from agentdeck.store import health, ingest_status
from agentdeck.store.db import connect
from agentdeck.store.otlp_auth import load_tokens
from agentdeck.store.otlp_receiver import Receiver
from agentdeck.store.receiver_status import ReceiverStatus


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def receiver_problems(db, now: float) -> list[health.Problem]:
    conn = connect(db)
    try:
        return [p for p in health.check(conn, now).problems if "receiver" in p.what or "receiver" in p.detail]
    finally:
        conn.close()


def test_refusals_of_the_last_minute_are_problems_then_go(tmp_path):
    db = tmp_path / "s.db"
    stats = SimpleNamespace(busy=0, refusals={}, latest_refusal={})
    clock = Clock()
    status = ReceiverStatus(db, "http://127.0.0.1:4318", stats, clock=clock, window=60).start()
    try:
        status.check()
        assert receiver_problems(db, clock.now) == []

        clock.now += 1
        stats.refusals.update({401: 2, 404: 1, 503: 1})
        stats.busy = 2  # connections refused for being too many: 503s too
        stats.latest_refusal.update({401: "missing or wrong token (from 10.0.0.7)", 503: "store busy (from sender-b)"})
        status.check()
        problems = {p.level: p for p in receiver_problems(db, clock.now)}
        lost, busy = problems["error"], problems["warn"]
        assert lost.what == "3 requests refused in the last 60 s: OTLP receiver http://127.0.0.1:4318"
        assert "2 no valid token (401)" in lost.detail and "1 no such path (404)" in lost.detail
        assert "10.0.0.7" in lost.detail and "Authorization=Bearer" in lost.todo and "/v1/traces" in lost.todo
        assert busy.what.startswith("3 requests turned away in the last 60 s")
        assert "retry" in busy.todo

        clock.now += 30
        stats.refusals[401] = 3  # one more, 30 s later
        status.check()
        lost = next(p for p in receiver_problems(db, clock.now) if p.level == "error")
        assert lost.what.startswith("4 requests refused")

        clock.now += 31  # the first refusals are now more than a minute old
        status.check()
        lost = next(p for p in receiver_problems(db, clock.now) if p.level == "error")
        assert lost.what.startswith("1 request refused") and "1 no valid token (401)" in lost.detail

        clock.now += 31
        status.check()
        assert receiver_problems(db, clock.now) == [], "a minute without refusals: nothing to show"
    finally:
        status.close()
    conn = connect(db)
    (row,) = ingest_status.ingesters(conn)
    conn.close()
    assert row.state == "stopped" and row.paths == ("OTLP receiver http://127.0.0.1:4318",)


def test_a_receiver_that_stops_beating_is_shown_stalled(tmp_path):
    db = tmp_path / "s.db"
    clock = Clock()
    status = ReceiverStatus(db, "http://127.0.0.1:4318", SimpleNamespace(busy=0, refusals={}, latest_refusal={}),
                            clock=clock).start()
    status.check()
    status._stop.set()  # killed: no more beats, no word said (close is never called)
    conn = connect(db)
    try:
        (stalled,) = [p for p in health.check(conn, clock.now + health.STALL_AFTER_S + 1).problems
                      if p.key.startswith("ingest:stalled:")]
    finally:
        conn.close()
    assert "OTLP receiver http://127.0.0.1:4318" in stalled.detail


def test_a_wrong_token_and_a_wrong_path_show_within_two_seconds(tmp_path):
    db = tmp_path / "s.db"
    tokens = tmp_path / "tokens"
    tokens.write_text(f"host-a {TOKEN_A}\n")
    with Receiver(db, "127.0.0.1", 0, tokens=load_tokens(tokens)) as receiver:
        status = ReceiverStatus(db, receiver.endpoint, receiver.stats, tick=0.05).start()
        try:
            with httpx.Client(timeout=10) as http:
                assert http.post(receiver.endpoint, content=b"{}", headers={
                    "Content-Type": "application/json", "Authorization": "Bearer wrong-token-0000000000"}).status_code == 401
                wrong_path = receiver.endpoint.replace("/v1/traces", "/v1/metrics")
                assert http.post(wrong_path, content=b"{}", headers={
                    "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN_A}"}).status_code == 404

            def shown() -> bool:
                found = receiver_problems(db, time.time())
                return any("1 no valid token (401)" in p.detail and "1 no such path (404)" in p.detail for p in found)

            assert wait_for(shown, timeout=2.0), receiver_problems(db, time.time())
        finally:
            status.close()


def test_agentdeck_receive_registers_and_says_it_stopped(tmp_path):
    db = tmp_path / "s.db"
    proc = subprocess.Popen([sys.executable, "-m", "agentdeck.console.cli", "receive", "--db", str(db), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "receiving OTLP/HTTP traces at http://127.0.0.1:" in line

        def running() -> bool:
            conn = connect(db)
            try:
                return [r.state for r in ingest_status.ingesters(conn)] == ["running"]
            finally:
                conn.close()

        assert wait_for(running, timeout=10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    conn = connect(db)
    (row,) = ingest_status.ingesters(conn)
    conn.close()
    assert row.state == "stopped" and row.paths[0].startswith("OTLP receiver http://127.0.0.1:")


def test_a_receiver_does_not_report_the_files_it_does_not_follow_as_behind(tmp_path):
    """The header's "behind" is the bytes written to followed files and not yet stored, summed over the live
    ingesters. A receiver follows no file: counting every file source in the store as its own backlog showed a
    console following a file beside its receiver twice as far behind as it was (and a file nobody follows as a
    backlog of the receiver's)."""
    from agentdeck.store.tailer import Tailer

    db = tmp_path / "s.db"
    trace = tmp_path / "t.jsonl"
    trace.write_text("not an event\n")
    conn = connect(db)
    try:
        Tailer(conn, [trace]).poll()
    finally:
        conn.close()
    with trace.open("a") as f:
        f.write("x" * 1000)  # written, not a whole line yet: behind by these 1000 bytes
    clock = Clock()
    follower = ingest_status.StatusRecorder(connect(db), [trace], ingester="host:1", clock=clock)
    follower.start()
    status = ReceiverStatus(db, "http://127.0.0.1:4318", SimpleNamespace(busy=0, refusals={}, latest_refusal={}),
                            clock=clock, ingester="host:2").start()
    try:
        clock.now += 10  # both beat
        assert follower.tick({}) and status.check()
        conn = connect(db)
        try:
            rows = {r.ingester: r.behind_bytes for r in ingest_status.ingesters(conn)}
            behind = health.check(conn, clock.now).behind_bytes
        finally:
            conn.close()
        assert rows == {"host:1": 1000, "host:2": 0}
        assert behind == 1000
    finally:
        status.close()
        follower.conn.close()


def test_the_newest_refusal_named_is_the_newest_one(tmp_path):
    """"newest:" tells the operator which sender to look at now. A 401 then a 404 named the 401's sender (the
    statuses were looked at in a fixed order), sending the operator after a sender that had stopped."""
    db = tmp_path / "s.db"
    tokens = tmp_path / "tokens"
    tokens.write_text(f"host-a {TOKEN_A}\n")
    clock = Clock()
    with Receiver(db, "127.0.0.1", 0, tokens=load_tokens(tokens)) as receiver:
        status = ReceiverStatus(db, receiver.endpoint, receiver.stats, clock=clock).start()
        try:
            with httpx.Client(timeout=10) as http:
                assert http.post(receiver.endpoint, content=b"{}", headers={
                    "Content-Type": "application/json", "Authorization": "Bearer wrong-token-0000000000"}).status_code == 401
                assert http.post(receiver.endpoint.replace("/v1/traces", "/v1/metrics"), content=b"{}", headers={
                    "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN_A}"}).status_code == 404
            status.check()
            (lost,) = receiver_problems(db, clock.now)
            assert lost.detail.split("newest: ", 1)[1].startswith("no such path: /v1/metrics"), lost.detail

            with httpx.Client(timeout=10) as http:
                assert http.post(receiver.endpoint, content=b"{}", headers={
                    "Content-Type": "application/json", "Authorization": "Bearer wrong-token-0000000000"}).status_code == 401
            clock.now += 1
            status.check()
            (lost,) = receiver_problems(db, clock.now)
            assert lost.detail.split("newest: ", 1)[1].startswith("unauthenticated"), lost.detail
        finally:
            status.close()


def test_a_connection_refused_for_being_one_too_many_is_named(tmp_path):
    """A receiver at its connection limit answers 503 before reading a request: "newest:" said nothing."""
    db = tmp_path / "s.db"
    clock = Clock()
    with Receiver(db, "127.0.0.1", 0, max_connections=1) as receiver:
        status = ReceiverStatus(db, receiver.endpoint, receiver.stats, clock=clock).start()
        try:
            with httpx.Client(timeout=10) as first, httpx.Client(timeout=10) as second:
                assert first.post(receiver.endpoint, content=b"{}",
                                  headers={"Content-Type": "application/json"}).status_code == 200  # holds its slot
                assert second.post(receiver.endpoint, content=b"{}",
                                   headers={"Content-Type": "application/json"}).status_code == 503
            status.check()
            (busy,) = receiver_problems(db, clock.now)
            newest = busy.detail.split("newest: ", 1)[1]
            assert "connections" in newest and "127.0.0.1" in newest, busy.detail
        finally:
            status.close()


def test_refusals_that_go_on_keep_the_time_they_began(tmp_path):
    """A sender refused again and again is one problem since its first refusal: the Problems view said "(1 s
    ago)" for a sender refused for ten minutes, because every new count restarted the problem's since."""
    db = tmp_path / "s.db"
    stats = SimpleNamespace(busy=0, refusals={}, latest_refusal={})
    clock = Clock()
    status = ReceiverStatus(db, "http://127.0.0.1:4318", stats, clock=clock, window=60).start()
    try:
        clock.now += 1
        began = clock.now
        stats.refusals[401] = 1
        stats.latest_refusal[401] = "unauthenticated (from 10.0.0.7)"
        status.check()
        for n in range(2, 12):  # one more every 5 s, for 50 s
            clock.now += 5
            stats.refusals[401] = n
            status.check()
        (lost,) = receiver_problems(db, clock.now)
        assert lost.what.startswith("11 requests refused")
        assert lost.since == began

        clock.now += 61  # a minute without: gone; the next refusal is a new problem, since then
        status.check()
        assert receiver_problems(db, clock.now) == []
        clock.now += 1
        stats.refusals[401] = 12
        status.check()
        (lost,) = receiver_problems(db, clock.now)
        assert lost.since == clock.now
    finally:
        status.close()


def _raw(endpoint: str, request: bytes) -> bytes:
    """Send ``request`` as is (an HTTP client always frames its body right) and read the answer."""
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(endpoint)
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_request_refused_for_its_framing_is_on_problems(tmp_path):
    """A body with no Content-Length (411), a wrong one or a bad chunk size (400) is refused, and the sender drops
    its spans (OTLP exporters retry neither): before, neither the receiver's problems nor the rejects said so."""
    db = tmp_path / "s.db"
    clock = Clock()
    clock.now = time.time()  # (the rejects' times are the real ones)
    with Receiver(db, "127.0.0.1", 0) as receiver:
        status = ReceiverStatus(db, receiver.endpoint, receiver.stats, clock=clock).start()
        try:
            head = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            assert _raw(receiver.endpoint, head + b"\r\n").startswith(b"HTTP/1.1 411")
            assert _raw(receiver.endpoint, head + b"Content-Length: twelve\r\n\r\n{}").startswith(b"HTTP/1.1 400")
            assert _raw(receiver.endpoint, head + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
                        ).startswith(b"HTTP/1.1 400")
            status.check()
            conn = connect(db)
            try:
                found = {p.key: p for p in health.check(conn, clock.now).problems}
            finally:
                conn.close()
            lost = found[f"source:OTLP receiver {receiver.endpoint}"]
            assert "1 no Content-Length (411)" in lost.detail and lost.level == "error", lost
            assert found["rejects"].what.startswith("2 trace lines rejected"), found["rejects"]
        finally:
            status.close()


def test_refused_spans_that_could_not_be_kept_in_rejects_are_a_problem(tmp_path):
    """A refused body whose raw text the store could not take (no connection in time) was only in the log."""
    from agentdeck.store.otlp_receiver import HttpError

    db = tmp_path / "s.db"
    with Receiver(db, "127.0.0.1", 0) as receiver:
        def no_connection(timeout):
            raise HttpError(503, 14, "the store is busy (all its connections are in use)")

        real_get = receiver.pool.get
        receiver.pool.get = no_connection  # type: ignore[method-assign]
        try:
            receiver.record_reject("HTTP 400: not JSON", b"{oops", timeout=0.01)
        finally:
            receiver.pool.get = real_get  # type: ignore[method-assign]
        clock = Clock()
        status = ReceiverStatus(db, receiver.endpoint, receiver.stats, clock=clock).start()
        try:
            status.check()
            (kept,) = [p for p in receiver_problems(db, clock.now) if "not kept in rejects" in p.what]
        finally:
            status.close()
    assert kept.level == "error" and kept.what.startswith("1 refused span or body not kept in rejects")
    assert "not JSON" in kept.detail and "receiver's log" in kept.todo
