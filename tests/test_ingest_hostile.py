"""Hostile lines: whatever a line holds, it alone is rejected (with where and why) and every other line is stored.

Property-based (hypothesis): valid events of every kind, some of them
mutated at any depth into something hostile -- integers beyond 64 bits,
NaN/Infinity/1e400, numbers as strings, wrong types, 10,000-deep nesting,
NUL, invalid UTF-8 -- written to a file between good lines. After one pass
of the real tailer (contract checks on): each line is either one stored
event or one reject at its offset, every good line is stored, the file's
offset is committed to its end, and a second pass (as ``--follow`` would
do) finds nothing left to retry.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from agentdeck.store.db import connect
from agentdeck.store.tailer import Tailer

T0 = "2026-11-24T10:00:00Z"
CONTRACT = """
agent = "pay-bot"
[versions]
v1 = "bounded"
[tools]
allow = ["orders.lookup"]
[actions."payments.refund"]
max_amount = 100
[done]
require_events = ["plan"]
action_evidence = ["justification"]
"""


def base_events(task_id: str) -> list[dict]:
    """One of each kind the store writes columns for (numbers, amounts, nested objects)."""
    env = {"v": 1, "ts": T0, "task_id": task_id}
    kinds = [
        {"kind": "task_start", "request_id": "r", "agent": "pay-bot", "agent_version": {"id": "v1", "model": "m"},
         "input": {"order": 7}},
        {"kind": "plan", "summary": "refund", "steps": ["a", "b"]},
        {"kind": "reasoning", "model": "m", "summary": "s", "tokens_in": 10, "tokens_out": 5},
        {"kind": "tool_call", "call_id": "c1", "tool": "orders.lookup", "input": {"id": 1}},
        {"kind": "tool_result", "call_id": "c1", "tool": "orders.lookup", "output": {"ok": True}, "latency_ms": 3.5,
         "retry": 0},
        {"kind": "escalation", "escalation_id": f"e-{task_id}", "risk": "high", "reason": "big",
         "deadline": "2026-11-24T11:00:00Z",
         "proposed_action": {"system": "payments", "operation": "refund", "amount": 50, "params": {"x": 1}}},
        {"kind": "decision", "escalation_id": f"e-{task_id}", "decision": "approve", "decided_by": "ann"},
        {"kind": "action", "action_id": f"a-{task_id}", "system": "payments", "operation": "refund", "amount": 50,
         "justification": "asked", "params": {"order": 7}, "response": {"status": 200, "body": {"k": [1, 2]}},
         "compensation": {"type": "http", "url": "https://pay.example/undo", "idempotency_key": "k1",
                          "body": {"n": 1}}},
        {"kind": "compensation", "action_id": f"a-{task_id}", "status": "ok", "response": {"status": 200}},
        {"kind": "task_end", "outcome": "success", "tokens_in": 100, "tokens_out": 20, "cost_usd": 0.25,
         "latency_ms": 1000},
    ]
    return [dict(env, seq=i, **k) for i, k in enumerate(kinds)]


DEEP = "__DEEP__"
HUGE_FLOAT = "__1E400__"

hostile_values = st.one_of(
    st.integers(min_value=2**63, max_value=2**200),
    st.integers(min_value=-(2**200), max_value=-(2**63) - 1),
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.sampled_from([HUGE_FLOAT, DEEP]),
    st.sampled_from(["100000", "NaN", "Infinity", "-1", "1e400", "", "\x00", "a\x00b"]),
    st.sampled_from([True, False, None, [], {}, [1, "x"], {"a": {"b": None}}]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)


def _paths(obj, prefix=()):
    """Every path to a value in a JSON object, nested dicts and lists included."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _set(obj, path, value):
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


@st.composite
def hostile_line(draw, event: dict) -> bytes:
    event = json.loads(json.dumps(event))
    how = draw(st.sampled_from(["replace", "replace", "replace", "add", "bytes"]))
    if how == "bytes":
        raw = json.dumps(event).encode()
        at = draw(st.integers(0, len(raw)))
        junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\x00", b"\xed\xa0\x80", b"\\u0000", b"\\ud800"]))
        return raw[:at] + junk + raw[at:]
    value = draw(hostile_values)
    if how == "replace":
        path = draw(st.sampled_from(list(_paths(event))))
        _set(event, path, value)
    else:
        event[draw(st.sampled_from(["tokens_in", "amount", "cost_usd", "seq", "extra", "latency_ms"]))] = value
    text = json.dumps(event)  # NaN and Infinity as JS literals, big ints in full
    text = text.replace(json.dumps(DEEP), "[" * 10_000 + "]" * 10_000).replace(json.dumps(HUGE_FLOAT), "1e400")
    return text.encode()


@st.composite
def trace_file(draw) -> tuple[list[bytes], list[bool]]:
    """Lines of a few tasks, some hostile; and whether each line is known to be good."""
    lines: list[bytes] = []
    good: list[bool] = []
    for t in range(draw(st.integers(1, 3))):
        for event in base_events(f"t{t}"):
            if draw(st.integers(0, 3)) == 0:
                lines.append(draw(hostile_line(event)))
                good.append(False)
            else:
                lines.append(json.dumps(event).encode())
                good.append(True)
    return lines, good


def ingest(lines: list[bytes]) -> tuple[sqlite3.Connection, Path, list[int], Tailer]:
    folder = Path(tempfile.mkdtemp(prefix="hostile-"))
    (folder / "contracts").mkdir()
    (folder / "contracts" / "pay-bot.toml").write_text(CONTRACT)
    path = folder / "agent.jsonl"
    offsets, pos = [], 0
    with path.open("wb") as f:
        for line in lines:
            offsets.append(pos)
            f.write(line + b"\n")
            pos += len(line) + 1
    conn = connect(folder / "store.db")
    tailer = Tailer(conn, [folder])
    tailer.poll()
    return conn, path, offsets, tailer


def check_each_line_is_stored_or_rejected(conn, path: Path, lines: list[bytes], good: list[bool], offsets: list[int]):
    rejects = {r[0]: r[1] for r in conn.execute("SELECT offset, error FROM rejects")}
    events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    assert events + len(rejects) == len(lines), (events, rejects)
    for line, ok, offset in zip(lines, good, offsets):
        if ok:
            assert offset not in rejects, (line, rejects[offset])
        elif offset in rejects:
            assert rejects[offset].strip(), "a reject says why"
    stored = {tuple(r) for r in conn.execute("SELECT task_id, seq FROM events")}
    for line, ok in zip(lines, good):
        if ok:
            e = json.loads(line)
            assert (e["task_id"], e["seq"]) in stored
    offset, nlines, nrejects = conn.execute("SELECT offset, lines, rejects FROM sources WHERE path = ?",
                                            (str(path),)).fetchone()
    assert offset == path.stat().st_size  # the whole file was read: nothing is left to retry
    assert (nlines, nrejects) == (len(lines), len(rejects))
    # Derived rows agree with the events: counts per task, no check left queued.
    assert conn.execute("SELECT coalesce(sum(events), 0) FROM tasks").fetchone()[0] == events
    assert conn.execute("""SELECT count(*) FROM tasks t
                           WHERE violations != (SELECT count(*) FROM violations v WHERE v.task_id = t.task_id)""").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM contract_pending").fetchone()[0] == 0
    # Nothing stored as a non-finite number.
    assert conn.execute("""SELECT count(*) FROM tasks WHERE cost_usd > 1e300 OR cost_usd < 0 OR cost_usd != cost_usd
                           OR tokens > 9e18""").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM actions WHERE amount > 1e308 OR amount < -1e308").fetchone()[0] == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(trace_file())
def test_a_hostile_line_is_rejected_alone_and_everything_else_is_stored(case):
    lines, good = case
    conn, path, offsets, tailer = ingest(lines)
    try:
        check_each_line_is_stored_or_rejected(conn, path, lines, good, offsets)
        assert not tailer.problems, tailer.problems
        # A following ingester's next pass has nothing to retry, and stores nothing twice.
        before = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        assert tailer.poll().events == 0
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == before
    finally:
        conn.close()


OVERFLOW_LINES = [
    # An integer beyond SQLite's 64 bits in each numeric field that reaches a column.
    {"kind": "reasoning", "tokens_in": 100000000000000000000000},
    {"kind": "task_end", "outcome": "success", "tokens_out": 2**63},
    {"kind": "task_end", "outcome": "success", "cost_usd": 10**400},
    {"kind": "tool_result", "call_id": "c", "tool": "x", "retry": 2**64},
    {"kind": "action", "action_id": "big", "system": "payments", "operation": "refund", "amount": 10**400},
]


def test_overflowing_numbers_reject_only_their_line(tmp_path):
    """The issue's case: ``"tokens_in": 100000000000000000000000`` used to fail the whole batch, forever."""
    lines, good = [], []
    for n, extra in enumerate(OVERFLOW_LINES):
        ok = {"v": 1, "kind": "plan", "ts": T0, "task_id": "t", "seq": 2 * n, "summary": "fine"}
        bad = {"v": 1, "ts": T0, "task_id": "t", "seq": 2 * n + 1, **extra}
        lines += [json.dumps(ok).encode(), json.dumps(bad).encode()]
        good += [True, False]
    conn, path, offsets, tailer = ingest(lines)
    check_each_line_is_stored_or_rejected(conn, path, lines, good, offsets)
    errors = [r[0] for r in conn.execute("SELECT error FROM rejects ORDER BY offset")]
    assert len(errors) == len(OVERFLOW_LINES)
    assert all("tokens" in e or "cost_usd" in e or "retry" in e or "amount" in e for e in errors), errors


def test_a_line_the_store_refuses_at_commit_is_rejected_alone(tmp_path):
    """Past validation too: a line whose write fails is found (halving the batch) and rejected; the rest commits."""
    folder = tmp_path / "traces"
    folder.mkdir()
    lines = [json.dumps({"v": 1, "kind": "plan", "ts": T0, "task_id": f"t{n % 7}", "seq": n,
                         "summary": "poison" if n in (13, 400) else "fine"}).encode() for n in range(1000)]
    (folder / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    conn = connect(tmp_path / "s.db")
    # A constraint the data cannot know about: the store refuses these two lines at insert time.
    conn.execute("""CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.payload LIKE '%poison%'
                    BEGIN SELECT RAISE(ABORT, 'poisoned line'); END""")
    tailer = Tailer(conn, [folder])
    stats = tailer.poll()
    assert (stats.events, stats.rejects) == (998, 2)
    rows = conn.execute("SELECT offset, error FROM rejects ORDER BY offset").fetchall()
    offsets = [sum(len(x) + 1 for x in lines[:n]) for n in (13, 400)]
    assert [r[0] for r in rows] == offsets
    assert all("poisoned line" in r[1] for r in rows)
    assert conn.execute("SELECT sum(events) FROM tasks").fetchone()[0] == 998
    assert conn.execute("SELECT offset FROM sources").fetchone()[0] == (folder / "a.jsonl").stat().st_size
    assert tailer.poll().events == 0


def test_following_goes_on_past_a_hostile_line_in_another_file(tmp_path):
    """``ingest --follow``: a bad line in one file neither stops that file nor the folder's other files."""
    import threading
    import time

    folder = tmp_path / "traces"
    folder.mkdir()
    conn = connect(tmp_path / "s.db")
    tailer = Tailer(conn, [folder])
    stop = threading.Event()
    worker = threading.Thread(target=tailer.run, args=(stop,), kwargs={"rescan_ms": 50}, daemon=True)
    worker.start()
    try:
        def append(name: str, line: dict | bytes) -> None:
            with (folder / name).open("ab") as f:
                f.write((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n")

        def plan(task: str, seq: int) -> dict:
            return {"v": 1, "kind": "plan", "ts": T0, "task_id": task, "seq": seq, "summary": "s"}

        append("a.jsonl", plan("a", 0))
        append("a.jsonl", {"v": 1, "kind": "reasoning", "ts": T0, "task_id": "a", "seq": 1,
                           "tokens_in": 100000000000000000000000})
        append("a.jsonl", plan("a", 2))
        append("b.jsonl", plan("b", 0))
        deadline = time.monotonic() + 20
        while conn.execute("SELECT count(*) FROM events").fetchone()[0] < 3:
            assert time.monotonic() < deadline, "the follower stopped"
            time.sleep(0.02)
        append("b.jsonl", plan("b", 1))
        append("a.jsonl", plan("a", 3))
        while conn.execute("SELECT count(*) FROM events").fetchone()[0] < 5:
            assert time.monotonic() < deadline, "the follower stopped after the bad line"
            time.sleep(0.02)
    finally:
        stop.set()
        worker.join(10)
    assert conn.execute("SELECT count(*) FROM rejects").fetchone()[0] == 1
    assert not tailer.problems
    assert worker.is_alive() is False
    assert os.path.getsize(folder / "a.jsonl") == conn.execute(
        "SELECT offset FROM sources WHERE path LIKE '%a.jsonl'").fetchone()[0]


def otlp_line(span_id: str, attrs: list[dict]) -> bytes:
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": span_id, "name": "chat", "kind": 1,
            "startTimeUnixNano": "1795600000000000000", "endTimeUnixNano": "1795600000250000000",
            "parentSpanId": "eee19b7ec3c1b174",
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}, *attrs], "status": {}}
    return json.dumps({"resourceSpans": [{"resource": {"attributes": []},
                                          "scopeSpans": [{"scope": {"name": "t"}, "spans": [span]}]}]}).encode()


def test_otlp_file_lines_with_overflowing_usage_are_rejected_alone(tmp_path):
    """An OTLP ``gen_ai.usage.*`` of 2^63 (or a cost of Infinity) rejects its line; the spans around it are stored."""
    lines = [
        otlp_line("0000000000000001", [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}}]),
        otlp_line("0000000000000002", [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": str(2**63)}}]),
        otlp_line("0000000000000003", [{"key": "gen_ai.usage.output_tokens", "value": {"doubleValue": "Infinity"}}]),
        otlp_line("0000000000000004", [{"key": "gen_ai.usage.output_tokens", "value": {"stringValue": "1e400"}}]),
        otlp_line("0000000000000005", [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "7"}}]),
    ]
    folder = tmp_path / "otel"
    folder.mkdir()
    (folder / "spans.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    conn = connect(tmp_path / "s.db")
    tailer = Tailer(conn, [folder])
    tailer.poll()
    offsets = [r[0] for r in conn.execute("SELECT offset FROM rejects ORDER BY offset")]
    starts = [sum(len(x) + 1 for x in lines[:n]) for n in range(len(lines))]
    assert offsets == starts[1:4]
    assert conn.execute("SELECT count(*) FROM events WHERE kind = 'reasoning'").fetchone()[0] == 2
    assert conn.execute("SELECT offset FROM sources").fetchone()[0] == (folder / "spans.jsonl").stat().st_size
    assert not tailer.problems


def test_otlp_decoding_names_an_overflowing_count_as_bad_input():
    """The receiver answers 400 for an OtlpError: an Infinity token count must be one, not an OverflowError (500)."""
    import pytest

    from agentdeck.store import otlp

    for value in ({"doubleValue": "Infinity"}, {"intValue": str(2**63)}, {"stringValue": "NaN"}):
        with pytest.raises(otlp.OtlpError, match="gen_ai.usage.output_tokens|tokens_out"):
            otlp.decode_json(otlp_line("0000000000000009", [{"key": "gen_ai.usage.output_tokens", "value": value}]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.builds(lambda e: json.dumps(e).encode(), st.sampled_from(base_events("q"))),
                          st.binary(max_size=40), st.sampled_from([b"", b"  ", b"\r", b"\t\x0b", b"{}\r"])),
                max_size=30))
def test_the_parse_processes_decode_a_chunk_as_the_serial_path_does(lines):
    """Parse processes use decode_chunk (no Line objects): same events, same rejects (offset, reason, raw), same count."""
    from agentdeck.store.ingest import decode_chunk, decode_lines
    from agentdeck.store.reader import split_lines

    chunk = b"".join(line + b"\n" for line in lines)
    serial_lines = split_lines(chunk, 1000)
    parsed, rejects = decode_lines(serial_lines)
    parsed2, rejects2, count = decode_chunk(chunk, 1000)
    assert count == len(serial_lines)
    assert [p for _, p in parsed2] == [p for _, p in parsed]
    assert [(r.offset, r.error, r.raw, r.length) for r in rejects2] == [(r.offset, r.error, r.raw, r.length) for r in rejects]
