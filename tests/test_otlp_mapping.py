"""How spans become tasks and steps: GenAI conventions, OpenInference kinds,
agentdeck span events, failures, and a seq that does not depend on arrival."""

from __future__ import annotations

import base64
import json

from agentdeck.store import formats, otlp
from agentdeck.store.db import connect
from agentdeck.store.ingest import apply_batch

TRACE = "0af7651916cd43dd8448eb211c80319c"
T0 = 1_795_600_000_000_000_000  # ns


def attr(key, value):
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


def span(span_id, name, attrs, *, parent="b7ad6b7169203331", start_ms=0, end_ms=100, error=None, events=()):
    s = {
        "traceId": TRACE, "spanId": span_id, "name": name,
        "startTimeUnixNano": str(T0 + start_ms * 1_000_000), "endTimeUnixNano": str(T0 + end_ms * 1_000_000),
        "attributes": [attr(k, v) for k, v in attrs.items()], "events": list(events),
        "status": {"code": 2, "message": error} if error else {"code": 1},
    }
    if parent:
        s["parentSpanId"] = parent
    return s


def request(*spans):
    return json.dumps({"resourceSpans": [{"resource": {"attributes": [attr("service.name", "support-bot")]},
                                          "scopeSpans": [{"spans": list(spans)}]}]}).encode()


def decoded(*spans):
    items = otlp.decode_line(request(*spans))
    assert items.rejected == []
    # (items without an event: what claim keeps of a span that makes no step, its parent link)
    return [(e.kind, e.seq, json.loads(p)) for e, p in items if e is not None]


OPENINFERENCE = [
    span("b7ad6b7169203331", "support agent", {"openinference.span.kind": "AGENT", "agent.name": "support agent",
                                               "input.value": "reset my password",
                                               "output.value": "done"}, parent=None, end_ms=900),
    span("0000000000000002", "ChatOpenAI", {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
                                            "llm.token_count.prompt": 300, "llm.token_count.completion": 40}, start_ms=10, end_ms=200),
    span("0000000000000003", "reset_password", {"openinference.span.kind": "TOOL", "tool.name": "reset_password",
                                                "input.value": '{"user": "ann"}', "output.value": "ok"}, start_ms=250, end_ms=400),
    span("0000000000000004", "pii-filter", {"openinference.span.kind": "GUARDRAIL"}, start_ms=420, end_ms=430,
         error="email address in the reply"),
    span("0000000000000005", "RunnableSequence", {"openinference.span.kind": "CHAIN"}, start_ms=5, end_ms=890),
]


def test_openinference_spans_map_like_genai_ones():
    events = decoded(*OPENINFERENCE)
    kinds = [k for k, _s, _p in sorted(events, key=lambda e: e[1])]
    assert kinds == ["task_start", "reasoning", "tool_call", "tool_result", "policy_check", "task_end"]
    by_kind = {k: p for k, _s, p in events}
    assert by_kind["task_start"]["agent"] == "support agent"
    assert by_kind["task_start"]["request"] == "reset my password"
    assert (by_kind["reasoning"]["model"], by_kind["reasoning"]["tokens_in"], by_kind["reasoning"]["tokens_out"]) == ("gpt-4o-mini", 300, 40)
    assert by_kind["tool_call"]["input"] == {"user": "ann"} and by_kind["tool_result"]["output"] == "ok"
    assert by_kind["policy_check"]["verdict"] == "deny"  # a guardrail span in ERROR denied
    assert by_kind["policy_check"]["reason"] == "email address in the reply"
    assert by_kind["task_end"]["outcome"] == "success" and by_kind["task_end"]["summary"] == "done"


def test_error_status_makes_failed_steps_and_a_failed_task():
    events = decoded(
        span("b7ad6b7169203331", "invoke_agent", {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "ops"},
             parent=None, error="gave up"),
        span("0000000000000002", "chat", {"gen_ai.operation.name": "chat"}, error="rate limited"),
        span("0000000000000003", "execute_tool restart", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "restart"},
             error="permission denied"),
    )
    by_kind = {k: p for k, _s, p in events}
    assert by_kind["task_end"]["outcome"] == "failed" and by_kind["task_end"]["summary"] == "gave up"
    assert by_kind["reasoning"]["status"] == "error" and by_kind["reasoning"]["summary"] == "rate limited"
    assert by_kind["tool_result"]["status"] == "error" and by_kind["tool_result"]["output"] == "permission denied"


def test_agentdeck_span_events_carry_what_the_conventions_do_not():
    deadline = "2026-11-24T10:00:00Z"
    escalation = {"name": "agentdeck.escalation", "timeUnixNano": str(T0 + 50_000_000), "attributes": [
        attr("agentdeck.escalation_id", "esc-9"), attr("agentdeck.risk", "high"), attr("agentdeck.reason", "over limit"),
        attr("agentdeck.deadline", deadline), attr("agentdeck.callback_url", "http://127.0.0.1:9/decide"),
        attr("agentdeck.proposed_action", json.dumps({"system": "payments", "operation": "refund", "amount": 900})),
    ]}
    policy = {"name": "agentdeck.policy_check", "timeUnixNano": str(T0 + 40_000_000), "attributes": [
        attr("agentdeck.policy_id", "refund-limit"), attr("agentdeck.policy_version", "3"), attr("agentdeck.verdict", "escalate"),
    ]}
    exception = {"name": "exception", "timeUnixNano": str(T0), "attributes": [attr("exception.message", "x")]}
    events = decoded(span("b7ad6b7169203331", "invoke_agent", {"gen_ai.operation.name": "invoke_agent"},
                          parent=None, events=[escalation, policy, exception]))
    ordered = [k for k, _s, _p in sorted(events, key=lambda e: e[1])]
    assert ordered == ["task_start", "policy_check", "escalation", "task_end"]  # by event time, not list order
    esc = next(p for k, _s, p in events if k == "escalation")
    assert esc["proposed_action"]["amount"] == 900 and esc["risk"] == "high"
    conn = connect(":memory:")
    apply_batch(conn, None, otlp.decode_line(request(span("b7ad6b7169203331", "invoke_agent",
                {"gen_ai.operation.name": "invoke_agent"}, parent=None, events=[escalation]))), [])
    row = conn.execute("SELECT status, task_id FROM escalations WHERE escalation_id = 'esc-9'").fetchone()
    assert tuple(row) == ("pending", otlp.task_id(TRACE))


def test_a_tool_span_whose_agent_span_never_arrives_still_makes_a_task_of_its_service():
    conn = connect(":memory:")
    apply_batch(conn, None, otlp.decode_line(request(OPENINFERENCE[2])), [])
    row = conn.execute("SELECT task_id, agent, tool_calls, last_tool, outcome FROM tasks").fetchone()
    assert tuple(row) == (otlp.task_id(TRACE), "support-bot", 1, "reset_password", "success")


def stored_events(conn) -> list[tuple]:
    return [tuple(r) for r in conn.execute("SELECT task_id, seq, kind, payload FROM events ORDER BY task_id, seq, kind, payload")]


def test_seq_and_the_task_do_not_depend_on_how_spans_are_grouped_or_ordered():
    together = decoded(*OPENINFERENCE)
    one, apart = connect(":memory:"), connect(":memory:")
    apply_batch(one, None, otlp.decode_line(request(*OPENINFERENCE)), [])
    for s in reversed(OPENINFERENCE):  # the agent span last, and each step framing the task until it comes
        apply_batch(apart, None, otlp.decode_line(request(s)), [])
    for s in OPENINFERENCE:  # a re-export changes nothing
        apply_batch(apart, None, otlp.decode_line(request(s)), [])
    assert stored_events(one) == stored_events(apart)
    columns = "task_id, agent, request, outcome, tokens, tool_calls, events"
    assert one.execute(f"SELECT {columns} FROM tasks").fetchall() == apart.execute(f"SELECT {columns} FROM tasks").fetchall()
    seqs = {k: s for k, s, _p in together}
    assert seqs["task_start"] == 0 and seqs["task_end"] == 9_999_999
    assert 0 < seqs["reasoning"] < seqs["tool_call"] < seqs["tool_result"] < seqs["policy_check"] < 9_999_999


def test_ids_in_hex_or_base64_and_either_field_spelling_decode_alike():
    hex_line = request(OPENINFERENCE[2])
    doc = json.loads(hex_line)
    s = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    for key in ("traceId", "spanId", "parentSpanId"):
        s[key] = base64.b64encode(bytes.fromhex(s[key])).decode()
    s["start_time_unix_nano"] = s.pop("startTimeUnixNano")
    snake = json.dumps({"resource_spans": [{"resource": doc["resourceSpans"][0]["resource"],
                                            "scope_spans": doc["resourceSpans"][0]["scopeSpans"]}]}).encode()
    assert [p for _e, p in otlp.decode_line(hex_line)] == [p for _e, p in otlp.decode_line(snake)]
    assert formats.is_otlp(b'  { \t"resource_spans": []}')
    assert formats.is_otlp(b'{ "resourceSpans": []}')
    assert not formats.is_otlp(b'{"kind": "plan", "resourceSpans": []}')


# -- hostile values in the attributes the mapping reads --------------------------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from agentdeck.store import otlp_content  # noqa: E402

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["role", "parts", "type", "content", "text", "name", "arguments", "messages", "args",
                         "kwargs", "data", "tool_calls", "function", "output", "input_str", "result", "id"]),
        children, max_size=4),
    max_leaves=20,
)
READ_KEYS = ["gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "pydantic_ai.all_messages",
             "final_result", "input.value", "output.value", "langfuse.observation.input", "langfuse.observation.output",
             "langfuse.observation.usage_details", "langfuse.observation.cost_details", "traceloop.entity.input",
             "llm.input_messages.0.message.role", "llm.input_messages.0.message.content",
             "llm.output_messages.0.message.tool_calls.0.tool_call.function.name", "gen_ai.tool.call.arguments",
             "gen_ai.usage.input_tokens", "llm.token_count.prompt", "operation.cost", "error.type",
             "gen_ai.agent.name", "agent.name", "session.id", "user.id", "gen_ai.tool.call.id"]
VALUE = JSONISH | JSONISH.map(lambda v: json.dumps(v))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attrs=st.dictionaries(st.sampled_from(READ_KEYS), VALUE, max_size=8),
       kind=st.sampled_from(["invoke_agent", "chat", "execute_tool", "embeddings", "retrieval", "plan",
                             "agent_handoff", "invoke_workflow", "create_agent"]),
       error=st.booleans())
def test_hostile_attribute_values_make_steps_or_a_clear_error_never_a_crash(attrs, kind, error):
    for reader in (otlp_content.first_user_text, otlp_content.answer_text, otlp_content.system_text):
        assert isinstance(reader(attrs), str)
    span = otlp.Span(TRACE, "00000000000000aa", None, "x", T0, T0 + 1, error, "boom" if error else "",
                     {**attrs, "gen_ai.operation.name": kind}, [], {"service.name": "svc"})
    try:
        items = otlp.to_events([span])
    except otlp.OtlpError as exc:
        assert str(exc)  # says why
        return
    for event, payload in items:
        assert event.task_id == json.loads(payload)["task_id"] == otlp.task_id(TRACE)


# -- span kinds beyond agents, tools and chat ----------------------------------------

def one(attrs, name="s", error=None, parent="b7ad6b7169203331"):
    return decoded(span("00000000000000c1", name, attrs, parent=parent, error=error))


def steps_of(events, kind):
    return [p for k, _s, p in events if k == kind]


def test_each_genai_and_openinference_kind_makes_the_step_a_person_expects():
    assert steps_of(one({"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-embedding-3-small",
                         "gen_ai.usage.input_tokens": 12}), "reasoning")[0]["summary"] == "embeddings of 12 tokens"
    docs = one({"openinference.span.kind": "RETRIEVER", "input.value": "refund policy",
                "retrieval.documents.0.document.content": "Refunds within 30 days"}, name="kb")
    assert steps_of(docs, "tool_call")[0]["input"] == "refund policy"
    assert steps_of(docs, "tool_result")[0]["output"] == ["Refunds within 30 days"]
    assert steps_of(one({"openinference.span.kind": "RERANKER"}, name="rerank"), "tool_call")[0]["tool"] == "rerank"
    assert steps_of(one({"openinference.span.kind": "EVALUATOR", "output.value": "0.9"}, name="judge"),
                    "reasoning")[0]["summary"] == "evaluation judge: 0.9"
    assert steps_of(one({"gen_ai.operation.name": "plan", "gen_ai.output.messages": json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": "1. look up 2. refund"}]}])}), "plan")[0]["summary"] \
        == "1. look up 2. refund"
    assert steps_of(one({"traceloop.span.kind": "tool", "traceloop.entity.name": "lookup"}, name="lookup.tool"),
                    "tool_call")[0]["tool"] == "lookup.tool"
    # PROMPT, CHAIN and create_agent spans are GenAI but no step; plain HTTP spans are not GenAI at all.
    for attrs in ({"openinference.span.kind": "PROMPT"}, {"gen_ai.operation.name": "create_agent"},
                  {"http.request.method": "POST"}):
        assert one(attrs) == []
    assert otlp.decode_line(request(span("00000000000000c1", "GET /", {"http.request.method": "GET"}))).ignored == 1


def test_a_workflow_without_an_agent_is_a_task_of_its_service_and_costs_add_up():
    events = decoded(
        span("00000000000000d1", "invoke_workflow triage", {"gen_ai.operation.name": "invoke_workflow"}, parent=None,
             end_ms=900),
        span("00000000000000d2", "chat", {"gen_ai.operation.name": "chat", "llm.cost.prompt": 0.002,
                                          "llm.cost.completion": 0.001, "gen_ai.usage.input_tokens": 10,
                                          "gen_ai.usage.cache_read.input_tokens": 4}, start_ms=5, end_ms=50),
    )
    start = steps_of(events, "task_start")[0]
    assert start["agent"] == "support-bot" and start["agent_version"]["id"] == "unversioned"
    assert steps_of(events, "reasoning")[0]["summary"] == "chat (cache read 4, $0.003)"
    conn = connect(":memory:")
    apply_batch(conn, None, otlp.decode_line(request(*[span("00000000000000d1", "w", {"gen_ai.operation.name": "invoke_workflow"}, parent=None),
                                                       span("00000000000000d2", "chat", {"gen_ai.operation.name": "chat", "llm.cost.total": 0.25})])), [])
    assert conn.execute("SELECT agent, cost_usd FROM tasks").fetchone()[:] == ("support-bot", 0.25)


def test_error_type_names_the_failure():
    events = one({"gen_ai.operation.name": "chat", "error.type": "openai.RateLimitError"}, error="Rate limit reached")
    assert steps_of(events, "reasoning")[0]["summary"] == "RateLimitError: Rate limit reached"
    assert steps_of(events, "reasoning")[0]["status"] == "error"


def test_a_tool_output_over_64_kib_is_cut_and_the_result_says_so():
    events = one({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "fetch",
                  "gen_ai.tool.call.result": "x" * 70_000})
    result = steps_of(events, "tool_result")[0]
    assert result["output"]["note"] == "[truncated over 64 KiB: gen_ai.tool.call.result]"
    assert result["output"]["output"].endswith("… [truncated by agentdeck: 70000 bytes, limit 65536]")


# -- the hot path of JSON spans decodes exactly as the checked path ---------------

from hypothesis import HealthCheck as _HC, given as _given, settings as _settings, strategies as _st  # noqa: E402

_hex = _st.text("0123456789abcdef", min_size=0, max_size=34)
_idish = _st.one_of(_st.text("0123456789abcdef", min_size=32, max_size=32),
                    _st.text("0123456789abcdef", min_size=16, max_size=16), _hex, _st.sampled_from(["", "0" * 32, "0" * 16, "AAAAAAAAAAAAAAAAAAAAAA==", "Q" * 16]),
                    _st.integers(), _st.none(), _st.text(max_size=34))
_nanos = _st.one_of(_st.integers(0, 2**64 - 1).map(str), _st.integers(-5, 2**70), _st.sampled_from(["", "-1", "1e9",
                                                                                                        " 12", "١٢"]),
                    _st.none(), _st.floats())
_status = _st.one_of(_st.none(), _st.fixed_dictionaries({}, optional={
    "code": _st.one_of(_st.integers(-1, 3), _st.sampled_from(["STATUS_CODE_ERROR", "STATUS_CODE_OK", "x"]), _st.none(),
                       _st.booleans()),
    "message": _st.one_of(_st.text(max_size=20), _st.integers(), _st.none())}), _st.integers(), _st.text(max_size=3))
_span = _st.fixed_dictionaries({}, optional={  # any subset of a span's fields, any values
    "traceId": _idish, "spanId": _idish, "parentSpanId": _idish, "name": _st.one_of(_st.text(max_size=20), _st.none(),
                                                                                    _st.integers()),
    "startTimeUnixNano": _nanos, "endTimeUnixNano": _nanos, "status": _status,
    "events": _st.one_of(_st.just([]), _st.none(), _st.just({}), _st.just([{"name": "e"}]), _st.lists(_st.deferred(
        lambda: _event))),
    "attributes": _st.just([{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}]),
    "trace_id": _idish,
})


_attribute_value = _st.one_of(_st.fixed_dictionaries({"stringValue": _st.one_of(_st.text(max_size=8), _st.integers())}),
                              _st.fixed_dictionaries({"intValue": _st.one_of(_nanos, _st.text("0123456789", max_size=20))}),
                              _st.fixed_dictionaries({"boolValue": _st.booleans()}), _st.just({}), _st.none(),
                              _st.fixed_dictionaries({"stringValue": _st.just("a"), "intValue": _st.just("1")}))
_event = _st.fixed_dictionaries({}, optional={  # span events: agentdeck.* ones and the SDK's exception events
    "name": _st.one_of(_st.sampled_from(["agentdeck.plan", "exception", "e"]), _st.none(), _st.integers()),
    "timeUnixNano": _nanos, "time_unix_nano": _nanos,
    "attributes": _st.one_of(_st.none(), _st.integers(), _st.lists(_st.one_of(
        _st.fixed_dictionaries({"key": _st.one_of(_st.sampled_from(["agentdeck.summary", "exception.type", ""]),
                                                 _st.integers()), "value": _attribute_value}),
        _st.integers()), max_size=3)),
})

_good_event = _st.builds(lambda name, t, attrs: {"name": name, "timeUnixNano": str(t), "attributes": attrs},
                         _st.sampled_from(["agentdeck.plan", "exception"]), _st.integers(0, 2**63),
                         _st.lists(_st.fixed_dictionaries({
                             "key": _st.sampled_from(["agentdeck.summary", "exception.type", "n"]),
                             "value": _st.one_of(_st.fixed_dictionaries({"stringValue": _st.text(max_size=8)}),
                                                 _st.fixed_dictionaries({"intValue": _st.integers(0, 10**9).map(str)}))}),
                                   max_size=3))

_GOOD = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
         "parentSpanId": "00f067aa0ba902b7", "name": "chat", "startTimeUnixNano": "1796003323403788605",
         "endTimeUnixNano": "1796003323503788605", "status": {"code": 1}, "events": []}


@_st.composite
def _spans(draw):
    """Mostly well-formed SDK output with a few fields changed or dropped (both paths taken)."""
    span = dict(_GOOD)
    for key in draw(_st.lists(_st.sampled_from(sorted(_GOOD)), max_size=1)):
        del span[key]
    fields = {"traceId": _idish, "spanId": _idish, "parentSpanId": _idish, "startTimeUnixNano": _nanos,
              "endTimeUnixNano": _nanos, "status": _status, "trace_id": _idish,
              "name": _st.one_of(_st.text(max_size=20), _st.none(), _st.integers()),
              "events": _st.lists(_st.one_of(_event, _good_event), max_size=3)}
    for key in draw(_st.lists(_st.sampled_from(sorted(fields)), max_size=2, unique=True)):
        span[key] = draw(fields[key])
    return span


@_settings(max_examples=400, deadline=None, suppress_health_check=[_HC.too_slow])
@_given(_st.one_of(_span, _spans(), _spans(), _spans()))
def test_the_json_span_hot_path_decodes_as_the_checked_path(span):
    """Any span object: the hot path (well-formed SDK output) and the checked path give the same
    span, or the same refusal -- the hot path only skips checks that cannot fail."""
    def run(fn):
        try:
            return fn(span, "s", {})
        except (otlp.OtlpError, ValueError, TypeError) as exc:
            return type(exc).__name__, str(exc)

    assert run(otlp._json_span) == run(otlp._checked_json_span)
