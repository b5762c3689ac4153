"""A named agent span that logs neither its request nor its answer (OpenInference's
openai-agents AGENT spans) shows, on its sub-agent step, the first user message and the
last answer of the model calls under it -- through chain/workflow spans, not past another
named agent -- and the same whatever requests, order and re-sends the spans come in."""

from __future__ import annotations

import json
import random

from hypothesis import HealthCheck, given, settings, strategies as st

from agentdeck.store import otlp
from agentdeck.store.db import connect
from agentdeck.store.ingest import apply_batch

from test_otlp_mapping import attr, span, stored_events

TASK = otlp.task_id("0af7651916cd43dd8448eb211c80319c")


def request(spans):
    return json.dumps({"resourceSpans": [{"resource": {"attributes": [attr("service.name", "bot")]},
                                          "scopeSpans": [{"spans": list(spans)}]}]}).encode()


def agent(sid, name, parent, start, end):
    return span(sid, name, {"openinference.span.kind": "AGENT", "agent.name": name}, parent=parent,
                start_ms=start, end_ms=end)


def chain(sid, parent, start, end):
    return span(sid, "turn", {"openinference.span.kind": "CHAIN"}, parent=parent, start_ms=start, end_ms=end)


def llm(sid, parent, start, end, asked, said):
    return span(sid, "response", {"openinference.span.kind": "LLM", "llm.input_messages.0.message.role": "user",
                                  "llm.input_messages.0.message.content": asked,
                                  "llm.output_messages.0.message.role": "assistant",
                                  "llm.output_messages.0.message.content": said},
                parent=parent, start_ms=start, end_ms=end)


def store(groups):
    conn = connect(":memory:")
    for group in groups:
        apply_batch(conn, None, otlp.decode_line(request(group)), [])
    return conn


def subagent_steps(conn):
    return sorted(json.loads(p)["summary"] for (p,) in conn.execute(
        "SELECT payload FROM events WHERE task_id = ? AND kind = 'plan'", (TASK,)))


# triage (frames the task) -> refund (logs nothing) -> turn -> two model calls, and a nested
# named agent (checker) under refund whose own model call must not count as refund's.
TREE = [
    agent("a000000000000001", "triage", None, 0, 1000),
    agent("a000000000000002", "refund", "a000000000000001", 100, 900),
    chain("c000000000000001", "a000000000000002", 110, 500),
    llm("d000000000000001", "c000000000000001", 120, 300, "refund order 7", "looking it up"),
    chain("c000000000000002", "a000000000000002", 510, 890),
    llm("d000000000000002", "c000000000000002", 520, 880, "refund order 7 (again)", "refunded 7"),
    agent("a000000000000003", "checker", "c000000000000002", 530, 870),
    llm("d000000000000003", "a000000000000003", 540, 860, "check 7", "checked: fine"),
]


def test_the_sub_agent_step_shows_its_model_calls_request_and_last_answer():
    conn = store([TREE])
    assert subagent_steps(conn) == ["sub-agent checker: check 7 → checked: fine",
                                    "sub-agent refund: refund order 7 → refunded 7"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), cuts=st.lists(st.integers(1, len(TREE) - 1), max_size=len(TREE)),
       resend=st.lists(st.integers(0, len(TREE) - 1), max_size=4))
def test_any_grouping_order_and_resending_shows_the_same_steps(seed, cuts, resend):
    shuffled = TREE[:]
    random.Random(seed).shuffle(shuffled)
    bounds = [0, *sorted(set(cuts)), len(TREE)]
    groups = [shuffled[a:b] for a, b in zip(bounds, bounds[1:])] + [[TREE[i]] for i in resend]
    assert stored_events(store(groups)) == stored_events(store([TREE]))


def test_parent_links_in_a_cycle_end_and_store_the_spans():
    """A hostile trace whose chain spans are each other's parents: no hang, the rest stands."""
    looped = [
        agent("a000000000000001", "triage", None, 0, 1000),
        chain("c000000000000001", "c000000000000002", 110, 500),
        chain("c000000000000002", "c000000000000001", 120, 500),
        llm("d000000000000001", "c000000000000001", 130, 300, "hi", "hello"),
    ]
    for order in (looped, looped[::-1]):
        conn = store([[s] for s in order])
        kinds = [k for (k,) in conn.execute("SELECT kind FROM events WHERE task_id = ? ORDER BY seq", (TASK,))]
        assert kinds == ["task_start", "reasoning", "task_end"]


def test_a_chain_of_thousands_of_passing_spans_is_stored():
    """A hostile trace nesting 1500 chain spans, each with a model call, under a sub-agent
    that logs nothing: every span is stored and the step still reads an answer."""
    deep = [agent("a000000000000001", "triage", None, 0, 100_000),
            agent("a000000000000002", "refund", "a000000000000001", 1, 99_999)]
    parent = "a000000000000002"
    for n in range(1500):
        cid = f"c{n:015x}"
        deep.append(chain(cid, parent, 2 + n, 90_000 - n))
        deep.append(llm(f"d{n:015x}", cid, 3 + n, 80_000 - n, f"ask {n}", f"answer {n}"))
        parent = cid
    conn = store([deep])
    assert conn.execute("SELECT count(*) FROM events WHERE task_id = ? AND kind = 'reasoning'",
                        (TASK,)).fetchone()[0] == 1500
    (refund,) = [s for s in subagent_steps(conn) if s.startswith("sub-agent refund: ")]
    assert refund == "sub-agent refund: ask 0 → answer 0"  # the first to start, the last to end
