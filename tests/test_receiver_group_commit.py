"""Requests that arrive while another is being written share the next transaction
(group commit, ``Receiver._write``): each is answered only once its own spans are
committed, a span the store refuses costs only itself, and a request that cannot
get its turn before its deadline is told to retry with nothing of it stored."""

from __future__ import annotations

import threading

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from conftest import HTTP
from receiver_support import TOKEN_A, TOKEN_B, agent_spans, tasks, trace_hex, wait_for

from agentdeck.store import otlp, otlp_receiver
from agentdeck.store.db import connect
from agentdeck.store.otlp_auth import parse_tokens
from agentdeck.store.otlp_receiver import Receiver

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
def transactions(monkeypatch):
    """The batches apply_batch is given (one a transaction), with ``refuse`` a trace it fails on
    as the store fails on a value it cannot hold."""
    seen: list[set[str]] = []
    refuse: set[str] = set()
    real = otlp_receiver.apply_batch

    def apply_batch(conn, source, parsed, rejects, **kw):
        traces = {item.key[0] for item in parsed}
        seen.append(traces)
        if traces & refuse:
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return real(conn, source, parsed, rejects, **kw)

    monkeypatch.setattr(otlp_receiver, "apply_batch", apply_batch)
    return seen, refuse


def post_while_held(receiver: Receiver, bodies: list[bytes]) -> list:
    """Post ``bodies`` at once while the writer's turn is held, so all of them queue; then let go."""
    answers: list = [None] * len(bodies)

    def send(i: int) -> None:
        answers[i] = HTTP.post(receiver.endpoint, content=bodies[i], headers=PROTOBUF, timeout=30)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    with receiver._writer:
        for t in threads:
            t.start()
        assert wait_for(lambda: len(receiver._queued) == len(bodies))
    for t in threads:
        t.join(60)
    return answers


def stored_events(db) -> int:
    conn = connect(db)
    try:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()


def test_queued_requests_are_committed_in_one_transaction_and_counted_once(tmp_path, transactions):
    seen, _refuse = transactions
    runs = [agent_spans(f"agent-{i}", tools=2) for i in range(4)]
    with Receiver(tmp_path / "store.db", "127.0.0.1", 0, post_commit=[]) as receiver:
        answers = post_while_held(receiver, [encode_spans(r).SerializeToString() for r in runs])
        assert [a.status_code for a in answers] == [200] * 4
        assert all(a.content == b"" for a in answers)  # nothing refused
        assert len(seen) == 1 and seen[0] == {trace_hex(r) for r in runs}
        stored = tasks(receiver.db_path)
        for r in runs:
            assert stored[otlp.task_id(trace_hex(r))]["tool_calls"] == 2
        assert receiver.stats.spans == 12 and receiver.stats.requests == 4
        assert receiver.stats.events == stored_events(receiver.db_path)  # the shared result counted once


def test_a_span_the_store_refuses_costs_only_itself_in_a_shared_transaction(tmp_path, transactions):
    seen, refuse = transactions
    runs = [agent_spans(f"agent-{i}", tools=1) for i in range(3)]
    bad_run = agent_spans("agent-bad", tools=1)
    refuse.add(trace_hex(bad_run))
    # The second request holds a good trace and the refused one.
    bodies = [encode_spans(runs[0]).SerializeToString(), encode_spans(runs[1] + bad_run).SerializeToString(),
              encode_spans(runs[2]).SerializeToString()]
    with Receiver(tmp_path / "store.db", "127.0.0.1", 0, post_commit=[]) as receiver:
        answers = post_while_held(receiver, bodies)
        assert [a.status_code for a in answers] == [200] * 3
        assert answers[0].content == b"" and answers[2].content == b""
        partial = ExportTraceServiceResponse.FromString(answers[1].content).partial_success
        assert partial.rejected_spans == len(bad_run) and "cannot be stored" in partial.error_message
        assert len(seen[0]) == 4  # tried together first
        stored = tasks(receiver.db_path)
        assert {otlp.task_id(trace_hex(r)) for r in runs} <= set(stored)
        assert otlp.task_id(trace_hex(bad_run)) not in stored
        assert receiver.stats.events == stored_events(receiver.db_path)


def test_a_request_that_cannot_get_its_turn_in_time_is_told_to_retry_and_stores_nothing(tmp_path):
    run = agent_spans("agent-late", tools=1)
    body = encode_spans(run).SerializeToString()
    with Receiver(tmp_path / "store.db", "127.0.0.1", 0, post_commit=[], request_timeout=0.5) as receiver:
        with receiver._writer:  # another write that takes longer than the request may wait
            answer = HTTP.post(receiver.endpoint, content=body, headers=PROTOBUF, timeout=30)
            assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
            assert receiver._queued == []  # not left behind for the next writer to commit unanswered
        assert stored_events(receiver.db_path) == 0
        again = HTTP.post(receiver.endpoint, content=body, headers=PROTOBUF, timeout=30)
        assert again.status_code == 200
        assert tasks(receiver.db_path)[otlp.task_id(trace_hex(run))]["tool_calls"] == 1


def test_a_sender_limited_to_some_agents_is_checked_after_the_requests_queued_before_it(tmp_path):
    """host-a may write for refund-agent only. Its tool span joins a trace whose agent span
    (payroll-agent, from host-b) is queued just before it: checked on its turn, after that
    request is committed, it is refused, as it is when the two come one after the other."""
    tokens = parse_tokens(f"host-a {TOKEN_A} agents=refund-agent\nhost-b {TOKEN_B}\n")
    payroll = agent_spans("payroll-agent", tools=1)
    agent_span = [s for s in payroll if s.parent is None]
    tool_span = [s for s in payroll if s.parent is not None]
    answers: dict[str, object] = {}

    def send(name: str, token: str, spans) -> None:
        answers[name] = HTTP.post(receiver.endpoint, content=encode_spans(spans).SerializeToString(),
                                  headers={**PROTOBUF, "Authorization": f"Bearer {token}"}, timeout=30)

    with Receiver(tmp_path / "store.db", "127.0.0.1", 0, post_commit=[], tokens=tokens) as receiver:
        first = threading.Thread(target=send, args=("b", TOKEN_B, agent_span))
        second = threading.Thread(target=send, args=("a", TOKEN_A, tool_span))
        with receiver._writer:
            first.start()
            assert wait_for(lambda: len(receiver._queued) == 1)
            second.start()
            assert wait_for(lambda: len(receiver._queued) == 2)
        first.join(60)
        second.join(60)
        assert answers["b"].status_code == 200  # type: ignore[attr-defined]
        refused = answers["a"]
        assert refused.status_code == 400 and b"payroll-agent" in refused.content  # type: ignore[attr-defined]
        task = tasks(receiver.db_path)[otlp.task_id(trace_hex(payroll))]
        assert task["agent"] == "payroll-agent" and task["tool_calls"] == 0 and task["source"] == "host-b"


def test_an_unexpected_error_in_one_request_fails_only_that_request(tmp_path, monkeypatch):
    """A request whose spans make the store fail in a way nobody foresaw (a bug, not a value it cannot
    hold) gets its 500 alone, as it did when each request had its own transaction: its batch-mates are
    committed and answered 200, not failed with it (a 500 is not retried: their clients drop them)."""
    runs = [agent_spans(f"agent-{i}", tools=1) for i in range(3)]
    poisoned = trace_hex(runs[1])
    real = otlp_receiver.apply_batch

    def apply_batch(conn, source, parsed, rejects, **kw):
        if poisoned in {item.key[0] for item in parsed}:
            raise RuntimeError("an unforeseen failure")
        return real(conn, source, parsed, rejects, **kw)

    monkeypatch.setattr(otlp_receiver, "apply_batch", apply_batch)
    with Receiver(tmp_path / "store.db", "127.0.0.1", 0, post_commit=[]) as receiver:
        answers = post_while_held(receiver, [encode_spans(r).SerializeToString() for r in runs])
        assert [a.status_code for a in answers] == [200, 500, 200]
        assert b"internal error" in answers[1].content and b"unforeseen" not in answers[1].content  # (kept in rejects)
        stored = tasks(receiver.db_path)
        assert otlp.task_id(trace_hex(runs[0])) in stored and otlp.task_id(trace_hex(runs[2])) in stored
        assert otlp.task_id(poisoned) not in stored
        assert receiver.stats.events == stored_events(receiver.db_path)
    # Not only in the log: its body is kept in rejects, which the console's Problems lists.
    conn = connect(tmp_path / "store.db", readonly=True)
    try:
        kept = conn.execute("SELECT error, raw_length FROM rejects").fetchall()
    finally:
        conn.close()
    assert [(e.startswith("HTTP 500: internal error: RuntimeError: an unforeseen failure"), n > 0) for e, n in kept] \
        == [(True, True)]
