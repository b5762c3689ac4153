"""The hot path of the span mapping (``otlp.span_events``: events built without pydantic validating
them again) makes exactly the items of the checked path (``otlp._checked_span_events``: every event
validated by its model), for hostile spans: the same events, payloads, span parts and meta, or
the same refusal with the same reason. And each event it makes is one the models accept."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings, strategies as st
from pydantic import ValidationError

from agentdeck.store import events as ev
from agentdeck.store import otlp

TRACE = "5b8efff798038103d269b633813fc60c"
T0 = 1_795_600_000_000_000_000

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["args", "kwargs", "input_str", "output", "type", "data", "content", "role", "parts",
                         "text", "a"]), inner, max_size=3),
    max_leaves=10,
)
HOSTILE_TEXT = st.sampled_from(["", " ", "x", "a\udc80b", "\x00\x1f\u2028", "é" * 201, "x" * 20_001, "NaN", "1e999",
                                '{"a": NaN}', '["\\ud800"]', "  {\"output\": 1}", "Traceback (most recent call last)"])
NUMBER = st.sampled_from([0, -1, 1, 10**12, 10**12 + 1, 2**53 + 1, 2**63 - 1, 1.5, 1e-5, 1e16, float("nan"),
                          float("inf"), "12", "1e3", "x", True, None, "", [1]])
VALUE = st.one_of(JSONISH, JSONISH.map(json.dumps), HOSTILE_TEXT, st.text(max_size=30), NUMBER,
                  st.integers(-5, 10**13 + 5), st.floats(), st.builds(lambda s: otlp.Truncated(s + "… [cut]"), st.text(max_size=5)))
CLASS = {  # what makes a span each class
    "agent": {"gen_ai.operation.name": "invoke_agent"}, "workflow": {"gen_ai.operation.name": "invoke_workflow"},
    "tool": {"gen_ai.operation.name": "execute_tool"}, "model": {"gen_ai.operation.name": "chat"},
    "retrieval": {"openinference.span.kind": "RETRIEVER"}, "genai": {"openinference.span.kind": "PROMPT"},
    "other": {"http.request.method": "GET"}, "guardrail": {"openinference.span.kind": "GUARDRAIL"},
    "embedding": {"gen_ai.operation.name": "embeddings"}, "handoff": {"gen_ai.operation.name": "agent_handoff"},
    "plan": {"gen_ai.operation.name": "plan"}, "evaluator": {"openinference.span.kind": "EVALUATOR"},
    "langfuse agent": {"langfuse.observation.type": "agent"}, "traceloop agent": {"traceloop.span.kind": "agent"},
}
KEYS = [  # attributes the mapping reads, and a few it refuses
    "agentdeck.agent", "agentdeck.request_id", "agentdeck.request", "agentdeck.input", "agentdeck.cohort",
    "agentdeck.stage", "agentdeck.agent_version", "agentdeck.agent_version.model", "agentdeck.outcome",
    "agentdeck.cost_usd", "agentdeck.summary", "agentdeck.status", "agentdeck.retry", "agentdeck.verdict",
    "agentdeck.reason", "agentdeck.policy_id", "agentdeck.typo",
    "gen_ai.agent.name", "gen_ai.agent.version", "gen_ai.agent.id", "gen_ai.conversation.id", "gen_ai.request.model",
    "gen_ai.response.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "llm.token_count.prompt",
    "gen_ai.usage.cache_read.input_tokens", "llm.cost.total", "llm.cost.prompt", "gen_ai.tool.name",
    "gen_ai.tool.call.id", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "input.value", "output.value",
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "final_result",
    "langfuse.observation.usage_details", "langfuse.observation.cost_details", "langfuse.session.id", "session.id",
    "user.id", "error.type", "traceloop.entity.name", "retrieval.documents.0.document.content",
    "gen_ai.handoff.from_agent",
]
EVENT_NAMES = ["agentdeck.action", "agentdeck.plan", "agentdeck.escalation", "exception", "agentdeck.nope", "log"]
EVENT_KEYS = ["agentdeck.action_id", "agentdeck.system", "agentdeck.operation", "agentdeck.before",
              "agentdeck.params", "agentdeck.summary", "agentdeck.steps", "agentdeck.amount", "agentdeck.seq",
              "exception.type", "exception.message"]


# The keys each class reads most, drawn more often for it (hostile values where they matter).
CLASS_KEYS = {
    "model": ["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "llm.token_count.prompt", "gen_ai.request.model",
              "gen_ai.response.model", "gen_ai.usage.cache_read.input_tokens", "llm.cost.total", "agentdeck.summary",
              "gen_ai.output.messages", "gen_ai.input.messages", "langfuse.observation.usage_details", "error.type"],
    "tool": ["gen_ai.tool.call.id", "gen_ai.tool.name", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
             "agentdeck.status", "agentdeck.retry", "input.value", "output.value", "error.type"],
    "agent": ["agentdeck.cohort", "agentdeck.stage", "agentdeck.outcome", "agentdeck.input", "agentdeck.cost_usd",
              "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.agent.name", "agentdeck.request",
              "agentdeck.summary", "agentdeck.agent_version", "gen_ai.input.messages", "final_result"],
}
CLASS_KEYS["retrieval"] = CLASS_KEYS["tool"]
CLASS_KEYS["workflow"] = CLASS_KEYS["langfuse agent"] = CLASS_KEYS["traceloop agent"] = CLASS_KEYS["agent"]


@st.composite
def spans(draw):
    kind = draw(st.sampled_from(sorted(CLASS)))
    keys = st.sampled_from(KEYS) | st.sampled_from(CLASS_KEYS.get(kind, KEYS))
    attributes = {**draw(st.dictionaries(keys, VALUE, max_size=7)), **CLASS[kind]}
    events = [otlp.SpanEvent(draw(st.sampled_from(EVENT_NAMES)), draw(st.sampled_from([0, T0 + 7, 2**64 - 1])),
                             draw(st.dictionaries(st.sampled_from(EVENT_KEYS), VALUE, max_size=4)))
              for _ in range(draw(st.integers(0, 2)))]
    start = draw(st.sampled_from([0, 1, T0, 2**64 - 1]))
    end = draw(st.sampled_from([start, start + 1, start + 123_456_789, 0]))
    error = draw(st.booleans())
    return otlp.Span(TRACE, draw(st.sampled_from(["00000000000000aa", "00000000000000bb"])),
                     draw(st.sampled_from([None, "00000000000000cc"])), draw(st.sampled_from(["chat x", "", "é" * 300])),
                     start, end, error, draw(st.sampled_from(["", "boom", "\udc80"])) if error else "",
                     attributes, events, draw(st.sampled_from([{}, {"service.name": "svc", "service.version": "v9"}])))


def outcome(make, *args):
    try:
        return [(type(i[0]), i[0].__dict__ if i[0] is not None else None, i[1], i.key, i.meta) for i in make(*args)]
    except (otlp.OtlpError, ValidationError, ValueError, TypeError, OverflowError) as exc:
        return (type(exc), str(exc))


# Numbers and literals, where the hot path checks what pydantic would: the classes it builds, these
# keys only, each value in bounds or not (valid literals often, so that a later field gets checked too).
NUMERIC_KEYS = ["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "llm.token_count.prompt",
                "llm.token_count.completion", "gen_ai.usage.cache_read.input_tokens", "agentdeck.retry",
                "agentdeck.cost_usd", "llm.cost.total"]
LITERALS = {"agentdeck.cohort": ["baseline", "canary"], "agentdeck.stage": ["shadow", "bounded"],
            "agentdeck.outcome": ["success", "failed", "timeout"], "agentdeck.status": ["ok", "error", "timeout"]}
LITERAL = st.sampled_from(["Canary", "", "maybe", ["ok"], {"a": 1}, 1, "success", "canary", "ok", "bounded"])


@st.composite
def checked_spans(draw):
    kind = draw(st.sampled_from(["agent", "workflow", "tool", "model", "retrieval"]))  # (the classes built fast)
    attributes = draw(st.fixed_dictionaries({}, optional={
        **{key: NUMBER for key in NUMERIC_KEYS},
        **{key: st.sampled_from(valid) | LITERAL for key, valid in LITERALS.items()},
        "agentdeck.input": st.sampled_from(['{"a": 1}', "[1]", "x", {"a": [1]}, [1], None, 1]),
        "langfuse.observation.usage_details": st.sampled_from(['{"input": 5}', '{"input": 10000000000001}',
                                                               '{"output": -1}', "{}"]),
    }))
    error = draw(st.booleans())
    return otlp.Span(TRACE, "00000000000000aa", None, "s", T0, T0 + draw(st.sampled_from([0, 1, 10**15])), error,
                     "boom" if error else "", {**attributes, **CLASS[kind]}, [], {})


IDENT = st.sampled_from(["act-1", "payments", "refund", "x" * 200, "x" * 201, "", "a\udc80", 1, None, ["a"]]) \
    | st.builds(lambda s: otlp.Truncated(s + "… [cut]"), st.text(max_size=3))


@st.composite
def action_spans(draw):
    """An agent span with agentdeck.action span events, their fields valid or not (the hot path builds them)."""
    events = []
    for _ in range(draw(st.integers(1, 2))):
        valid = st.sampled_from(["act-1", "payments", "refund"])
        attributes = draw(st.fixed_dictionaries({
            "agentdeck.action_id": valid | IDENT, "agentdeck.system": valid | IDENT, "agentdeck.operation": valid | IDENT,
        }, optional={
            "agentdeck.params": st.sampled_from(['{"order": 1}', "[1]", "{}", {"a": 1}, None, "x"]) | JSONISH,
            "agentdeck.amount": st.sampled_from([80.5, 0.0, -2.0, float("nan"), float("inf"), float("-inf"), 5, True,
                                                 "5", None]), "agentdeck.before": VALUE, "agentdeck.after": VALUE,
            "agentdeck.status": st.sampled_from(["ok", "failed", "error", "", 1]),
            "agentdeck.justification": st.sampled_from(["why", "", "x" * 20_000, "x" * 20_001, 5]),
        }))
        if draw(st.integers(0, 4)) == 0:  # now and then a field the hot path leaves to pydantic
            attributes.update(draw(st.fixed_dictionaries({}, optional={
                "agentdeck.response": st.sampled_from(['{"status": 200}', '{"status": "200"}', "{}"]),
                "agentdeck.compensation": st.sampled_from(['{"type": "handler", "handler": "h", "idempotency_key": "k"}']),
                "agentdeck.seq": NUMBER, "agentdeck.v": NUMBER,
                "agentdeck.ts": st.sampled_from(["2026-11-30T00:00:00Z", 5]), "agentdeck.task_id": IDENT,
                "agentdeck.typo": VALUE})))
        events.append(otlp.SpanEvent("agentdeck.action", draw(st.sampled_from([0, T0 + 5])), attributes))
    return otlp.Span(TRACE, "00000000000000aa", None, "agent", T0, T0 + 10, False, "",
                     {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "a"}, events, {})


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span=action_spans(), framing=st.sampled_from(["own", "other"]))
def test_action_span_events_are_built_or_refused_as_the_models_would(span, framing):
    same_items(span, framing, None)


FRAMING = st.sampled_from(["own", "other", "none"])
FALLBACK = st.sampled_from([None, ((T0, "asked"), None), (None, (T0 + 9, "said")), ((T0, "q"), (T0 + 1, "a"))])


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span=checked_spans(), framing=FRAMING, fallback=FALLBACK)
def test_numbers_and_literals_out_of_bounds_are_refused_as_the_models_refuse_them(span, framing, fallback):
    same_items(span, framing, fallback)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span=spans(), framing=FRAMING, fallback=FALLBACK)
def test_the_hot_path_makes_the_items_of_the_checked_path(span, framing, fallback):
    same_items(span, framing, fallback)


def same_items(span, framing, fallback):
    kind = otlp.span_class(span.attributes)
    other = otlp.Span(TRACE, "00000000000000dd", None, "root", T0, T0 + 1, False, "",
                      {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "boss"}, [], {})
    winner = {"own": span, "other": other, "none": None}[framing]
    fast = outcome(otlp.span_events, span, kind, winner, fallback)
    assert fast == outcome(otlp._checked_span_events, span, kind, winner, fallback)
    if isinstance(fast, list):
        for item in otlp.span_events(span, kind, winner, fallback):
            # A valid event: its fields validated by the models give the same event and payload.
            again = ev.event_adapter.validate_python(item[0].model_dump())
            assert again.__pydantic_serializer__.to_json(again, exclude_none=True).decode() == item[1]
            assert type(again) is type(item[0])


def test_a_value_the_models_refuse_is_refused_with_the_models_reason():
    span = otlp.Span(TRACE, "00000000000000aa", None, "chat", T0, T0 + 1, False, "",
                     {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 10**13}, [], {})
    try:
        otlp.span_events(span, "model", span)
    except ValidationError as exc:
        assert "less than or equal to 1000000000000" in str(exc)
    else:
        raise AssertionError("a token count over the models' bound was stored")
    tool = otlp.Span(TRACE, "00000000000000aa", None, "lookup", T0, T0 + 1, False, "",
                     {"gen_ai.operation.name": "execute_tool", "agentdeck.status": "maybe"}, [], {})
    try:
        otlp.span_events(tool, "tool", tool)
    except ValidationError as exc:
        assert "tool_result.status" in str(exc)
    else:
        raise AssertionError("a tool status outside ok/error/timeout was stored")


def test_a_lone_surrogate_in_an_agent_version_is_refused_as_the_models_refuse_it():
    # (found by the property test: the built AgentVersion passed validation as an instance)
    span = otlp.Span(TRACE, "00000000000000aa", None, "chat x", 0, 0, False, "",
                     {"gen_ai.request.model": "a\udc80b", "gen_ai.operation.name": "invoke_agent"}, [], {})
    same_items(span, "own", None)
    try:
        otlp.span_events(span, "agent", span)
    except ValidationError as exc:
        assert "task_start.agent_version.model" in str(exc)
    else:
        raise AssertionError("a text that cannot be encoded was stored")


BAD_IDENT = st.sampled_from(["", "x" * 200, "x" * 201, "é" * 201, "a\udc80", 1, None, ["a"], 2.5])
HOSTILE_ACTION_FIELDS = {  # each field of an action, a value the Action model refuses (or must decode as it would)
    "agentdeck.action_id": BAD_IDENT, "agentdeck.system": BAD_IDENT, "agentdeck.operation": BAD_IDENT,
    "agentdeck.params": st.sampled_from(['{"order": 1}', "[1]", "x", "", "{", '{"a": NaN}', {"a": 1}, [1], None, 5]),
    "agentdeck.amount": st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0, 1e308, 5, True, "5", None]),
    "agentdeck.before": VALUE, "agentdeck.after": VALUE,
    "agentdeck.status": st.sampled_from(["ok", "failed", "error", "", "OK", 1, None, ["ok"]]),
    "agentdeck.justification": st.sampled_from(["", "x" * 20_000, "x" * 20_001, "a\udc80", 5, None]),
}


@st.composite
def one_bad_action_field(draw):
    """An agent span whose agentdeck.action span event is valid but for one or two fields (so that every
    check of the hot path decides the outcome in some examples), among other span events."""
    attributes = {"agentdeck.action_id": "act-1", "agentdeck.system": "payments", "agentdeck.operation": "refund",
                  "agentdeck.amount": 80.5, "agentdeck.params": '{"order": 1042}', "agentdeck.justification": "asked"}
    for key in draw(st.lists(st.sampled_from(sorted(HOSTILE_ACTION_FIELDS)), min_size=1, max_size=2, unique=True)):
        attributes[key] = draw(HOSTILE_ACTION_FIELDS[key])
    events = [otlp.SpanEvent("agentdeck.action", draw(st.sampled_from([0, T0 + 5])), attributes)]
    if draw(st.booleans()):  # another span event before or after it (the part names count every event)
        other = otlp.SpanEvent(draw(st.sampled_from(["exception", "agentdeck.plan", "agentdeck.nope"])), T0 + 6,
                               {"agentdeck.summary": "s", "exception.type": "E"})
        events.insert(draw(st.integers(0, 1)), other)
    return otlp.Span(TRACE, "00000000000000aa", None, "agent", T0, T0 + 10, False, "",
                     {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "a"}, events, {})


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span=one_bad_action_field(), framing=st.sampled_from(["own", "other"]))
def test_each_field_of_an_action_is_checked_as_the_model_checks_it(span, framing):
    same_items(span, framing, None)
