"""The lazy timeline (``reconstruct``) against the eager reference (``reconstruct_eager``).

Replay opens a task through ``reconstruct``, whose steps are made on first use
from the rows the SELECT returned; evidence packets and compensation read the
same Reconstruction. Whatever the rows (gaps, seqs that arrived out of order,
repeated seqs, payloads that are not JSON or not objects), both must give the
same timeline, the same summary and the same evidence packet.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentdeck.replay.evidence import build_packet
from agentdeck.replay.reconstruct import Timeline, reconstruct, reconstruct_eager
from agentdeck.store.db import connect
from agentdeck.store.txn import atomic

KINDS = ["task_start", "plan", "tool_call", "tool_result", "reasoning", "policy_check", "escalation", "decision",
         "action", "compensation", "task_end"]

_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False, width=32),
                    st.text(max_size=6), st.sampled_from(["POL-1", "4", "é\u2028", "[b]x[/b]", 'a"b\\/']),
                    st.sampled_from([4, 4.0, -0.0, 1e300, [1, "x"], {"a": 1}]))


def _payload(kind: str, seq: int, fields: dict, form: str) -> str:
    """A payload as a trace might have left it: an event object, or not JSON, or JSON that is no object."""
    if form == "unreadable":
        return '{"kind": "' + kind + '", "seq": ' + str(seq) + ", truncated"
    if form == "list":
        return json.dumps([kind, seq])
    if form == "duplicate keys":  # the last one wins in Python's json (the first in SQLite's)
        return json.dumps({"kind": kind, "seq": seq, **fields})[:-1] + ', "policy_id": "again"}'
    if form == "escaped key":  # policy_id spelt with a \u escape, after the plain one
        return json.dumps({"kind": kind, "seq": seq, **fields})[:-1] + ', "policy\\u005fid": "escaped"}'
    if form == "NaN":  # Python's json reads it, SQLite's does not
        return json.dumps({"kind": kind, "seq": seq, **fields, "score": float("nan")})
    if form == "spaced":
        return json.dumps({"kind": kind, "seq": seq, **fields}, indent=2, ensure_ascii=False)
    if form == "long":  # an int past Python's digit limit: unreadable to Python's json, not to SQLite's
        return json.dumps({"kind": kind, "seq": seq, **fields})[:-1] + ', "n": ' + "7" * 4400 + "}"
    return json.dumps({"kind": kind, "seq": seq, **fields}, ensure_ascii=seq % 2 == 0)


_event = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, 14),  # seqs: repeated, missing and out of order as drawn
    st.dictionaries(st.sampled_from(["policy_id", "policy_version", "call_id", "tool", "input", "escalation_id",
                                     "action_id", "summary", "request", "agent", "outcome"]), _values, max_size=4),
    st.sampled_from(["event"] * 6 + ["unreadable", "list", "duplicate keys", "escaped key", "NaN", "spaced", "long"]),
    st.floats(0, 1e9, allow_nan=False),
)


def _store(path: Path, events: list[tuple]) -> object:
    conn = connect(path)
    with atomic(conn):
        conn.execute("DELETE FROM events")
        conn.executemany(
            "INSERT INTO events (task_id, seq, kind, ts, payload) VALUES ('t', ?, ?, ?, ?)",
            [(seq, kind, ts, _payload(kind, seq, fields, form)) for kind, seq, fields, form, ts in events],
        )
    return conn


def _same(eager, lazy) -> None:
    assert isinstance(lazy.steps, Timeline) and isinstance(eager.steps, list)
    assert len(lazy.steps) == len(eager.steps)
    assert [(s.index, s.kind, s.seq, s.ts, s.event_id, s.data, s.title, s.is_gap) for s in lazy.steps] == \
        [(s.index, s.kind, s.seq, s.ts, s.event_id, s.data, s.title, s.is_gap) for s in eager.steps]
    for name in ("gaps", "request_id", "agent", "agent_version", "cohort", "stage", "request", "input", "summary",
                 "plan", "escalations", "actions", "audit", "contract", "decision_index", "decision_points",
                 "policy_versions", "policy_checks", "trace_compensations", "tool_calls"):
        assert getattr(lazy, name) == getattr(eager, name), name
    assert _packet(lazy) == _packet(eager)


def _packet(r) -> object:
    """The evidence packet, or the error building it (a NaN in a payload has no JSON form: the same for both)."""
    try:
        return build_packet(r, generated_by="t", generated_at=0.0, audit_head={"id": 0, "hash": ""})
    except ValueError as exc:
        return ("refused", str(exc))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(_event, max_size=25))
def test_lazy_and_eager_reconstructions_are_the_same(tmp_path, events):
    conn = _store(tmp_path / "lazy.db", events)
    eager, lazy = reconstruct_eager(conn, "t"), reconstruct(conn, "t")
    if not events:
        assert eager is None and lazy is None
        return
    _same(eager, lazy)
    # Steps asked for out of order (the screen draws from the middle, jumps to the end) are the same steps.
    steps = lazy.steps
    assert [steps[i].kind for i in reversed(range(len(steps)))] == [s.kind for s in reversed(eager.steps)]
    assert steps[-1] is steps[len(steps) - 1] and steps[1:3] == steps[1:3]
    with pytest.raises(IndexError):
        steps[len(steps)]


def test_a_task_with_gaps_repeats_disorder_and_unreadable_payloads(tmp_path):
    """The cases named: seqs 3-4 and 8 missing, seq 5 twice, arrival out of order, a payload not JSON."""
    events = [("task_start", 0, {"request": "r", "agent": "a"}, "event", 1.0),
              ("policy_check", 5, {"policy_id": "P", "policy_version": 2}, "event", 6.0),
              ("tool_call", 2, {"call_id": "c", "tool": "x"}, "event", 3.0),
              ("policy_check", 5, {"policy_id": "P", "policy_version": 3}, "event", 6.5),
              ("plan", 1, {"summary": "s"}, "unreadable", 2.0),
              ("tool_result", 6, {"call_id": "c"}, "event", 7.0),
              ("escalation", 7, {"escalation_id": "e"}, "list", 8.0),
              ("task_end", 9, {"outcome": "success"}, "event", 10.0)]
    conn = _store(tmp_path / "cases.db", events)
    eager, lazy = reconstruct_eager(conn, "t"), reconstruct(conn, "t")
    _same(eager, lazy)
    assert lazy.gaps == [(3, 4), (8, 8)]
    assert [s.seq for s in lazy.steps] == [0, 1, 2, 3, 5, 5, 6, 7, 8, 9]
    assert lazy.policy_versions == ["P@2", "P@3"] and lazy.decision_points == [7]
    assert lazy.steps[1].data["unreadable_payload"].startswith('{"kind": "plan"')


def test_the_contract_shown_follows_its_file_though_the_book_is_kept(tmp_path):
    """The contract book is kept per store between opens (reading the files each time was a few ms of every
    open): an edited contract file is still what the next reconstruction shows."""
    from test_deferred_indexes import tailed_contract_backlog
    from test_ingest_kill9 import CONTRACT

    conn, contract = tailed_contract_backlog(tmp_path, 2)
    assert reconstruct(conn, "t-0").contract["path"] == str(contract)
    contract.write_text(CONTRACT.replace("kill-bot", "other-bot"))
    assert reconstruct(conn, "t-0").contract["note"] == "no contract for this agent"
    contract.write_text(CONTRACT)
    assert reconstruct(conn, "t-1").contract["path"] == str(contract) == reconstruct_eager(conn, "t-1").contract["path"]


TRICKY = ["unreadable", "list", "duplicate keys", "escaped key", "NaN", "spaced", "long"]


@pytest.mark.parametrize("form", TRICKY)
@pytest.mark.parametrize("tricky_first", [True, False])
def test_policy_line_from_payloads_json_reads_oddly(tmp_path, form, tricky_first):
    """The policy line is read from the rows without making steps: a check in each odd form (not JSON, not an
    object, a key twice or spelt with an escape, NaN, a number past Python's digit limit, indented) beside
    plain ones with the same fields, before and after them, gives the line parsing every step gives."""
    fields = {"policy_id": "P", "policy_version": 1}
    first, second = (form, "event") if tricky_first else ("event", form)
    events = [("task_start", 0, {}, "event", 0.0), ("policy_check", 1, fields, first, 1.0),
              ("policy_check", 2, fields, second, 2.0), ("policy_check", 3, fields, "event", 3.0)]
    conn = _store(tmp_path / "tricky.db", events)
    assert reconstruct(conn, "t").policy_versions == reconstruct_eager(conn, "t").policy_versions


def _loads_outcome(parse, text):
    try:
        value = parse(text)
    except Exception as exc:  # the same kind of error as json.loads, or the same value
        return ("error", type(exc))
    return ("value", json.dumps(value, sort_keys=True, allow_nan=True), type(value))


_json_text = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8,
).map(lambda v: json.dumps(v, ensure_ascii=False))
_whitespace = st.sampled_from(["", " ", "\n", "\t\r", "\ufeff", "\u00a0", "x", "}", ",1", "\x00"])


@settings(max_examples=300, deadline=None)
@given(before=_whitespace, body=st.one_of(_json_text, st.text(max_size=30)), after=_whitespace,
       duplicate=st.booleans())
def test_payloads_parse_as_json_loads_would(before, body, after, duplicate):
    # Replay's payload parse skips json.loads' wrappers (issue 9): whatever a store holds (whitespace around it,
    # a BOM, trailing data, duplicate keys, NaN, text that is no JSON) it must read it as json.loads does.
    from agentdeck.replay.reconstruct import _parse

    if duplicate and body.startswith("{") and body.endswith("}") and len(body) > 2:
        body = body[:-1] + ', "k": 1, "k": 2}'
    text = before + body + after
    assert _loads_outcome(_parse, text) == _loads_outcome(json.loads, text)


def test_payload_parse_reads_what_json_loads_reads_at_the_edges():
    from agentdeck.replay.reconstruct import _parse

    for text in ['{"a": 1}', ' {"a": 1}', '{"a": 1} ', '\ufeff{"a": 1}', '{"a": 1}x', '{"a": NaN}', '[1, 2]',
                 '"s"', "1", "", "{", '{"a": 1, "a": 2}', '{"a": "\\ud800"}', b'{"a": 1}', bytearray(b"[1]")]:
        assert _loads_outcome(_parse, text) == _loads_outcome(json.loads, text), text
