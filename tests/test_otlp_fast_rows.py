"""Whole batches of hostile spans: the hot path of the mapping (``otlp.span_events``) stores exactly
the rows the reference (``otlp._checked_span_events``, every event validated by its model) stores.

tests/test_otlp_fast_mapping.py compares the two span by span; here the spans of a batch go
through ``to_events`` together (framing, fallbacks, sub-agents and links settle among them), then
through ``prepare`` (the rows) and into a store (``apply_batch``: the claims, the task rows).
Values are the odd ones traces bring: huge, unicode, control characters, lone surrogates,
JSON-looking text, numbers out of bounds or of the wrong type, missing names and times."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from agentdeck.store import otlp
from agentdeck.store.db import connect
from agentdeck.store.ingest import BadBatch, apply_batch, prepare

from test_otlp_fast_mapping import CLASS, CLASS_KEYS, EVENT_KEYS, EVENT_NAMES, KEYS, VALUE

T0 = 1_795_600_000_000_000_000
TRACES = ["5b8efff798038103d269b633813fc60c", "0000000000000000000000000000beef"]
SPAN_IDS = ["00000000000000a1", "00000000000000a2", "00000000000000a3", "00000000000000a4", "00000000000000a5"]
ODD_TEXT = st.sampled_from([
    "", " ", "\x00", "\x1b[31mred\x1b[0m", "tab\there\nnew\rline", "\u2028\u2029", "é", "日本語", "\U0001F600" * 3,
    "a\udc80b", "\ud83d", "x" * 200, "x" * 201, "é" * 20_001, "y" * 70_000, '{"role": "user", "content": "hi"}',
    '[{"role": "user", "parts": [{"type": "text", "content": "q"}]}]', "null", "-0", "1e-7", "1e+16", "12345678901234567890",
])
HUGE = st.builds(lambda n, c: c * n, st.sampled_from([20_000, 20_001, 65_536, 100_000]), st.sampled_from(["x", "é", "\x07"]))
CUT = st.builds(lambda s: otlp.Truncated(s + "… [truncated by agentdeck: 70000 bytes, limit 65536]"),
                st.text(max_size=5))
ODD = st.one_of(VALUE, ODD_TEXT, HUGE, CUT, st.sampled_from([-0.0, 1e-7, 1e-5, 0.1, 1e15, 1e16, 2**64, -(2**63)]))
NAMES = st.sampled_from(["", "chat gpt-4.1", "execute_tool lookup", "invoke_agent boss", "é" * 300, "\x00", "a\udc80"])


@st.composite
def span(draw):
    kind = draw(st.sampled_from(sorted(CLASS)))
    keys = st.sampled_from(KEYS) | st.sampled_from(CLASS_KEYS.get(kind, KEYS))
    attributes = {**draw(st.dictionaries(keys, ODD, max_size=6)), **CLASS[kind]}
    if draw(st.integers(0, 3)) == 0:  # now and then without the keys that make its class (a plain span)
        attributes = {k: v for k, v in attributes.items() if k not in CLASS[kind]}
    events = []
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(EVENT_NAMES))
        given = {"agentdeck.action_id": "act-1", "agentdeck.system": "payments", "agentdeck.operation": "refund"} \
            if name == "agentdeck.action" and draw(st.booleans()) else {}
        events.append(otlp.SpanEvent(name, draw(st.sampled_from([0, T0 + 7, 2**64 - 1])),
                                     {**given, **draw(st.dictionaries(st.sampled_from(EVENT_KEYS), ODD, max_size=3))}))
    start = draw(st.sampled_from([0, 1, T0, T0 + 10**9, 2**64 - 1]))
    end = draw(st.sampled_from([start, start + 1, start + 123_456_789, 0]))
    error = draw(st.booleans())
    return otlp.Span(draw(st.sampled_from(TRACES)), draw(st.sampled_from(SPAN_IDS)),
                     draw(st.sampled_from([None, *SPAN_IDS[:3], "00000000000000ff"])), draw(NAMES), start, end, error,
                     draw(st.sampled_from(["", "boom", "RateLimitError: slow down\nTraceback (most recent call last)",
                                           "\udc80"])) if error else "",
                     attributes, events,
                     draw(st.sampled_from([{}, {"service.name": "svc", "service.version": "v9"},
                                           {"service.name": "", "service.version": 5}])))


BATCH = st.lists(span(), min_size=1, max_size=6)


def mapped(spans: list[otlp.Span], reference: bool) -> tuple[list, list[str]]:
    bad: list[otlp.BadSpan] = []
    with pytest.MonkeyPatch.context() as mp:
        if reference:
            mp.setattr(otlp, "span_events", otlp._checked_span_events)
        items = otlp.to_events(spans, bad)
    return list(items), [b.reason for b in bad]


def rows(items: list) -> dict:
    """What ``prepare`` makes of the items: every row (the task rows without their wall-clock time)."""
    p = prepare(items, 7)
    return {
        "events": list(zip(p.ev_task, p.ev_seq, p.ev_kind, p.ev_ts, p.ev_payload)),
        "tasks": [row[:1] + row[2:] for row in p.task_rows],
        "actions": p.action_rows, "escalations": p.esc_rows, "decisions": p.decisions,
        "compensations": p.compensations, "facts": p.facts, "tasks_seen": p.tasks, "agent_known": p.agent_known,
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spans=BATCH)
def test_a_batch_of_hostile_spans_makes_the_rows_of_the_reference_mapping(spans):
    fast, fast_refused = mapped(spans, reference=False)
    ref, ref_refused = mapped(spans, reference=True)
    assert fast_refused == ref_refused  # the same spans refused, for the same reasons
    assert [(i[1], i.key, i.meta, type(i[0])) for i in fast] == [(i[1], i.key, i.meta, type(i[0])) for i in ref]
    assert rows(fast) == rows(ref)


def stored(conn: sqlite3.Connection) -> dict:
    out = {}
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' "
                                 "AND name NOT IN ('sources', 'schema_migrations', 'ingest_status', 'meta') ORDER BY name"):
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] not in ("updated_at", "created_at")]
        got = [tuple(r) for r in conn.execute(f"SELECT {', '.join(cols)} FROM {table}")]
        out[table] = got if table == "events" else sorted(got, key=repr)  # (events: in the order they were stored)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batches=st.lists(BATCH, min_size=1, max_size=3))
def test_batches_of_hostile_spans_store_what_the_reference_mapping_stores(batches):
    # (several batches: later ones reframe tasks, refill requests and answers, and meet stored parts)
    with tempfile.TemporaryDirectory() as tmp:
        stores = {}
        for reference in (False, True):
            conn = connect(Path(tmp) / f"{reference}.db")
            failures = []
            for spans in batches:
                items, _refused = mapped(spans, reference)
                try:
                    apply_batch(conn, None, items, [])
                except BadBatch as exc:  # (a value the store cannot take: the same one, both ways)
                    failures.append(str(exc))
            stores[reference] = (stored(conn), failures)
            conn.close()
    assert stores[False] == stores[True]


def test_two_traces_whose_agent_spans_share_a_span_id_each_get_their_own_request():
    # Span ids are unique within a trace only: an agent span that logs no request takes its model
    # call's user message, and the other trace's agent span with the same id must not take it (or
    # leave it untaken) -- which of the two went wrong depended on a set's order.
    def trace(trace_id: str, messages: str | None) -> list[otlp.Span]:
        model = {"gen_ai.operation.name": "chat"}
        if messages is not None:
            model["gen_ai.input.messages"] = messages
        return [otlp.Span(trace_id, "00000000000000a1", None, "invoke_agent", T0, T0 + 10**9, False, "",
                          {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support"}, [], {}),
                otlp.Span(trace_id, "00000000000000b2", "00000000000000a1", "chat", T0 + 1, T0 + 2, False, "",
                          model, [], {})]

    asked = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "refund order 1042"}]}])
    for first, second in ((TRACES[0], TRACES[1]), (TRACES[1], TRACES[0])):
        items = otlp.to_events(trace(first, asked) + trace(second, None))
        requests = {e.task_id: e.request for e, _payload in items if e is not None and e.kind == "task_start"}
        assert requests == {f"otel-{first}": "refund order 1042", f"otel-{second}": ""}
