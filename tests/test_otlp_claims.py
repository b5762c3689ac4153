"""Span parts are claimed exactly once however the spans of a trace are batched.

A trace nothing was claimed of before is recorded as one ``otlp_claims`` row
(store/otlp.py ``_compact``); the next batch of that trace moves its parts to
``otlp_spans`` (``_spill``). Whatever the split, order, repeats and restarts,
the store must hold what one batch of every span makes: the same events, task
rows, framing rows and span parts, each part once, each trace in one table.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentdeck.store import otlp
from agentdeck.store.db import connect
from agentdeck.store.ingest import apply_batch

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_795_600_000_000_000_000
# The spans a trace may hold besides its root agent (each example picks some per trace).
OPTIONAL = ("sub-agent", "model", "second model", "tool", "workflow", "session")


def _attr(key: str, value) -> dict:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def trace_spans(n: int, shape: frozenset[str]) -> list[dict]:
    """One trace: a named root agent that logs no request (it borrows its model calls'), and the
    ``shape``'s spans: a sub-agent under another name, model calls (one under a nameless
    agent, the ``workflow``, which passes its request and answer up), a tool with an action."""
    trace = f"{n + 1:032x}"
    t = T0 + n * 10_000_000_000

    def span(i: int, parent: int | None, name: str, attrs: dict, start: int, end: int, events=()) -> dict:
        s = {"traceId": trace, "spanId": f"{(n << 8) + i:016x}", "name": name,
             "startTimeUnixNano": str(t + start * 1_000_000), "endTimeUnixNano": str(t + end * 1_000_000),
             "attributes": [_attr(k, v) for k, v in attrs.items()], "events": list(events), "status": {"code": 1}}
        if parent is not None:
            s["parentSpanId"] = f"{(n << 8) + parent:016x}"
        return s

    root_attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}
    if "session" in shape:
        root_attrs["gen_ai.conversation.id"] = f"conv-{n}"
    out = [span(1, None, "invoke_agent planner", root_attrs, 0, 9000)]
    if "sub-agent" in shape:
        out.append(span(2, 1, "invoke_agent refunder", {"gen_ai.operation.name": "invoke_agent",
                                                       "gen_ai.agent.name": "refunder"}, 100, 8000))
    if "workflow" in shape:
        out.append(span(3, 1, "turn", {"gen_ai.operation.name": "invoke_agent"}, 150, 7000))
    under = 3 if "workflow" in shape else 2 if "sub-agent" in shape else 1
    if "model" in shape:
        out.append(span(4, under, "chat gpt-4.1", {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4.1", "input.value": f"refund order {n}",
            "output.value": f"looking up order {n}", "gen_ai.usage.input_tokens": 800,
            "gen_ai.usage.output_tokens": 90}, 200, 900))
    if "second model" in shape:
        out.append(span(5, 1, "chat gpt-4.1", {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4.1", "input.value": f"summarise {n}",
            "output.value": f"refunded order {n}", "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 40}, 5000, 6000))
    if "tool" in shape:
        action = {"name": "agentdeck.action", "timeUnixNano": str(t + 3_500_000_000), "attributes": [
            _attr("agentdeck.action_id", f"act-{n}"), _attr("agentdeck.system", "payments"),
            _attr("agentdeck.operation", "refund"), _attr("agentdeck.before", '{"refunded": false}'),
            _attr("agentdeck.after", '{"refunded": true}')]}
        out.append(span(6, under, "execute_tool charge", {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "charge", "gen_ai.tool.call.id": f"c{n}",
            "gen_ai.tool.call.arguments": '{"order": 1042}'}, 3000, 4000, events=[action]))
    return out


def request(spans: list[dict]) -> bytes:
    return json.dumps({"resourceSpans": [{"resource": {"attributes": [_attr("service.name", "claims")]},
                                          "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}]}).encode()


def ingest(conn: sqlite3.Connection, spans: list[dict], source: str | None) -> None:
    items = otlp.decode_json(request(spans))
    for item in items:
        item.source = source  # (as the receiver marks a sender's items)
    apply_batch(conn, None, items, [])


def parts(conn: sqlite3.Connection) -> list[tuple]:
    """Every claimed span part, as (trace, span, part, source, step_seq, bare), from either table."""
    rows = [tuple(r) for r in conn.execute("SELECT trace_id, span_id, part, source, step_seq, bare FROM otlp_spans")]
    for trace, text in conn.execute("SELECT trace_id, parts FROM otlp_claims"):
        rows.extend(otlp._part_rows(trace, text))
    return sorted(rows, key=repr)


def stored(conn: sqlite3.Connection) -> dict:
    """What a batch of spans makes, as comparable values (no ids, no wall-clock times). Not the
    parts claimed: a span that framed its task until a better one came keeps its framing parts
    claimed (so a resend of it is dropped), which one batch of both never claims."""
    both = conn.execute("SELECT count(*) FROM otlp_claims WHERE trace_id IN (SELECT trace_id FROM otlp_spans)")
    assert both.fetchone()[0] == 0, "a trace's parts are in one table, never both"
    claimed = parts(conn)
    assert len(claimed) == len({row[:3] for row in claimed}), "each part claimed once"
    return {
        "events": sorted(tuple(r) for r in conn.execute("SELECT task_id, seq, kind, payload FROM events")),
        "tasks": sorted(tuple(r) for r in conn.execute(
            "SELECT task_id, agent, request, outcome, tokens, events, cost_usd, session, source, agent_stand_in, "
            "tool_calls, actions FROM tasks")),
        "frames": sorted(tuple(r) for r in conn.execute("SELECT * FROM otlp_tasks")),
        "subagents": sorted(tuple(r) for r in conn.execute("SELECT * FROM otlp_subagents")),
        "inner": sorted(tuple(r) for r in conn.execute("SELECT * FROM otlp_inner")),
        "actions": sorted(tuple(r) for r in conn.execute("SELECT action_id, task_id, seq FROM actions")),
    }


shapes = st.frozensets(st.sampled_from(OPTIONAL))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(trace_shapes=st.lists(shapes, min_size=1, max_size=4), data=st.data(),
       source=st.sampled_from([None, "one"]), restart=st.booleans())
def test_any_split_order_and_repeats_store_what_one_batch_stores(tmp_path_factory, trace_shapes, data, source,
                                                                 restart):
    every = [s for n, shape in enumerate(trace_shapes) for s in trace_spans(n, shape)]
    once = connect(tmp_path_factory.mktemp("once") / "s.db")
    ingest(once, every, source)
    expected = stored(once)
    assert once.execute("SELECT count(*) FROM otlp_claims").fetchone()[0] == len(trace_shapes)
    assert not once.execute("SELECT count(*) FROM otlp_spans").fetchone()[0], "whole new traces: a row a trace"

    order = data.draw(st.permutations(every), label="order")
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(order) - 1)), max_size=len(order)), label="cuts"))
    batches = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)]) if order[a:b]]
    again = data.draw(st.lists(st.sampled_from(batches), max_size=3), label="sent again")
    batches += again
    batches = data.draw(st.permutations(batches), label="batch order") if again else batches
    db = tmp_path_factory.mktemp("split") / "s.db"
    conn = connect(db)
    for i, batch in enumerate(batches):
        if restart and i == len(batches) // 2:
            conn.close()
            conn = connect(db)
        ingest(conn, batch, source)
    assert stored(conn) == expected


def test_a_trace_claimed_whole_then_resent_and_completed_is_stored_once(tmp_path):
    """The usual life of a trace's claim: whole in one batch (one row), sent again (nothing
    new: the row stands), then a late span that frames the task better (the trace's parts
    move to otlp_spans, the resent model call is dropped)."""
    conn = connect(tmp_path / "s.db")
    spans = trace_spans(0, frozenset({"model", "tool"}))
    sub = trace_spans(0, frozenset({"sub-agent"}))[1]
    ingest(conn, [sub] + spans[1:], None)  # the sub-agent frames the task for now
    assert conn.execute("SELECT count(*) FROM otlp_claims").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM otlp_spans").fetchone()[0] == 0
    assert conn.execute("SELECT agent FROM tasks").fetchone()[0] == "refunder"
    events = conn.execute("SELECT count(*) FROM events").fetchone()[0]

    claimed = parts(conn)
    ingest(conn, [sub] + spans[1:], None)  # a client retry: nothing new, the row stays as it was
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == events
    assert conn.execute("SELECT count(*) FROM otlp_claims").fetchone()[0] == 1
    assert parts(conn) == claimed

    ingest(conn, spans[:2], None)  # the root agent, exported last (and a model call again), frames the task
    assert conn.execute("SELECT agent FROM tasks").fetchone()[0] == "planner"
    assert conn.execute("SELECT count(*) FROM otlp_claims").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM otlp_spans").fetchone()[0] == len(parts(conn)) > len(claimed)
    reference = connect(tmp_path / "once.db")
    ingest(reference, spans + [sub], None)
    assert stored(conn) == stored(reference)


def test_senders_of_a_compact_trace_are_listed_as_its_parts_would_list_them(tmp_path):
    """tasks.source of a trace claimed in one batch comes from its otlp_claims row: the same
    list as from otlp_spans rows (by span, then part)."""
    conn = connect(tmp_path / "s.db")
    items = otlp.decode_json(request(trace_spans(0, frozenset({"model", "tool"}))))
    for i, item in enumerate(items):
        item.source = ("b", "a", None)[i % 3]
    apply_batch(conn, None, items, [])
    compact = conn.execute("SELECT source FROM tasks").fetchone()[0]
    by_part = sorted((item.key, item.source) for item in items)
    assert compact == ",".join(dict.fromkeys(s for _k, s in by_part if s is not None))


# -- kill -9 -------------------------------------------------------------------


def _ingest_cmd(db: Path, folder: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "agentdeck.console.cli", "ingest", "--quiet", "--db", str(db), str(folder), *extra]


def _count(db: Path) -> int:
    try:
        conn = sqlite3.connect(db, timeout=10)
        try:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_kill_9_while_ingesting_otlp_lines_loses_and_duplicates_nothing(tmp_path):
    """The real ingester killed at random moments while it reads files of OTLP lines that split
    traces across lines and files (so claims are compact rows, spilled rows and per-part rows):
    after a final run, the store equals one clean run's."""
    rng = random.Random(int.from_bytes(os.urandom(4)))
    spans = [s for n in range(400) for s in trace_spans(n, frozenset(OPTIONAL))]
    rng.shuffle(spans)  # spans of a trace in several lines, in any order
    folder = tmp_path / "traces"
    folder.mkdir()
    lines = []
    at = 0
    while at < len(spans):
        size = rng.randint(1, 40)
        lines.append(request(spans[at:at + size]))
        at += size
    files = 30  # a transaction a file at least: kills land between and inside them
    for i in range(files):
        (folder / f"otel-{i:02}.json").write_bytes(b"".join(line + b"\n" for line in lines[i::files]))
    db = tmp_path / "store.db"
    interrupted = 0
    for _round in range(6):
        before = _count(db)
        proc = subprocess.Popen(_ingest_cmd(db, folder), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while _count(db) == before and proc.poll() is None:
            assert time.monotonic() < deadline, "the ingester committed nothing in 30 s"
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.2))
        interrupted += proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert interrupted, "no kill landed while the ingester ran"
    final = subprocess.run(_ingest_cmd(db, folder), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    clean = subprocess.run(_ingest_cmd(tmp_path / "clean.db", folder), cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
    assert clean.returncode == 0, clean.stderr
    got, want = sqlite3.connect(db), sqlite3.connect(tmp_path / "clean.db")
    assert stored(got) == stored(want)
    assert got.execute("SELECT count(*) FROM rejects").fetchone()[0] == 0


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.tuples(_text, _text, st.none() | _text,
                                st.none() | st.integers(-2**63, 2**63 - 1), st.none() | st.integers(-2**63, 2**63 - 1)),
                      min_size=1, max_size=8))
def test_a_compact_row_gives_back_the_parts_it_was_made_of(parts):
    """Whatever the ids, parts and senders hold (spaces, tabs, newlines, anything): the
    ``otlp_claims`` text turns back into exactly the ``otlp_spans`` rows it stands for."""
    text = "\n".join(otlp._part_line(*p) for p in parts)
    assert otlp._part_rows("t", text) == [("t", span, part, source, seq, bare) for span, part, source, seq, bare in parts]
