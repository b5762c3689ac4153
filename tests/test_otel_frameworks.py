"""Traces captured from real, unmodified agent frameworks (tests/fixtures/otel/,
see its README for the packages and versions) become the tasks an on-call
engineer expects: one task per agent run, named after the agent, with the
service's version, the request and the answer as words, sub-agents and
handoffs as steps, tool calls, failures with their reason, and totals that
add up -- whatever way and order the spans arrive in.

The frameworks themselves are not needed here: the fixtures are what they sent.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from hypothesis import HealthCheck, given, settings, strategies as st

from agentdeck.console.widgets.task_filter import describe, parse_filter
from agentdeck.replay.reconstruct import reconstruct
from agentdeck.store import canary, otlp
from agentdeck.store.db import connect
from agentdeck.store.queries import TaskFilter, tasks_newest

from otel_fixtures import ingest_spans, spans, steps, tasks

REFUND_REQUEST = "Refund order 1042 for alice, it arrived broken."


def store_of(framework: str, batch: int | None = None):
    conn = connect(":memory:")
    ingest_spans(conn, spans(framework), batch)
    assert conn.execute("SELECT count(*) FROM rejects").fetchone()[0] == 0
    return conn


def kinds(conn, task_id: str) -> list[str]:
    return [k for k, _p in steps(conn, task_id)]


def plans(conn, task_id: str) -> list[str]:
    return [p["summary"] for k, p in steps(conn, task_id) if k == "plan"]


def tools(conn, task_id: str) -> list[tuple[str, object, str]]:
    return [(p["tool"], p.get("output"), p["status"]) for k, p in steps(conn, task_id) if k == "tool_result"]


def test_openai_agents_with_the_opentelemetry_instrumentation():
    conn = store_of("openai-agents-otel")
    ok, failed = tasks(conn)  # two runs; the "Agent workflow" root is not the agent
    assert (ok["agent"], ok["version"], ok["request"], ok["outcome"]) == ("triage_agent", "2.3.0", REFUND_REQUEST, "success")
    assert ok["agent_stand_in"] == 0
    assert ok["tokens"] == 86 + 21 + 101 + 19 + 104 + 21 + 119 + 16  # both agents' model calls
    assert [t[0] for t in tools(conn, ok["task_id"])] == ["lookup_order", "issue_refund"]
    assert "handoff triage_agent → refund_agent" in plans(conn, ok["task_id"])
    assert any(p.startswith("sub-agent refund_agent: ") for p in plans(conn, ok["task_id"]))
    assert kinds(conn, ok["task_id"]).count("task_start") == 1 and kinds(conn, ok["task_id"]).count("task_end") == 1
    # The SDK object's repr in the output messages is shown as the call it stands for.
    assert "→ lookup_order(" in [p["summary"] for k, p in steps(conn, ok["task_id"]) if k == "reasoning"][0]
    assert (failed["agent"], failed["outcome"]) == ("triage_agent", "failed")
    end = steps(conn, failed["task_id"])[-1][1]
    assert "429" in end["summary"] and "Rate limit" in end["summary"]


FINAL_ANSWER = 'Done. {"order": "order-1042", "amount": 80.5, "customer": "alice"}'


@pytest.mark.parametrize("arrival", ["one request", "a span a request", "reversed", "shuffled"])
def test_after_a_handoff_the_task_answer_is_the_last_agents(arrival):
    """triage_agent hands off to refund_agent, which answers: the task's summary is that final
    answer (not triage_agent's hand-off call), and refund_agent's summary is on its step,
    however the spans are grouped and ordered."""
    for framework in ("openai-agents-otel", "openai-agents-openinference"):
        ss = spans(framework)
        if arrival == "reversed":
            ss = ss[::-1]
        elif arrival == "shuffled":
            random.Random(3).shuffle(ss)
        conn = connect(":memory:")
        ingest_spans(conn, ss, None if arrival == "one request" else 1)
        ok = tasks(conn)[0]
        end = steps(conn, ok["task_id"])[-1]
        assert end[0] == "task_end" and end[1]["summary"].startswith(FINAL_ANSWER), (framework, end)
        assert "transfer_to_refund_agent" not in end[1]["summary"]
        sub = [p for p in plans(conn, ok["task_id"]) if p.startswith("sub-agent refund_agent")]
        assert len(sub) == 1 and "→ " + FINAL_ANSWER in sub[0], (framework, sub)
        if framework == "openai-agents-openinference":
            # Its agent spans log neither: the step shows its model calls' first user
            # message and last answer, whichever requests and order they came in.
            assert sub[0].startswith("sub-agent refund_agent: " + REFUND_REQUEST), sub


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_sub_agent_without_its_own_answer_shows_its_model_calls_one_span_a_request(seed):
    """OpenInference's openai-agents AGENT spans log no input or output: refund_agent's step
    reads its request and answer from the model calls under it (under its 'turn' spans), with
    every span sent on its own in a shuffled order, and again after the same spans are re-sent
    and the store reopened."""
    import tempfile
    from pathlib import Path

    ss = spans("openai-agents-openinference")
    random.Random(seed).shuffle(ss)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.db"
        for i, span in enumerate(ss):
            conn = connect(path)  # a restart between requests: nothing is kept in memory
            ingest_spans(conn, [span], 1)
            if i % 3 == 0:
                ingest_spans(conn, [span], 1)  # a client retry
            conn.close()
        conn = connect(path)
        ok = tasks(conn)[0]
        sub = [p for p in plans(conn, ok["task_id"]) if p.startswith("sub-agent refund_agent")]
        assert len(sub) == 1 and sub[0].startswith(f"sub-agent refund_agent: {REFUND_REQUEST} → {FINAL_ANSWER}"), sub
        conn.close()


def test_a_delegating_agent_keeps_its_own_answer():
    """pydantic-ai: the sub-agent runs inside a tool of support_agent, which answers last."""
    conn = store_of("pydantic-ai")
    ok = tasks(conn)[0]
    summary = steps(conn, ok["task_id"])[-1][1]["summary"]
    sub = plans(conn, ok["task_id"])[0]
    assert summary and summary not in sub  # the caller's answer, not the sub-agent's


def test_openai_agents_with_openinference():
    conn = store_of("openai-agents-openinference")
    ok, failed = tasks(conn)
    assert (ok["agent"], ok["version"], ok["outcome"]) == ("triage_agent", "2.3.0", "success")
    assert ok["request"] == REFUND_REQUEST  # the agent span has none: the first model call's user message
    assert ok["tokens"] == 487
    assert [t[0] for t in tools(conn, ok["task_id"])] == ["lookup_order", "handoff to refund_agent", "issue_refund"]
    assert any(p.startswith("sub-agent refund_agent") for p in plans(conn, ok["task_id"]))
    reasoning = [p["summary"] for k, p in steps(conn, ok["task_id"]) if k == "reasoning"]
    assert reasoning[0].startswith('→ lookup_order({"order_id": "order-1042"})')  # llm.output_messages, not raw JSON
    assert "cache read 21" in reasoning[0]
    assert steps(conn, ok["task_id"])[-1][1]["summary"].startswith("Done.")
    assert failed["outcome"] == "failed" and "429" in steps(conn, failed["task_id"])[-1][1]["summary"]


def test_pydantic_ai_agent_delegating_to_a_sub_agent():
    conn = store_of("pydantic-ai")
    ok, failed = tasks(conn)
    assert (ok["agent"], ok["version"], ok["request"]) == ("support_agent", "1.7.0", REFUND_REQUEST)
    assert ok["tokens"] == 88 + 25 + 103 + 22 + 74 + 24 + 89 + 12 + 117 + 21
    assert abs(ok["cost_usd"] - 0.00012435) < 1e-9  # operation.cost of the five model calls
    assert ok["session"] and ok["session"] == steps(conn, ok["task_id"])[0][1]["input"]["session_id"]
    assert [t[0] for t in tools(conn, ok["task_id"])] == ["lookup_order", "issue_refund", "ask_refund_agent"]
    assert plans(conn, ok["task_id"]) == [
        "sub-agent refund_agent: Refund order order-1042 → Done. refund rf-order-1042 of 80.5 issued"]
    assert steps(conn, ok["task_id"])[0][1]["input"]["instructions"] == "You help customers with orders."
    assert failed["request"] == "RATE_LIMIT please refund order 7"
    assert steps(conn, failed["task_id"])[-1][1]["summary"].startswith("ModelRateLimitError: status_code: 429")


def test_langgraph_with_openinference():
    conn = store_of("langgraph-openinference")
    ok, failed = tasks(conn)
    # No named agent: the graph's calls belong to an agent named after the service.
    assert (ok["agent"], ok["version"], ok["session"], ok["request"]) == ("order-graph", "0.9.1", "sess-42", REFUND_REQUEST)
    assert ok["tokens"] == 82 + 23 + 98 + 27 + 114 + 25
    assert tools(conn, ok["task_id"]) == [("lookup_order", "order order-1042: 80.5 EUR, customer alice", "ok"),
                                          ("issue_refund", "refund rf-order-1042 of 80.5 issued", "ok")]
    end = steps(conn, failed["task_id"])[-1][1]
    assert end["summary"].startswith("OpenAIRateLimitError") and "Traceback" not in end["summary"]


def test_langgraph_with_openllmetry():
    conn = store_of("langgraph-openllmetry")
    # create_agent spans (their own trace) make no task
    ok, failed = tasks(conn)
    assert (ok["agent"], ok["version"], ok["session"], ok["request"]) == ("refund_graph", "0.9.1", "sess-42", REFUND_REQUEST)
    assert ok["tokens"] == 369
    assert [(t[0], t[1]) for t in tools(conn, ok["task_id"])] == [
        ("lookup_order", "order order-1042: 80.5 EUR, customer alice"), ("issue_refund", "refund rf-order-1042 of 80.5 issued")]
    assert [p for p in plans(conn, ok["task_id"])] == []  # refund_graph.workflow is the same agent, not a sub-agent
    assert failed["outcome"] == "failed"


def test_plain_openai_client_calls_belong_to_their_service():
    conn = store_of("openai-v2")
    rows = tasks(conn)
    assert [(r["agent"], r["version"], r["outcome"]) for r in rows] == [
        ("billing-api", "unversioned", "success"), ("billing-api", "unversioned", "success"),
        ("billing-api", "unversioned", "failed")]
    assert [r["tokens"] for r in rows] == [69 + 25, 82 + 17, 0]
    assert steps(conn, rows[2]["task_id"])[-1][1]["summary"].startswith("RateLimitError: Error code: 429")


def test_langfuse_observations():
    conn = store_of("langfuse")
    ok, failed = tasks(conn)
    assert (ok["agent"], ok["session"], ok["request"]) == ("helpdesk_agent", "chat-77", "Please reset the password of ann, she is locked out.")
    assert ok["tokens"] == 74 + 25 + 87 + 27  # from langfuse.observation.usage_details
    assert [t[0] for t in tools(conn, ok["task_id"])] == ["search_kb", "reset_password"]  # retriever, tool
    assert any(p["summary"].startswith("evaluation judge:") for k, p in steps(conn, ok["task_id"]) if k == "reasoning")
    assert steps(conn, ok["task_id"])[0][1]["input"]["user_id"] == "ann"
    assert failed["outcome"] == "failed"


def test_the_session_filter_finds_a_conversation():
    conn = store_of("langgraph-openinference")
    filt = parse_filter("session:sess-42 refund")
    assert filt == TaskFilter(session="sess-42", text=("refund",)) and parse_filter(describe(filt)) == filt
    rows = tasks_newest(conn, filt, 10)
    assert [(r["session"], r["request"]) for r in rows] == [("sess-42", REFUND_REQUEST)]
    assert tasks_newest(conn, parse_filter("session:other"), 10) == []


def test_replay_shows_the_agent_request_and_steps():
    conn = store_of("pydantic-ai")
    ok = tasks(conn)[0]
    r = reconstruct(conn, ok["task_id"])
    assert r is not None and (r.agent, r.request, r.outcome) == ("support_agent", REFUND_REQUEST, "success")
    titles = [s.title for s in r.steps]
    assert titles[0].endswith(REFUND_REQUEST) and titles[-1] == "end: success"
    assert "call lookup_order (call_0001)" in titles


def test_canary_pairs_two_deployed_versions_of_an_unmodified_app():
    conn = connect(":memory:")
    old = spans("pydantic-ai")
    new = [dataclasses.replace(s, trace_id="f" + s.trace_id[1:], resource={**s.resource, "service.version": "1.8.0"})
           for s in old]
    ingest_spans(conn, old)
    ingest_spans(conn, new)
    assert [(p.agent, p.baseline, p.canary) for p in canary.pairs(conn)] == [("support_agent", "1.7.0", "1.8.0")]


FRAMEWORKS = ["openai-agents-otel", "openai-agents-openinference", "pydantic-ai", "langgraph-openinference",
              "langgraph-openllmetry", "openai-v2", "langfuse"]
REFERENCE = {}


def _stored(conn) -> tuple[list, list]:
    events = [tuple(r) for r in conn.execute("SELECT task_id, seq, kind, payload FROM events ORDER BY 1, 2, 3, 4")]
    columns = "task_id, agent, version, request, session, outcome, tokens, round(cost_usd, 9), events, tool_calls, tool_errors, started, ended"
    return events, [tuple(r) for r in conn.execute(f"SELECT {columns} FROM tasks ORDER BY task_id")]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(framework=st.sampled_from(FRAMEWORKS), seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 12),
       resend=st.booleans())
def test_any_grouping_order_and_resending_of_the_spans_stores_the_same(framework, seed, batch, resend):
    if framework not in REFERENCE:
        REFERENCE[framework] = _stored(store_of(framework))
    shuffled = spans(framework)
    random.Random(seed).shuffle(shuffled)
    conn = connect(":memory:")
    ingest_spans(conn, shuffled, batch)
    if resend:  # a client retry, or the same spans from a file too
        ingest_spans(conn, shuffled[: len(shuffled) // 2], batch + 1)
    assert _stored(conn) == REFERENCE[framework]


def test_an_attribute_over_64_kib_is_cut_and_the_step_says_so():
    big = spans("pydantic-ai")
    chat = next(s for s in big if s.name.startswith("chat"))
    text = "context " * 20_000  # 160 KB of RAG context, ordinary
    body = otlp_request_with(chat, {"gen_ai.output.messages": f'[{{"role":"assistant","parts":[{{"type":"text","content":"{text}"}}]}}]'})
    items = otlp.decode_protobuf(body)
    step = next(e for e, _p in items if e.kind == "reasoning")
    assert "[truncated over 64 KiB: gen_ai.output.messages]" in step.summary
    assert len(step.summary) < otlp.MAX_TEXT + 1


def otlp_request_with(span, extra: dict) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    ss = rs.scope_spans.add()
    s = ss.spans.add()
    s.trace_id = bytes.fromhex(span.trace_id)
    s.span_id = bytes.fromhex(span.span_id)
    s.name = span.name
    s.start_time_unix_nano = span.start_ns
    s.end_time_unix_nano = span.end_ns
    for key, value in {**span.attributes, **extra}.items():
        if isinstance(value, str):
            kv = s.attributes.add()
            kv.key = key
            kv.value.string_value = value
    return req.SerializeToString()


async def test_the_tasks_screen_shows_what_the_openai_agents_run_did(tmp_path, make_app):
    from agentdeck.console.widgets.task_table import TaskTable

    conn = connect(tmp_path / "store.db")
    ingest_spans(conn, spans("openai-agents-otel"))
    ok, failed = tasks(conn)
    conn.close()
    app = make_app(tmp_path / "store.db")
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        await app.settled()
        await pilot.pause()
        table = app.screen.query_one(TaskTable)
        assert {ok["task_id"], failed["task_id"]} <= set(table.shown.keys)
        row = " ".join(str(c) for c in table.shown.cells[ok["task_id"]])
        assert "triage_agent" in row and "2.3.0" in row and "success" in row and "None" not in row
        assert "failed" in " ".join(str(c) for c in table.shown.cells[failed["task_id"]])
