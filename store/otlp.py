"""OpenTelemetry traces as agentdeck events.

Reads OTLP trace data -- the JSON lines the Collector's file exporter writes
and OTLP/HTTP request bodies (JSON or protobuf) -- and maps each span to
native events (store/events.py) through the GenAI semantic conventions
(``gen_ai.*``), OpenInference (``openinference.span.kind``) and agentdeck's
own ``agentdeck.*`` attributes and span events. ``docs/otel.md`` describes
the mapping for users; this module is its single implementation.

Tasks and order. All spans of one trace form one task, ``otel-<trace id>``.
A span's events must get the same ``seq`` whichever line, request or file
brings it and in whatever order spans arrive, so ``seq`` is computed from
the span alone: an agent span's task_start is 0 and its task_end 9,999,999
(so they frame the task), every other event's ``seq`` is its own time in
10 ms ticks, modulo the 9,999,998 values in between. Steps are therefore in
time order within any 27-hour window; equal ticks fall back to arrival
order.

Duplicates. Each event is a ``SpanItem`` that remembers its span part
(trace id, span id, part); ``claim`` records parts inside the ingest
transaction, so a span sent twice (a client retry, the same span in a file
and over HTTP) is stored once.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, UTC
from typing import Any
from collections.abc import Iterable

from pydantic import ValidationError

from agentdeck.store import events as ev
from agentdeck.store import otlp_content as content
from agentdeck.store.gc_pause import paused as gc_paused  # (the receiver and claim pause through it)

TASK_PREFIX = "otel-"
FIRST_SEQ = 0
LAST_SEQ = 9_999_999
TICK_NS = 10_000_000
_STEP_SEQS = LAST_SEQ - 1  # steps use 1 .. 9,999,998
# A JSON list of [a, b] pairs bound as one parameter, as rows: `(x, y) IN _PAIRS` (one statement a batch).
_PAIRS = "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))"

# One attribute value (a string, or bytes) may be at most this big: larger
# ones are rejected with the attribute's name rather than stored.
MAX_VALUE_BYTES = 64 * 1024
MAX_KEY_CHARS = 256
MAX_DEPTH = 8
MAX_TEXT = 20_000  # events.Text

MODEL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})

# Span attributes agentdeck reads (beyond gen_ai.* and OpenInference); any
# other agentdeck.* attribute is a typo and rejects the span, with its name.
SPAN_ATTRIBUTES = frozenset({
    "agentdeck.agent", "agentdeck.request_id", "agentdeck.request", "agentdeck.input",
    "agentdeck.cohort", "agentdeck.stage",
    "agentdeck.agent_version", "agentdeck.agent_version.prompt", "agentdeck.agent_version.model",
    "agentdeck.agent_version.policy", "agentdeck.agent_version.tool_schema",
    "agentdeck.outcome", "agentdeck.cost_usd", "agentdeck.summary",
    "agentdeck.status", "agentdeck.retry",
    "agentdeck.policy_id", "agentdeck.policy_version", "agentdeck.verdict", "agentdeck.reason",
    "agentdeck.subject",
})
# Span events named agentdeck.<kind> become that native event; their
# attributes agentdeck.<field> are its fields.
EVENT_KINDS = ("plan", "reasoning", "policy_check", "escalation", "decision", "action", "compensation")
# Fields holding objects or lists: a string value there is JSON-decoded.
STRUCTURED_FIELDS = frozenset({
    "steps", "proposed_action", "params", "before", "after", "response", "compensation", "input",
    "output", "body",
})


class OtlpError(ValueError):
    """Not valid OTLP trace data, or a span agentdeck cannot map; the message says which and why."""


@dataclass(slots=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(slots=True)
class Span:
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    error: bool  # status code ERROR
    status_message: str
    attributes: dict[str, Any]
    events: list[SpanEvent]
    resource: dict[str, Any]


@dataclass(slots=True)
class BadSpan:
    """One span refused on its own (the rest of its request or line is kept)."""

    reason: str
    raw: bytes = b""  # the span as received, or what could be read of it (for the rejects row)

    def __str__(self) -> str:
        return self.reason


def _raw_json(value: Any) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "replace")[:4096]
    except (ValueError, TypeError, RecursionError):
        return b""


class SpanItem(tuple):
    """An ``(event, payload_json)`` pair that remembers the span part it came from.

    ``meta`` is None for most items. Items that frame a task (task_start and
    task_end of the span chosen as the task's invocation) carry
    ``frame`` (rank, start_ns, span_id), ``agent`` and ``alt`` (the event fields the part
    becomes when another span of the trace frames the task, or None
    for nothing); model steps may carry ``cost`` and any item ``session``.
    ``claim`` reads them inside the ingest transaction.
    """

    key: tuple[str, str, str]
    meta: dict | None = None
    source: str | None = None  # who sent it (the receiver's token or client certificate name)

    def __new__(cls, event, payload: str, key: tuple[str, str, str], meta: dict | None = None,
                source: str | None = None):
        item = super().__new__(cls, (event, payload))
        item.key = key
        item.meta = meta
        item.source = source
        return item

    def __reduce__(self):  # parse processes send items back pickled
        return (SpanItem, (self[0], self[1], self.key, self.meta, self.source))


class SpanItems(list):
    """The items of a request or line, with how many spans were not GenAI (counted, not turned
    into steps) and, when decoded with ``partial``, why each refused span was refused."""

    ignored: int = 0
    rejected: list[str] = []  # replaced per instance by the decode functions


# -- entry points ------------------------------------------------------------


def decode_line(raw: bytes) -> SpanItems:
    """One line of the Collector's file exporter (an ExportTraceServiceRequest in JSON).

    A span that cannot be read or mapped is left out and named in the
    result's ``rejected``; the line's other spans are kept.
    """
    return decode_json(raw, partial=True)


def decode_json(body: bytes, partial: bool = False) -> SpanItems:
    """The events of an ExportTraceServiceRequest in JSON. Raises OtlpError when the body is
    not one; a bad span raises too, unless ``partial``: then it is left out and its reason
    is in the result's ``rejected`` (for OTLP partial success: ``rejected_spans``)."""
    bad: list[BadSpan] | None = [] if partial else None
    items = to_events(spans_from_json(load_json(body), bad), bad)
    items.rejected = [b.reason for b in bad or []]
    return items


def load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OtlpError(f"bad JSON: {exc}") from None
    except RecursionError:
        raise OtlpError("bad JSON: nested too deeply") from None


def decode_protobuf(body: bytes, partial: bool = False) -> SpanItems:
    """As decode_json, for a protobuf ExportTraceServiceRequest."""
    bad: list[BadSpan] | None = [] if partial else None
    items = to_events(spans_from_protobuf(body, bad), bad)
    items.rejected = [b.reason for b in bad or []]
    return items


def refused(items: SpanItems) -> str:
    """One line saying which spans of a line or request were refused and why."""
    n = len(items.rejected)
    return (f"{n} span{'s' if n > 1 else ''} refused, the others kept: " + "; ".join(items.rejected))[:1000]


def count_spans(items: Iterable[SpanItem]) -> int:
    return len({item.key[:2] for item in items}) + getattr(items, "ignored", 0)


# -- exactly once --------------------------------------------------------------


def claim(conn: sqlite3.Connection, items: list) -> list | None:
    with gc_paused():
        return _claim(conn, items)


def _claim(conn: sqlite3.Connection, items: list) -> list | None:
    """Record the span parts of ``items``; call inside the ingest transaction.

    Returns None when every part is new (and is now recorded) and the items
    agree with the store on which span frames each task. Otherwise returns
    the items to write instead; the caller rolls back and writes those:
    without parts stored already (the first occurrence of each part not
    stored yet, and every item that is not from a span), or with a framing
    part turned into the step it is when an earlier-stored span of its trace
    frames the task.

    The parts of a trace nothing was claimed of before are recorded as one
    ``otlp_claims`` row (``_compact``): a batch of whole new traces, the usual
    case, writes a row a trace instead of a row a part (a row costs ~3 us
    however small). The first batch to bring more of such a trace turns its
    row into ``otlp_spans`` rows (``_spill``), so everything that reads parts
    reads them there. A trace whose batch holds log records is never compact
    (``_attach_logs`` reads and updates the step parts of their spans in
    ``otlp_spans``, in the same batch too).
    """
    spans = [item for item in items if type(item) is SpanItem]
    keys = {item.key for item in spans}
    fresh = _spill(conn, keys)
    if len(keys) == len(spans):
        rows: list[tuple] = []
        compact: dict[str, list[str]] = {}
        senders: dict[tuple[str, str], None] = {}
        marked = []  # the items with meta: all the helpers below look at
        logged = set()  # fresh traces with log records here: per part after all (see above)
        for item in spans:  # (the claim's hot loop: one pass, locals, the usual part inline)
            key, meta, source = item.key, item.meta, item.source
            trace, part = key[0], key[2]
            if meta:
                marked.append(item)
                step = meta.get("step") or _NO_STEP
            else:
                step = _NO_STEP
            if source is not None:
                senders[trace, source] = None
            if trace in fresh:
                if item[0] is None and part[:4] == "log:":
                    logged.add(trace)
                lines = compact.get(trace)
                if lines is None:
                    lines = compact[trace] = []
                line = key[1] + " " + part
                if source is None and line.count(" ") == 1 and "\n" not in line and "\t" not in line:
                    if step is _NO_STEP:
                        lines.append(line)
                        continue
                    # A model step's part (a fifth of a usual batch's): _part_line's line, inline.
                    seq, bare = step
                    if type(seq) is int and (bare is None or type(bare) is int):
                        lines.append(f"{line} {seq} {'' if bare is None else bare}")
                        continue
                lines.append(_part_line(key[1], part, source, *step))
            else:
                rows.append((*key, source, *step))
        for trace in logged:
            rows.extend(_part_rows(trace, "\n".join(compact.pop(trace))))
        conn.execute("SAVEPOINT otlp_claim")
        inserted = conn.executemany(
            "INSERT OR IGNORE INTO otlp_spans (trace_id, span_id, part, source, step_seq, bare) "
            "VALUES (?, ?, ?, ?, ?, ?)", rows
        ).rowcount if rows else 0
        all_new = inserted == len(rows)
        conn.execute("RELEASE otlp_claim" if all_new else "ROLLBACK TO otlp_claim")
        if all_new:
            if compact:
                _compact(conn, compact, spans if senders else None)
            _note_senders(conn, senders)
            attached = _attach_logs(conn, items, marked)
            if attached is not None:
                return attached
            inner = _inner(conn, items, marked)
            return inner if inner is not None else _settle(conn, items, marked)
        conn.execute("RELEASE otlp_claim")
    keep, seen = [], set()
    for item in items:
        if type(item) is SpanItem:
            if item.key in seen or conn.execute(
                "SELECT 1 FROM otlp_spans WHERE trace_id = ? AND span_id = ? AND part = ?", item.key
            ).fetchone():
                continue
            seen.add(item.key)
        keep.append(item)
    return keep


def _spill(conn: sqlite3.Connection, keys: set[tuple[str, str, str]]) -> set[str]:
    """Turn the ``otlp_claims`` rows of the batch's traces into ``otlp_spans`` rows; return the
    batch's traces nothing is claimed of yet (``keys``: the batch's span parts).

    One query for the batch: most batches bring new traces only, and then this is all.
    """
    traces = {key[0] for key in keys}
    if not traces:
        return traces
    known: set[str] = set()
    claimed = []
    for trace, parts in conn.execute(
        "SELECT trace_id, parts FROM otlp_claims WHERE trace_id IN (SELECT value FROM json_each(?1)) "
        "UNION ALL SELECT DISTINCT trace_id, NULL FROM otlp_spans WHERE trace_id IN (SELECT value FROM json_each(?1))",
        (json.dumps(sorted(traces)),),
    ):
        known.add(trace)
        if parts is not None:
            claimed.append((trace, parts))
    if claimed:
        conn.executemany(
            "INSERT OR IGNORE INTO otlp_spans (trace_id, span_id, part, source, step_seq, bare) VALUES (?, ?, ?, ?, ?, ?)",
            [row for trace, parts in claimed for row in _part_rows(trace, parts)])
        conn.executemany("DELETE FROM otlp_claims WHERE trace_id = ?", [(trace,) for trace, _parts in claimed])
    traces -= known
    return traces


def _part_line(span: str, part: str, source: str | None, step_seq: int | None, bare: int | None) -> str:
    """One span part in an ``otlp_claims`` row: ``span part``, or ``span part step_seq bare`` (a
    model step's), then ``<tab>sender`` if it has one; anything else as JSON after a tab. (A
    JSON list a part cost four times as much: json encodes each value through a generic path.)"""
    plain = f"{span} {part}"
    if plain.count(" ") == 1 and "\n" not in plain and "\t" not in plain and (source is None or "\n" not in source):
        if step_seq is None and bare is None:
            line = plain
        elif type(step_seq) is int and (bare is None or type(bare) is int):
            line = f"{span} {part} {step_seq} {'' if bare is None else bare}"
        else:
            line = ""
        if line:
            return line if source is None else f"{line}\t{source}"
    return "\t" + json.dumps([span, part, source, step_seq, bare])


def _part_rows(trace: str, text: str) -> list[tuple]:
    """The ``otlp_spans`` rows of a trace's ``otlp_claims`` parts (``_part_line``)."""
    rows = []
    for line in text.split("\n"):
        if line[:1] == "\t":
            rows.append((trace, *json.loads(line[1:])))
            continue
        head, tab, source = line.partition("\t")
        fields = head.split(" ")
        sender = source if tab else None
        if len(fields) == 2:
            rows.append((trace, fields[0], fields[1], sender, None, None))
        else:
            rows.append((trace, fields[0], fields[1], sender, int(fields[2]), int(fields[3]) if fields[3] else None))
    return rows


def _compact(conn: sqlite3.Connection, compact: dict[str, list[str]], spans: list | None) -> None:
    """Record the parts of traces nothing was claimed of before (``compact``: trace -> its
    ``_part_line``s; no duplicate part among them) as one ``otlp_claims`` row each, with its
    senders (from ``spans``, when any item has one) in the order ``otlp_spans`` gives them: by
    span, then part (store/ingest.py ``fill_otel_tasks`` reads them from either table)."""
    sources: dict[str, dict[str, None]] = {}
    if spans is not None:
        for key, source in sorted((item.key, item.source) for item in spans if item.key[0] in compact):
            if source is not None:
                sources.setdefault(key[0], {})[source] = None
    conn.executemany("INSERT INTO otlp_claims (trace_id, parts, sources) VALUES (?, ?, ?)",
                     [(trace, "\n".join(lines), ",".join(sources[trace]) if trace in sources else None)
                      for trace, lines in compact.items()])


_NO_STEP = (None, None)


def _note_senders(conn: sqlite3.Connection, senders: dict[tuple[str, str], None]) -> None:
    """A task already stored lists each new sender of its span parts (``tasks.source``, in the
    order they came; a task row created later in the transaction takes its senders in
    store/ingest.py ``fill_otel_tasks``). One statement a (trace, sender) of the batch, where a
    trigger on otlp_spans ran a program for every part claimed (a third of the claim's insert),
    sender or not."""
    if senders:
        conn.executemany(
            "UPDATE tasks SET source = CASE WHEN source IS NULL THEN ?2 ELSE source || ',' || ?2 END "
            "WHERE task_id = ?1 AND (source IS NULL OR instr(',' || source || ',', ',' || ?2 || ',') = 0)",
            [(TASK_PREFIX + trace, source) for trace, source in senders])


def _attach_logs(conn: sqlite3.Connection, items: list, marked: list) -> list | None:
    """Attach what log records (store/otlp_logs.py) say to their spans' model steps.

    Records of this batch are kept in ``otlp_logs``. A model step of this
    batch whose span has records (here or stored) is rewritten: its summary
    is the answer instead of the span's name, and it carries the records'
    request and answer for the task (``_settle``); the rewritten items are
    returned (the caller rolls back and claims those). A stored step gets the
    answer of records that came after it. None: the items stand. (``marked``: the
    span items of ``items`` that have meta.)
    """
    logs = [item for item in marked if item[0] is None and "log" in item.meta]
    if not logs and not conn.execute("SELECT EXISTS (SELECT 1 FROM otlp_logs)").fetchone()[0]:
        return None  # (no records here and none stored: most stores, whose spans carry their messages)
    steps = {item.key[:2]: item for item in marked if "step" in item.meta and not item.meta.get("attached")}
    if not logs and not steps:
        return None
    found: dict[tuple[str, str], list] = {}  # span -> [earliest request, latest answer]

    def note(span: tuple[str, str], req, ans) -> None:
        got = found.setdefault(span, [None, None])
        if req is not None and (got[0] is None or tuple(req) < got[0]):
            got[0] = tuple(req)
        if ans is not None and (got[1] is None or tuple(ans) > got[1]):
            got[1] = tuple(ans)

    if logs:
        conn.executemany(
            "INSERT OR IGNORE INTO otlp_logs (trace_id, span_id, rec, req_ns, request, ans_ns, answer) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(*item.key, *(item.meta.get("req") or _NO_STEP), *(item.meta.get("ans") or _NO_STEP)) for item in logs])
        for item in logs:
            if item.key[:2] not in steps:  # (those are read back below with the stored ones)
                note(item.key[:2], item.meta.get("req"), item.meta.get("ans"))
    if steps:
        traces = sorted({trace for trace, _span in steps})
        for trace, span, req_ns, req, ans_ns, ans in conn.execute(
            "SELECT trace_id, span_id, req_ns, request, ans_ns, answer FROM otlp_logs "
            "WHERE trace_id IN (SELECT value FROM json_each(?))", (json.dumps(traces),)
        ):
            if (trace, span) in steps:
                note((trace, span), (req_ns, req) if req is not None else None, (ans_ns, ans) if ans is not None else None)
    # Records whose step was stored earlier: its summary becomes the answer (one query for the
    # batch's steps, one for their events: a batch of logs may name thousands of spans).
    earlier = [span for span, (_req, ans) in found.items() if span not in steps and ans is not None]
    if earlier:
        pairs = _PAIRS
        bare_steps = {(trace, span): (seq, bare) for trace, span, seq, bare in conn.execute(
            f"SELECT trace_id, span_id, step_seq, bare FROM otlp_spans WHERE part = 'step' "
            f"AND (trace_id, span_id) IN {pairs}", (json.dumps(earlier),)) if seq is not None and bare is not None}
        stored: dict[tuple[str, int], tuple[int, str]] = {}
        if bare_steps:
            for tid, seq, rowid, payload in conn.execute(
                f"SELECT task_id, seq, id, payload FROM events WHERE kind = 'reasoning' AND (task_id, seq) IN {pairs} "
                "ORDER BY id", (json.dumps(sorted({(task_id(t), q) for (t, _s), (q, _b) in bare_steps.items()})),)
            ):
                stored.setdefault((tid, seq), (rowid, payload))  # the first, as before
        updates = []
        for span, (seq, bare) in bare_steps.items():
            row = stored.get((task_id(span[0]), seq))
            if row is not None:
                fields = json.loads(row[1])
                fields["summary"] = _text(found[span][1][1] + str(fields.get("summary", ""))[bare:])
                _event, payload = encode(fields)
                updates.append((payload, row[0]))
        conn.executemany("UPDATE events SET payload = ? WHERE id = ?", updates)
        conn.executemany("UPDATE otlp_spans SET bare = NULL WHERE trace_id = ? AND span_id = ? AND part = 'step'",
                         list(bare_steps))
    if not any(span in found for span in steps):
        return None
    out = []
    for item in items:
        span = item.key[:2]
        if item.meta and "step" in item.meta and not item.meta.get("attached") and span in found:
            req, ans = found[span]
            meta = {**item.meta, "attached": True}
            fields = json.loads(item[1])
            seq, bare = meta["step"]
            if bare is not None and ans is not None:
                fields["summary"] = _text(ans[1] + str(fields.get("summary", ""))[bare:])
                meta["step"] = (seq, None)
            if req is not None and (meta.get("req") is None or req < tuple(meta["req"])):
                meta["req"] = req
            if ans is not None and (meta.get("ans") is None or ans > tuple(meta["ans"])):
                meta["ans"] = ans
            out.append(_item(fields, item.key, meta))
        else:
            out.append(item)
    return out


# Spans a model call's request and answer pass through on their way up to the nearest named
# agent above it (OpenInference's "turn" CHAIN spans, a nameless agent or workflow); any other
# span (a named agent, a tool, a span that is not GenAI) stops them.
_PASSING_KINDS = frozenset({"agent", "workflow", "genai"})
# A walk up ends where nothing changes, so a cycle of parent links (a hostile trace) ends after
# one lap. The bound keeps a hostile chain of thousands of passing spans, each with a model call,
# from costing chain length squared; real nesting is a few spans deep (only a chain deeper than
# this could show an answer that depends on the order its spans came in).
_MAX_HOPS = 1000


def _merge(agg: list, req, ans) -> bool:
    """Merge a (start_ns, text) request and an (end_ns, text) answer into ``agg`` =
    [parent, req, ans]: the earliest request and the last answer win. True if it changed."""
    changed = False
    if req is not None and (agg[1] is None or req < agg[1]):
        agg[1], changed = req, True
    if ans is not None and (agg[2] is None or ans > agg[2]):
        agg[2], changed = ans, True
    return changed


def _inner(conn: sqlite3.Connection, items: list, marked: list) -> list | None:
    """The request and answer of a named agent that logs neither (OpenInference's openai-agents
    AGENT spans: the handoff target ``refund_agent``): its model calls', for its sub-agent step.

    ``otlp_inner`` keeps, for each span, the earliest user message and the last answer
    (by end time, then text) of the model calls under it, passed up through ``link``
    items (a passing span's parent) to the nearest named agent, whichever batch each span
    comes in: merging is order-free, so any grouping and order stores the same. Stored
    sub-agent steps that want them (``otlp_subagents``) are rewritten when a better one
    comes; this batch's are returned rewritten (the caller rolls back and claims those).
    None: the items stand, and their sub-agent steps are recorded. (``marked``: the span
    items of ``items`` that have meta.)
    """
    links, contrib, subs = _passed_up(marked)
    if not links and not contrib and not subs:
        return None
    traces = sorted({t for t, _s, _p in links} | {node[0] for node, _r, _a in contrib} | {i.key[0] for i in subs})
    state: dict[tuple[str, str], list] = {
        (t, s): [p, (rn, rq) if rn is not None else None, (an, aw) if an is not None else None]
        for t, s, p, rn, rq, an, aw in conn.execute(
            "SELECT trace_id, span_id, parent_id, req_ns, request, ans_ns, answer FROM otlp_inner "
            "WHERE trace_id IN (SELECT value FROM json_each(?))", (json.dumps(traces),))}
    dirty = _propagate(state, links, contrib)
    if dirty:
        conn.executemany(
            "INSERT OR REPLACE INTO otlp_inner (trace_id, span_id, parent_id, req_ns, request, ans_ns, answer) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(*node, agg[0], *(agg[1] or _NO_STEP), *(agg[2] or _NO_STEP)) for node, agg in
             ((n, state[n]) for n in sorted(dirty))])
        _restate(conn, sorted(dirty), state)
    out, changed = [], False
    for item in items:
        meta = item.meta if type(item) is SpanItem else None
        if not meta or not meta.get("sub"):
            out.append(item)
            continue
        start_ns, agent, request, outcome, summary = meta["sub"]
        plan = _filled_plan(task_id(item.key[0]), start_ns, agent, request, outcome, summary,
                            state.get(item.key[:2]))
        if plan["summary"] != meta.get("shown"):
            out.append(_item(plan, item.key, {**meta, "shown": plan["summary"]}))
            changed = True
        else:
            out.append(item)
    if changed:
        return out
    conn.executemany(
        "INSERT OR REPLACE INTO otlp_subagents (trace_id, span_id, seq, start_ns, agent, request, outcome, summary, "
        "shown) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(*item.key[:2], step_seq(item.meta["sub"][0]), *item.meta["sub"], item.meta["shown"]) for item in subs])
    return None


def _passed_up(items: list) -> tuple[list, list, list]:
    """The batch's parent links, model calls' (node, request, answer), and sub-agent steps that want them."""
    links, contrib, subs = [], [], []
    for item in items:
        meta = item.meta if type(item) is SpanItem else None
        if not meta:
            continue
        if "link" in meta:
            links.append((item.key[0], item.key[1], meta["link"]))
        elif "parent" in meta and (meta.get("req") or meta.get("ans")):
            contrib.append(((item.key[0], meta["parent"]), _opt(meta.get("req")), _opt(meta.get("ans"))))
        elif meta.get("sub"):
            subs.append(item)
    return links, contrib, subs


def _propagate(state: dict[tuple[str, str], list], links: list, contrib: list) -> set[tuple[str, str]]:
    """Pass ``links`` and ``contrib`` into ``state`` ((trace, span) -> [parent, req, ans]); the nodes changed."""
    dirty: set[tuple[str, str]] = set()

    def up(node: tuple[str, str], req, ans) -> None:
        for _hop in range(_MAX_HOPS):
            agg = state.setdefault(node, [None, None, None])
            if not _merge(agg, req, ans):
                return
            dirty.add(node)
            if agg[0] is None:
                return
            node = (node[0], agg[0])

    for trace, span, parent in links:
        agg = state.setdefault((trace, span), [None, None, None])
        if agg[0] is None:
            agg[0] = parent
            dirty.add((trace, span))
            if agg[1] is not None or agg[2] is not None:
                up((trace, parent), agg[1], agg[2])
    for node, req, ans in contrib:
        up(node, req, ans)
    return dirty


def _prefill(items: SpanItems) -> None:
    """Fill this batch's sub-agent steps from the batch's own model calls, in place: what
    ``_inner`` would make of them when nothing of their traces is stored (it checks them
    against the store; writing them right here spares it a second round)."""
    links, contrib, subs = _passed_up(items)
    if not links and not contrib:
        return  # nothing passes anything up: no step to fill
    if not subs and not any(type(item) is SpanItem and item.meta and item.meta.get("alt_sub") for item in items):
        return
    state: dict[tuple[str, str], list] = {}
    _propagate(state, links, contrib)
    if not state:
        return
    for i, item in enumerate(items):
        meta = item.meta if type(item) is SpanItem else None
        if not meta:
            continue
        if meta.get("sub") and (agg := state.get(item.key[:2])) is not None:
            plan = _filled_plan(task_id(item.key[0]), *_sub(meta["sub"]), agg)
            items[i] = _item(plan, item.key, {**meta, "shown": plan["summary"]})
        elif meta.get("alt_sub") and meta.get("alt") and (agg := state.get(item.key[:2])) is not None:
            item.meta = {**meta, "alt": _filled_plan(task_id(item.key[0]), *_sub(meta["alt_sub"]), agg)}


def _sub(value: Any) -> tuple[int, str, str, str, str]:
    """A sub-agent step's own fields, as meta carries them: (start_ns, agent, request, outcome, summary)."""
    start_ns, agent, request, outcome, summary = value
    return start_ns, agent, request, outcome, summary


def _filled_plan(tid: str, start_ns: int, agent: str, request: str, outcome: str, summary: str,
                 agg: list | None) -> dict[str, Any]:
    """A sub-agent step, its missing request or answer taken from its model calls' (``agg``)."""
    if agg is not None:
        request = request or (agg[1][1] if agg[1] else "")
        summary = summary or (agg[2][1] if agg[2] else "")
    return _subagent_plan(tid, start_ns, agent, request, outcome, summary)


def _restate(conn: sqlite3.Connection, nodes: list[tuple[str, str]], state: dict) -> None:
    """Rewrite the stored sub-agent steps of ``nodes`` (spans whose model calls' request or
    answer changed) that take them."""
    pairs = _PAIRS
    for trace, span, seq, start_ns, agent, request, outcome, summary, shown in conn.execute(
        "SELECT trace_id, span_id, seq, start_ns, agent, request, outcome, summary, shown FROM otlp_subagents "
        f"WHERE (trace_id, span_id) IN {pairs}", (json.dumps(nodes),)
    ).fetchall():
        tid = task_id(trace)
        plan = _filled_plan(tid, start_ns, agent, request, outcome, summary, state.get((trace, span)))
        if plan["summary"] == shown:
            continue
        _rewrite_plan(conn, tid, seq, shown, plan)
        conn.execute("UPDATE otlp_subagents SET shown = ? WHERE trace_id = ? AND span_id = ?",
                     (plan["summary"], trace, span))


def _rewrite_plan(conn: sqlite3.Connection, tid: str, seq: int, shown: str, plan: dict[str, Any]) -> None:
    for rowid, payload in conn.execute(
        "SELECT id, payload FROM events WHERE task_id = ? AND kind = 'plan' AND seq = ? ORDER BY id", (tid, seq)
    ).fetchall():
        if json.loads(payload).get("summary") == shown:
            _event, new = encode(plan)
            conn.execute("UPDATE events SET payload = ? WHERE id = ?", (new, rowid))
            return


def _meta(item) -> dict:
    return getattr(item, "meta", None) or {}


def _opt(value) -> tuple | None:
    return tuple(value) if value else None


_TASK_COLUMNS = ("rank, start_ns, span_id, agent, named, needs_req, needs_ans, req_ns, request, ans_ns, answer, "
                 "own_answer")


def _settle(conn: sqlite3.Connection, items: list, marked: list) -> list | None:
    """Agree with the store on the span framing each task (and on the request and answer it
    borrows from model calls); add model costs and sessions to the task rows.

    Returns None when the items stand, else the items rewritten (nothing
    has been changed then: the caller rolls back and writes those). (``marked``: the span
    items of ``items`` that have meta.)
    """
    framing: dict[str, list] = {}  # trace -> its framing items (SpanItems, with meta)
    costs: dict[str, float] = {}  # trace -> model costs here
    sessions: dict[str, tuple] = {}  # trace -> earliest (start_ns, session id) here
    reqs: dict[str, tuple] = {}  # trace -> earliest (start_ns, user message) of its model calls here
    anss: dict[str, tuple] = {}  # trace -> last (end_ns, answer)
    for item in marked:  # (the batch's hot loop here: locals, and a test before each tuple())
        meta = item.meta
        trace = item.key[0]
        if "frame" in meta:
            got = framing.get(trace)
            if got is None:
                framing[trace] = [item]
            else:
                got.append(item)
        r = meta.get("cost")
        if r:
            costs[trace] = costs.get(trace, 0.0) + r
        r = meta.get("session")
        if r:
            r = tuple(r)
            sessions[trace] = min(sessions.get(trace, r), r)
        r = meta.get("req")
        if r:
            r = tuple(r)
            reqs[trace] = min(reqs.get(trace, r), r)
        r = meta.get("ans")
        if r:
            r = tuple(r)
            anss[trace] = max(anss.get(trace, r), r)
    if not framing and not costs and not sessions and not reqs and not anss:
        return None
    # One query for the batch's traces, not one a trace (a bulk import has thousands a batch).
    stored = {row[0]: tuple(row[1:]) for row in conn.execute(
        f"SELECT trace_id, {_TASK_COLUMNS} FROM otlp_tasks WHERE trace_id IN (SELECT value FROM json_each(?))",
        (json.dumps(sorted(set(framing) | set(reqs) | set(anss))),))}
    best_req, best_ans = {}, {}
    for trace in set(framing) | set(reqs) | set(anss):
        row = stored.get(trace)
        if row is None:  # (a trace new here, most of a bulk import's: its own are the best)
            best_req[trace], best_ans[trace] = reqs.get(trace), anss.get(trace)
            continue
        candidates = [r for r in (reqs.get(trace), (row[7], row[8]) if row and row[7] is not None else None) if r]
        best_req[trace] = min(candidates) if candidates else None
        candidates = [r for r in (anss.get(trace), (row[9], row[10]) if row and row[9] is not None else None) if r]
        best_ans[trace] = max(candidates) if candidates else None

    # trace -> (the winning frame, its agent name if a named agent): framing items of other frames lose
    winners: dict[str, tuple[tuple, str | None]] = {}
    changes = []
    for trace, parts in framing.items():
        mine = parts[0]  # the first part of the least frame
        frame = tuple(mine.meta["frame"])
        for p in parts[1:]:
            other = tuple(p.meta["frame"])
            if other < frame:
                mine, frame = p, other
        row = stored.get(trace)
        if row is not None and (row[0], row[1], row[2]) < frame:
            winners[trace] = ((row[0], row[1], row[2]), row[3] if row[4] else None)
        else:
            winners[trace] = (frame, mine.meta.get("agent") if mine.meta.get("named") else None)
            if row is None or (row[0], row[1], row[2]) != frame:
                changes.append((trace, frame, mine.meta, row))

    def verdict(item) -> str:
        meta, trace = item.meta, item.key[0]
        if tuple(meta["frame"]) != winners[trace][0]:
            return "lose"
        if meta.get("needs_req") and item.key[2] == "start" and _opt(meta.get("used")) != best_req[trace]:
            return "refill"
        if meta.get("needs_ans") and item.key[2] == "end" and _opt(meta.get("used")) != best_ans[trace]:
            return "refill"
        return "stand"

    def all_stand() -> bool:  # (verdict for every framing item, inline: a call an item cost a tenth of _settle)
        for trace, parts in framing.items():
            won = winners[trace][0]
            for item in parts:
                meta = item.meta
                if tuple(meta["frame"]) != won:
                    return False
                if meta.get("needs_req") or meta.get("needs_ans"):
                    part = item.key[2]
                    if part == "start":
                        if meta.get("needs_req") and _opt(meta.get("used")) != best_req[trace]:
                            return False
                    elif part == "end" and meta.get("needs_ans") and _opt(meta.get("used")) != best_ans[trace]:
                        return False
        return True

    if not all_stand():
        rewritten = []
        for item in items:
            meta = _meta(item)
            if "frame" not in meta:
                rewritten.append(item)
                continue
            trace, v = item.key[0], verdict(item)
            if v == "lose":
                alt = meta.get("alt")
                if alt is not None and meta.get("named") and meta.get("agent") != winners[trace][1]:
                    rewritten.append(_item(alt, item.key[:2] + ("start",),
                                           {"ans": meta.get("ans"), "sub": meta.get("alt_sub"), "shown": alt["summary"]}))
            elif v == "refill":
                used = best_req[trace] if item.key[2] == "start" else best_ans[trace]
                fields = json.loads(item[1])
                fields["request" if item.key[2] == "start" else "summary"] = used[1] if used else ""
                rewritten.append(_item(fields, item.key, {**meta, "used": used}))
            else:
                rewritten.append(item)
        return rewritten

    _demote(conn, [(trace, row, meta) for trace, _frame, meta, row in changes if row is not None])
    conn.executemany(
        """INSERT INTO otlp_tasks (trace_id, rank, start_ns, span_id, agent, named, needs_req, needs_ans,
                                      own_answer)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(trace_id) DO UPDATE SET rank = excluded.rank, start_ns = excluded.start_ns,
           span_id = excluded.span_id, agent = excluded.agent, named = excluded.named,
           needs_req = excluded.needs_req, needs_ans = excluded.needs_ans, own_answer = excluded.own_answer""",
        [(trace, *frame, meta.get("agent"), 1 if meta.get("named") else 0,
          1 if meta.get("needs_req") else 0, 1 if meta.get("needs_ans") else 0,
          meta["ans"][1] if meta.get("ans") else None) for trace, frame, meta, _row in changes],
    )
    # The task row says whether its agent is a stand-in (the service's name); a row
    # created later in this transaction gets it from store/ingest.py fill_otel_tasks.
    # A task is only ever made a stand-in where its trace has a framing row (here, or
    # fill_otel_tasks), so a trace without a stored one (``row`` None: most of a batch's)
    # has no task row to set back to 0: one statement fewer a batch, usually two.
    for stand_in in (0, 1):
        ids = [task_id(trace) for trace, _frame, meta, row in changes
               if (0 if meta.get("named") else 1) == stand_in and (stand_in or row is not None)]
        if ids:
            conn.execute("UPDATE tasks SET agent_stand_in = ? WHERE task_id IN (SELECT value FROM json_each(?))",
                         (stand_in, json.dumps(ids)))
    changed = {c[0] for c in changes}
    borrowed = []
    for trace in set(best_req) | set(best_ans):
        row = stored.get(trace)
        req, ans = best_req[trace], best_ans[trace]
        if row is not None and ((row[7], row[8]) if row[7] is not None else None) == req \
                and ((row[9], row[10]) if row[9] is not None else None) == ans:
            continue
        if row is None and req is None and ans is None:
            continue  # a row new in this batch (or none): its columns are NULL already
        borrowed.append((*(req or (None, None)), *(ans or (None, None)), trace))
        if row is None or trace in changed:
            continue  # the winner is in this batch and already carries them
        # The stored winner borrows its request or answer: a better one came.
        if row[5] and req != ((row[7], row[8]) if row[7] is not None else None):
            _refill(conn, trace, "task_start", FIRST_SEQ, "request", req[1] if req else "")
            conn.execute("UPDATE tasks SET request = ? WHERE task_id = ?", ((req[1] if req else "")[:500], task_id(trace)))
        if row[6] and ans != ((row[9], row[10]) if row[9] is not None else None):
            _refill(conn, trace, "task_end", LAST_SEQ, "summary", ans[1] if ans else "")
    conn.executemany("UPDATE otlp_tasks SET req_ns = ?, request = ?, ans_ns = ?, answer = ? WHERE trace_id = ?",
                     borrowed)
    new_sessions = []
    if sessions:
        known = {row[0]: (row[1], row[2]) for row in conn.execute(
            "SELECT trace_id, sess_ns, session FROM otlp_sessions WHERE trace_id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(sessions)),))}
        newer = [(trace, *sess) for trace, sess in sessions.items() if trace not in known or known[trace] > sess]
        conn.executemany("INSERT OR REPLACE INTO otlp_sessions (trace_id, sess_ns, session) VALUES (?, ?, ?)", newer)
        new_sessions = [(task_id(trace), session) for trace, _ns, session in newer]
    if costs or new_sessions:
        # Written to the task row before the batch's own upsert, which adds to it. (A row
        # created here takes its senders and stand-in flag with the batch's other task rows,
        # store/ingest.py fill_otel_tasks: every trace with a cost or a session has events in
        # the batch, so its task is among them.)
        conn.executemany(
            """INSERT INTO tasks (task_id, cost_usd) VALUES (?, ?)
               ON CONFLICT(task_id) DO UPDATE SET cost_usd = cost_usd + excluded.cost_usd""",
            [(task_id(trace), cost) for trace, cost in costs.items()],
        )
        conn.executemany(
            """INSERT INTO tasks (task_id, session) VALUES (?, ?)
               ON CONFLICT(task_id) DO UPDATE SET session = excluded.session""", new_sessions)
    return None


def _refill(conn: sqlite3.Connection, trace: str, kind: str, seq: int, field: str, text: str) -> None:
    row = conn.execute("SELECT id, payload FROM events WHERE task_id = ? AND kind = ? AND seq = ?",
                       (task_id(trace), kind, seq)).fetchone()
    if row is None:
        return
    fields = json.loads(row[1])
    fields[field] = text
    _event, payload = encode(fields)
    conn.execute("UPDATE events SET payload = ? WHERE id = ?", (payload, row[0]))


def _demote(conn: sqlite3.Connection, losers: list[tuple[str, tuple, dict]]) -> None:
    """The stored framing spans of these traces ((trace, its otlp_tasks row, the winner's meta))
    lose to better ones: their task_start/task_end become the sub-agent step (a named agent
    under another name) or go. Traces are apart (each touches its own task's rows), so what
    is read is read for all of them at once, and what is written is written by executemany:
    the same as one trace after another, in a few statements instead of a few a trace (a
    Collector's batches split traces, so most batches reframe many)."""
    if not losers:
        return
    framing: dict[str, list[tuple[int, str, str]]] = {}
    for tid, rowid, kind, payload in conn.execute(
        f"""SELECT task_id, id, kind, payload FROM events WHERE task_id IN (SELECT value FROM json_each(?)) AND
            ((kind = 'task_start' AND seq = {FIRST_SEQ}) OR (kind = 'task_end' AND seq = {LAST_SEQ}))
            ORDER BY task_id, seq, id""",  # (a trace's rows in the order its index gives them)
        (json.dumps([task_id(trace) for trace, _row, _winner in losers]),),
    ):
        framing.setdefault(tid, []).append((rowid, kind, payload))
    pairs = _PAIRS
    inner = {(t, sp): got for t, sp, *got in conn.execute(
        f"SELECT trace_id, span_id, req_ns, request, ans_ns, answer FROM otlp_inner WHERE (trace_id, span_id) IN "
        f"{pairs}", (json.dumps([(trace, row[2]) for trace, row, _winner in losers]),))}
    subagents: list[tuple] = []
    plans: list[tuple] = []
    gone_ids: list[tuple[int]] = []
    counts: list[tuple[int, str]] = []
    for trace, row, winner in losers:
        tid = task_id(trace)
        rows = framing.get(tid, [])
        start = next((json.loads(r[2]) for r in rows if r[1] == "task_start"), None)
        end: dict = next((json.loads(r[2]) for r in rows if r[1] == "task_end"), {})
        gone = [r[0] for r in rows]
        if start is not None and row[4] and row[3] != winner.get("agent"):
            # Its own answer (the task's summary may have been another agent's or a model call's).
            own = row[11] or "" if row[6] else end.get("summary", "")
            request = "" if row[5] else start.get("request", "")
            sub = (row[1], start.get("agent", ""), request, end.get("outcome", "success"), own)
            plan = _subagent_plan(tid, *sub)
            if not request or not own:  # it takes its model calls' (``_inner``, run before this)
                got = inner.get((trace, row[2]))
                agg = [None, (got[0], got[1]) if got and got[0] is not None else None,
                       (got[2], got[3]) if got and got[2] is not None else None]
                plan = _filled_plan(tid, *sub, agg)
                subagents.append((trace, row[2], step_seq(row[1]), *sub, plan["summary"]))
            event, payload = encode(plan)
            start_id = next(r[0] for r in rows if r[1] == "task_start")
            plans.append((event.seq, payload, start_id))
            gone.remove(start_id)
        gone_ids.extend((i,) for i in gone)
        # The winner's own task_start/task_end (in this batch) set the row's agent, outcome
        # and times; the loser's reported total must not stand in for the sum of model calls.
        # Its start time goes too (the row keeps the earliest start it is given).
        counts.append((len(gone), tid))
    conn.executemany(
        "INSERT OR REPLACE INTO otlp_subagents (trace_id, span_id, seq, start_ns, agent, request, outcome, "
        "summary, shown) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", subagents)
    conn.executemany("UPDATE events SET kind = 'plan', seq = ?, payload = ? WHERE id = ?", plans)
    conn.executemany("DELETE FROM events WHERE id = ?", gone_ids)
    conn.executemany("UPDATE tasks SET events = events - ?, end_tokens = NULL, started = NULL WHERE task_id = ?",
                     counts)


# -- OTLP/JSON -----------------------------------------------------------------

_MISSING = object()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


def _field(obj: dict, camel: str, snake: str) -> Any:
    # Proto3 JSON accepts both the lowerCamelCase and the original field name.
    value = obj.get(camel, _MISSING)
    if value is _MISSING:
        value = obj.get(snake)
    return value


def _obj(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OtlpError(f"{where}: expected an object, got {_json_type(value)}")
    return value


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpError(f"{where}: expected a list, got {_json_type(value)}")
    return value


def _str(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise OtlpError(f"{where}: expected a string, got {_json_type(value)}")
    return value


def _uint(value: Any, where: str, bits: int = 64) -> int:
    # int64/uint64/fixed64 are strings in OTLP/JSON; plain numbers are accepted too.
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise OtlpError(f"{where}: expected an integer, got {_json_type(value)}")
    try:
        n = int(value)
    except ValueError:
        raise OtlpError(f"{where}: expected an integer, got {str(value)[:40]!r}") from None
    if not 0 <= n < 2**bits:
        raise OtlpError(f"{where}: {n} is out of range")
    return n


def _id(value: Any, nbytes: int, where: str) -> str:
    """An id in hex (the file exporter, OTLP/JSON) or base64 (protobuf's JSON mapping)."""
    text = _str(value, where)
    raw = None
    if len(text) == 2 * nbytes:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None or len(raw) != nbytes:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
    if len(raw) != nbytes:
        raise OtlpError(f"{where}: expected {nbytes} bytes in hex or base64, got {text[:40]!r}")
    if not any(raw):
        raise OtlpError(f"{where}: an all-zero id is invalid")
    return raw.hex()


class Truncated(str):
    """An attribute value cut to MAX_VALUE_BYTES; it ends by saying so, and steps built from it say so too."""

    original_bytes: int


def _check_size(text: str, where: str) -> str:
    # A prompt or a RAG context over 64 KiB is ordinary: keep the span and cut
    # the value (refusing it would lose the whole export request).
    if len(text) > MAX_VALUE_BYTES // 4:
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_VALUE_BYTES:
            head = text.encode("utf-8", "surrogatepass")[:MAX_VALUE_BYTES].decode("utf-8", "ignore")
            cut = Truncated(f"{head}… [truncated by agentdeck: {size} bytes, limit {MAX_VALUE_BYTES}]")
            cut.original_bytes = size
            return cut
    return text


def _any_value(value: Any, where: str, depth: int = 0) -> Any:
    """An AnyValue as a plain Python value."""
    if value is None:
        return None
    v = _obj(value, where)
    if depth > MAX_DEPTH:
        raise OtlpError(f"{where}: nested more than {MAX_DEPTH} levels")
    if (s := _field(v, "stringValue", "string_value")) is not None:
        if not isinstance(s, str):
            raise OtlpError(f"{where}: stringValue must be a string, got {_json_type(s)}")
        return _check_size(s, where)
    if (b := _field(v, "boolValue", "bool_value")) is not None:
        if not isinstance(b, bool):
            raise OtlpError(f"{where}: boolValue must be true or false, got {_json_type(b)}")
        return b
    if (i := _field(v, "intValue", "int_value")) is not None:
        if isinstance(i, bool) or not isinstance(i, (int, str)):
            raise OtlpError(f"{where}: intValue must be an integer, got {_json_type(i)}")
        try:
            n = int(i)
        except ValueError:
            raise OtlpError(f"{where}: intValue must be an integer, got {str(i)[:40]!r}") from None
        if not -(2**63) <= n < 2**63:
            raise OtlpError(f"{where}: intValue {n} is out of the int64 range")
        return n
    if (d := _field(v, "doubleValue", "double_value")) is not None:
        if isinstance(d, bool) or not isinstance(d, (int, float, str)):
            raise OtlpError(f"{where}: doubleValue must be a number, got {_json_type(d)}")
        try:
            return float(d)
        except ValueError:
            raise OtlpError(f"{where}: doubleValue must be a number, got {str(d)[:40]!r}") from None
    if (a := _field(v, "arrayValue", "array_value")) is not None:
        values = _list(_obj(a, where).get("values"), f"{where}.arrayValue.values")
        return [_any_value(x, f"{where}[{n}]", depth + 1) for n, x in enumerate(values)]
    if (kv := _field(v, "kvlistValue", "kvlist_value")) is not None:
        return _attributes(_obj(kv, where).get("values"), where, depth + 1)
    if (by := _field(v, "bytesValue", "bytes_value")) is not None:
        text = _check_size(_str(by, where), where)
        try:
            base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise OtlpError(f"{where}: bytesValue must be base64") from None
        return text
    return None  # an empty AnyValue


_SHORT_TEXT = MAX_VALUE_BYTES // 4  # a str this long cannot exceed MAX_VALUE_BYTES in UTF-8


def _hot_attributes(value: Any) -> dict[str, Any] | None:
    """The hot path of ``_attributes``: string and integer attributes, well formed; else None
    (the checked path then reads them and says what is wrong)."""
    if value is None:
        return {}
    if type(value) is not list:
        return None
    out: dict[str, Any] = {}
    for kv in value:
        if type(kv) is not dict:
            return None
        key, v = kv.get("key"), kv.get("value")
        if type(key) is not str or not 0 < len(key) <= MAX_KEY_CHARS or type(v) is not dict or len(v) != 1:
            return None
        if type(s := v.get("stringValue")) is str and len(s) <= _SHORT_TEXT:
            out[key] = s
        elif type(i := v.get("intValue")) is str and i.isdigit() and len(i) < 19:
            out[key] = int(i)
        else:
            return None
    return out


def _attributes(value: Any, where: str, depth: int = 0) -> dict[str, Any]:
    if type(value) is list and (hot := _hot_attributes(value)) is not None:
        return hot
    out: dict[str, Any] = {}
    for n, kv in enumerate(_list(value, f"{where}.attributes")):
        kv = _obj(kv, f"{where}.attributes[{n}]")
        key = _str(kv.get("key"), f"{where}.attributes[{n}].key")
        if not key or len(key) > MAX_KEY_CHARS:
            raise OtlpError(f"{where}.attributes[{n}]: key must be 1-{MAX_KEY_CHARS} characters")
        out[key] = _any_value(kv.get("value"), f"{where} attribute {key!r}", depth)
    return out


def _status(value: Any, where: str) -> tuple[bool, str]:
    status = _obj(value, where)
    code = status.get("code")
    if isinstance(code, str):
        error = code == "STATUS_CODE_ERROR"
        if code not in ("STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"):
            raise OtlpError(f"{where}.code: unknown status code {code[:40]!r}")
    else:
        error = _uint(code, f"{where}.code", 32) == 2
    return error, _str(status.get("message"), f"{where}.message")


def spans_from_json(doc: Any, rejected: list[BadSpan] | None = None) -> list[Span]:
    """Spans of an ExportTraceServiceRequest decoded from JSON. Unknown fields are
    ignored, as the OTLP specification requires of receivers."""
    if not isinstance(doc, dict):
        raise OtlpError(f"expected a JSON object (an ExportTraceServiceRequest), got {_json_type(doc)}")
    spans: list[Span] = []
    for r, rs in enumerate(_list(_field(doc, "resourceSpans", "resource_spans"), "resourceSpans")):
        where_r = f"resourceSpans[{r}]"
        rs = _obj(rs, where_r)
        resource = _attributes(_obj(rs.get("resource"), f"{where_r}.resource").get("attributes"), f"{where_r}.resource")
        for s, ss in enumerate(_list(_field(rs, "scopeSpans", "scope_spans"), f"{where_r}.scopeSpans")):
            where_s = f"{where_r}.scopeSpans[{s}]"
            ss = _obj(ss, where_s)
            for n, span in enumerate(_list(ss.get("spans"), f"{where_s}.spans")):
                try:
                    where = f"{where_s}.spans[{n}]"
                    spans.append(_json_span(_obj(span, where), where, resource))
                except OtlpError as exc:
                    if rejected is None:
                        raise
                    rejected.append(BadSpan(str(exc), _raw_json(span)))
    return spans


_HEX = frozenset("0123456789abcdef")


def _hex_id(value: Any, nchars: int) -> str | None:
    """The hot path of ``_id``: lowercase hex of the right length, not all zeros (else None: the slow path)."""
    if type(value) is str and len(value) == nchars and _HEX.issuperset(value) and value.strip("0"):
        return value
    return None


def _json_span(span: dict, where: str, resource: dict) -> Span:
    # The hot path: a span as SDKs and the Collector write it (camelCase keys, hex ids,
    # times as digit strings, a status with an integer code); anything else takes the
    # checked path below, which says what is wrong.
    status = span.get("status")
    trace_id, span_id, parent = _hex_id(span.get("traceId"), 32), _hex_id(span.get("spanId"), 16), \
        span.get("parentSpanId")
    start, end, name = span.get("startTimeUnixNano"), span.get("endTimeUnixNano"), span.get("name")
    if (trace_id and span_id and (not parent or _hex_id(parent, 16)) and type(start) is str and start.isdigit()
            and len(start) < 20 and type(end) is str and end.isdigit() and len(end) < 20 and type(name) is str
            and len(name) <= _SHORT_TEXT and ((events := span.get("events")) in (None, [])
                                              or (events := _hot_events(events)) is not None)
            and (status is None or (type(status) is dict and status.keys() <= {"code", "message"}
                                    and type(status.get("code", 0)) is int and 0 <= status.get("code", 0) <= 2
                                    and type(status.get("message", "")) is str
                                    and len(status.get("message", "")) <= _SHORT_TEXT))):
        start_ns, end_ns = int(start), int(end)
        return Span(trace_id, span_id, parent or None, name, start_ns, end_ns or start_ns,
                    status is not None and status.get("code") == 2,
                    "" if status is None else status.get("message", ""),
                    _attributes(span.get("attributes"), where), events or [], resource)
    return _checked_json_span(span, where, resource)


def _hot_events(events: Any) -> list[SpanEvent] | None:
    """Span events as SDKs write them (a name, a time as a digit string, hot-path attributes);
    else None, and the checked path reads the span."""
    if type(events) is not list:
        return None
    out = []
    for e in events:
        if type(e) is not dict:
            return None
        name, time_ns = e.get("name"), e.get("timeUnixNano")
        if type(name) is not str or type(time_ns) is not str or not time_ns.isdigit() or len(time_ns) >= 20:
            return None
        attributes = _hot_attributes(e.get("attributes"))
        if attributes is None:
            return None
        out.append(SpanEvent(name, int(time_ns), attributes))
    return out


def _checked_json_span(span: dict, where: str, resource: dict) -> Span:
    error, message = _status(span.get("status"), f"{where}.status")
    parent = _field(span, "parentSpanId", "parent_span_id")
    events = []
    for n, e in enumerate(_list(span.get("events"), f"{where}.events")):
        e = _obj(e, f"{where}.events[{n}]")
        events.append(SpanEvent(
            _str(e.get("name"), f"{where}.events[{n}].name"),
            _uint(_field(e, "timeUnixNano", "time_unix_nano"), f"{where}.events[{n}].timeUnixNano"),
            _attributes(e.get("attributes"), f"{where}.events[{n}]"),
        ))
    start = _uint(_field(span, "startTimeUnixNano", "start_time_unix_nano"), f"{where}.startTimeUnixNano")
    end = _uint(_field(span, "endTimeUnixNano", "end_time_unix_nano"), f"{where}.endTimeUnixNano")
    return Span(
        trace_id=_id(_field(span, "traceId", "trace_id"), 16, f"{where}.traceId"),
        span_id=_id(_field(span, "spanId", "span_id"), 8, f"{where}.spanId"),
        parent_span_id=_id(parent, 8, f"{where}.parentSpanId") if parent else None,
        name=_check_size(_str(span.get("name"), f"{where}.name"), f"{where}.name"),
        start_ns=start,
        end_ns=end or start,
        error=error,
        status_message=_check_size(message, f"{where}.status.message"),
        attributes=_attributes(span.get("attributes"), where),
        events=events,
        resource=resource,
    )


# -- OTLP/protobuf -------------------------------------------------------------


def spans_from_protobuf(body: bytes, rejected: list[BadSpan] | None = None) -> list[Span]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise OtlpError(f"bad protobuf: {exc or 'cannot parse an ExportTraceServiceRequest'}") from None
    spans: list[Span] = []
    for r, rs in enumerate(request.resource_spans):
        resource = _pb_attributes(rs.resource.attributes, f"resourceSpans[{r}].resource")
        for s, ss in enumerate(rs.scope_spans):
            for n, span in enumerate(ss.spans):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{n}]"
                try:
                    spans.append(_pb_span(span, where, resource))
                except OtlpError as exc:
                    if rejected is None:
                        raise
                    rejected.append(BadSpan(str(exc), _raw_json({
                        "traceId": span.trace_id.hex(), "spanId": span.span_id.hex(), "name": span.name[:200]})))
    return spans


_ZERO_16, _ZERO_8 = bytes(16), bytes(8)  # all-zero ids (invalid): compared whole, not byte by byte with any()


def _pb_span(span, where: str, resource: dict[str, Any]) -> Span:
    # (Where-strings are built only for an error: formatting them for every field of every
    # span cost more than reading the field. Ids and texts are checked inline, the helpers
    # called only for one that fails or is long: 0.146 -> 0.123 s for 12,000 bench spans.)
    trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
    name, status, start = span.name, span.status, span.start_time_unix_nano
    message, events = status.message, span.events
    return Span(  # (positional, in field order: arguments are checked in this order, as before)
        trace_id.hex() if len(trace_id) == 16 and trace_id != _ZERO_16 else _pb_id(trace_id, 16, where, "traceId"),
        span_id.hex() if len(span_id) == 8 and span_id != _ZERO_8 else _pb_id(span_id, 8, where, "spanId"),
        (parent.hex() if len(parent) == 8 and parent != _ZERO_8 else _pb_id(parent, 8, where, "parentSpanId"))
        if parent else None,
        name if len(name) <= _SHORT_TEXT else _check_size(name, where),
        start,
        span.end_time_unix_nano or start,
        status.code == 2,
        message if len(message) <= _SHORT_TEXT else _check_size(message, where),
        _pb_attributes(span.attributes, where),
        [SpanEvent(e.name, e.time_unix_nano, _pb_attributes(e.attributes, f"{where}.events[{k}]"))
         for k, e in enumerate(events)] if events else [],
        resource,
    )


def _pb_id(raw: bytes, nbytes: int, where: str, field: str = "") -> str:
    if len(raw) != nbytes:
        raise OtlpError(f"{where}{'.' + field if field else ''}: expected {nbytes} bytes, got {len(raw)}")
    if not any(raw):
        raise OtlpError(f"{where}{'.' + field if field else ''}: an all-zero id is invalid")
    return raw.hex()


def _pb_attributes(kvs, where: str, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    deep = depth > MAX_DEPTH  # (every value refused there: _pb_value says so)
    for kv in kvs:
        key = kv.key
        if not key or len(key) > MAX_KEY_CHARS:
            raise OtlpError(f"{where}: attribute key must be 1-{MAX_KEY_CHARS} characters")
        value = kv.value
        if not deep:
            # The hot path: a non-empty string is the value set (a oneof holds one), read
            # without asking which (WhichOneof cost as much as reading the string).
            text = value.string_value
            if text:
                out[key] = text if len(text) <= _SHORT_TEXT else _check_size(text, where)
                continue
        which = None if deep else value.WhichOneof("value")
        # The other scalars (the where-string is built only for the rest, which may fail).
        if which == "string_value":
            text = value.string_value
            out[key] = text if len(text) <= _SHORT_TEXT else _check_size(text, where)
        elif which == "int_value":
            out[key] = value.int_value
        elif which == "bool_value":
            out[key] = value.bool_value
        elif which == "double_value":
            out[key] = value.double_value
        else:
            out[key] = _pb_value(value, f"{where} attribute {key!r}", depth)
    return out


def _pb_value(v, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise OtlpError(f"{where}: nested more than {MAX_DEPTH} levels")
    which = v.WhichOneof("value")
    if which == "string_value":
        return _check_size(v.string_value, where)
    if which == "bool_value":
        return v.bool_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "array_value":
        return [_pb_value(x, f"{where}[{n}]", depth + 1) for n, x in enumerate(v.array_value.values)]
    if which == "kvlist_value":
        return _pb_attributes(v.kvlist_value.values, where, depth + 1)
    if which == "bytes_value":
        return _check_size(base64.b64encode(v.bytes_value).decode("ascii"), where)
    return None


# -- spans to events -----------------------------------------------------------
#
# A task is one agent invocation: of all spans of a trace, the one that frames
# the task is the best ranked (a named agent, then a nameless agent or a
# workflow, then any other GenAI step; earliest start, then span id). It
# gets the task_start/task_end pair; other named agents become "sub-agent"
# plan steps of that task; spans that are not GenAI at all make no task and no
# step. Which span wins is decided among the spans of one request or line
# here, and across requests and lines by ``claim`` from the otlp_tasks table,
# so the result does not depend on how spans were grouped or ordered.

RANK_AGENT, RANK_WORKFLOW, RANK_STEP = 0, 1, 2

MODEL_KINDS = {"LLM": "model", "EMBEDDING": "embedding", "TOOL": "tool", "AGENT": "agent", "CHAIN": "workflow",
               "RETRIEVER": "retrieval", "RERANKER": "retrieval", "GUARDRAIL": "guardrail",
               "EVALUATOR": "evaluator", "PROMPT": "genai"}
GENAI_OPERATIONS = {
    "invoke_agent": "agent", "invoke_workflow": "workflow", "execute_tool": "tool", "chat": "model",
    "text_completion": "model", "generate_content": "model", "embeddings": "embedding",
    "retrieval": "retrieval", "retrieve": "retrieval", "plan": "plan", "create_plan": "plan",
    "agent_handoff": "handoff", "create_agent": "genai",
}
LANGFUSE_TYPES = {"agent": "agent", "chain": "workflow", "tool": "tool", "generation": "model",
                  "embedding": "embedding", "retriever": "retrieval", "guardrail": "guardrail",
                  "evaluator": "evaluator"}
TRACELOOP_KINDS = {"agent": "agent", "workflow": "workflow", "tool": "tool"}
STEP_KINDS = frozenset({"model", "embedding", "tool", "retrieval", "guardrail", "evaluator", "plan", "handoff"})
_GENAI_PREFIXES = ("gen_ai.", "llm.", "openinference.", "traceloop.", "langfuse.", "agentdeck.")


def task_id(trace_id: str) -> str:
    return TASK_PREFIX + trace_id


def step_seq(time_ns: int) -> int:
    return 1 + (time_ns // TICK_NS) % _STEP_SEQS


def _ts(time_ns: int) -> datetime:
    return datetime.fromtimestamp(time_ns / 1e9, UTC)  # (positional: no keyword parsing a call)


def span_class(attributes: dict[str, Any]) -> str:
    """What a span is: agent, workflow, model, embedding, tool, retrieval, guardrail, evaluator,
    plan, handoff, genai (GenAI but no step of its own) or other (not GenAI)."""
    op = attributes.get("gen_ai.operation.name")
    if isinstance(op, str) and op in GENAI_OPERATIONS:
        return GENAI_OPERATIONS[op]
    oi = attributes.get("openinference.span.kind")
    if isinstance(oi, str) and oi.upper() in MODEL_KINDS:
        return MODEL_KINDS[oi.upper()]
    lf = attributes.get("langfuse.observation.type")
    if isinstance(lf, str) and lf.lower() in LANGFUSE_TYPES:
        return LANGFUSE_TYPES[lf.lower()]
    tl = attributes.get("traceloop.span.kind")
    if isinstance(tl, str) and tl.lower() in TRACELOOP_KINDS:
        return TRACELOOP_KINDS[tl.lower()]
    if any(k.startswith(_GENAI_PREFIXES) for k in attributes):
        return "genai"
    return "other"


def agent_name(span: Span, kind: str | None = None) -> str | None:
    """The agent's own name, if the span is an agent span that has one (not the span's or service's name)."""
    a = span.attributes
    if (kind or span_class(a)) != "agent":
        return None
    name = _name(a, "agentdeck.agent", "gen_ai.agent.name", "agent.name")
    if name is None and str(a.get("traceloop.span.kind", "")).lower() == "agent":
        name = _name(a, "traceloop.entity.name")
    if name is None and str(a.get("langfuse.observation.type", "")).lower() == "agent":
        name = span.name or None
    return name[:200] if name else None


def _rank(span: Span, kind: str) -> int | None:
    if kind == "agent":
        return RANK_AGENT if agent_name(span, kind) else RANK_WORKFLOW
    if kind == "workflow":
        return RANK_WORKFLOW
    if kind in STEP_KINDS:
        return RANK_STEP
    return None  # not a candidate: no task of its own


def to_events(spans: list[Span], rejected: list[BadSpan] | None = None) -> SpanItems:
    # The best framing span of each trace in this batch (claim settles it across batches).
    best: dict[str, tuple[tuple[int, int, str], Span]] = {}
    kinds: list[str] = []
    items = SpanItems()
    for span in spans:
        kind = span_class(span.attributes)
        kinds.append(kind)
        rank = RANK_STEP if kind in _STEP_RANKED else _rank(span, kind)
        if rank is None:
            continue
        frame = (rank, span.start_ns, span.span_id)
        if span.trace_id not in best or frame < best[span.trace_id][0]:
            best[span.trace_id] = (frame, span)
    fallback = _fallbacks(spans, kinds, best)
    # Whether anything here passes a request or an answer up (a link, or a model call with messages: a
    # superset of _passed_up's): else _prefill has nothing to do, and its pass over the items is spared.
    passing = False
    for span, kind in zip(spans, kinds):
        if kind == "other" and not span.events:
            items.ignored += 1
            continue
        winner = best.get(span.trace_id)
        try:
            items.extend(span_events(span, kind, winner[1] if winner else None, fallback.get((span.trace_id, span.span_id))))
            if span.parent_span_id and kind in _PASSING_KINDS and not agent_name(span, kind):
                # The way up from a model call to its agent (``_inner``), whatever batch it comes in.
                items.append(SpanItem(None, "", (span.trace_id, span.span_id, "link"), {"link": span.parent_span_id}))
                passing = True
            elif kind == "model" and not passing and not _MESSAGE_KEYS.isdisjoint(span.attributes):
                passing = True
        # (RecursionError: a structured value nested deeper than the JSON decoder's stack costs only its span)
        except (OtlpError, ValidationError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            reason = f"span {span.span_id} ({span.name[:60]!r}): {_reason(exc)}"
            if rejected is None:
                raise OtlpError(reason) from None
            rejected.append(BadSpan(reason, _raw_json(
                {"traceId": span.trace_id, "spanId": span.span_id, "name": span.name[:200]})))
    if passing:
        _prefill(items)
    return items


def _fallbacks(spans: list[Span], kinds: list[str], best: dict) -> dict[tuple[str, str], tuple]:
    """For a framing agent or workflow span that logs no request (OpenInference agents, OpenLLMetry
    workflows): the first model call's user message and the last model call's answer, as
    ``((start_ns, text) | None, (end_ns, text) | None)`` -- among this batch's spans; ``claim``
    settles them over every batch (columns req_ns/ans_ns of otlp_tasks). Keyed by (trace, span): span
    ids are unique within a trace only (keyed by span, two traces' framing spans with one id
    took whichever trace's came last in a set's order)."""
    out: dict[tuple[str, str], tuple] = {}
    wanting = {trace for trace, (_frame, winner) in best.items()
               if not winner.attributes.get("agentdeck.request") and not content.first_user_text(winner.attributes)}
    if not wanting:
        return out
    # One pass over the batch, not one per trace; only model calls with messages (a trace
    # without any gets no entry: ``_framing`` reads a missing one as (None, None)).
    models: dict[str, list[Span]] = {}
    for s, k in zip(spans, kinds):
        if k == "model" and s.trace_id in wanting and not _MESSAGE_KEYS.isdisjoint(s.attributes):
            models.setdefault(s.trace_id, []).append(s)
    for trace, calls in models.items():
        asked = [(s.start_ns, t) for s in calls if not _INPUT_KEYS.isdisjoint(s.attributes)
                 and (t := _text(content.short(content.first_user_text(s.attributes))))]
        said = [(s.end_ns, t) for s in calls if not _OUTPUT_KEYS.isdisjoint(s.attributes)
                and (t := _text(content.short(content.answer_text(s.attributes), 4000)))]
        out[trace, best[trace][1].span_id] = (min(asked) if asked else None, max(said) if said else None)
    return out


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        from agentdeck.store.ingest import describe_error

        return describe_error(exc)
    return str(exc)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else ("" if value is None else json.dumps(value))
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "\u2026"


def _first(attributes: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return value
    return None


def _name(attributes: dict[str, Any], *keys: str) -> str | None:
    for key in keys:  # (_first's loop, inlined: a name is looked up several times a span)
        value = attributes.get(key)
        if value is not None and value != "":
            return str(value)[:200]
    return None


def _count(attributes: dict[str, Any], *keys: str) -> int:
    for key in keys:  # (_first's loop, inlined)
        value = attributes.get(key)
        if value is not None and value != "":
            break
    else:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise OtlpError(f"{keys[0]}: expected a number")
    try:
        return max(0, int(float(value)))
    except ValueError:
        raise OtlpError(f"{keys[0]}: expected a number, got {str(value)[:40]!r}") from None
    except OverflowError:  # infinity (JSON 1e400)
        raise OtlpError(f"{keys[0]}: {str(value)[:40]} is not a finite number") from None


def _number(attributes: dict[str, Any], *keys: str) -> float:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and 0 <= value < float("inf"):
            return float(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                continue
            if number >= 0 and number == number and number != float("inf"):
                return number
    return 0.0


def _decoded(value: Any) -> Any:
    """Attribute values holding structures arrive as JSON strings (OTel SDKs only take scalars and lists)."""
    # Only text that can start a JSON value is tried: plain text (a tool's answer, a name)
    # would cost a raised and caught ValueError each.
    # (The first character decides unless it is whitespace: no copy of a long value to strip it.)
    if isinstance(value, str) and ((first := value[:1]) in _JSON_STARTS
                                   or (first.isspace() and value.lstrip()[:1] in _JSON_STARTS)):
        try:
            return _json_decode(value) if first.isspace() else _json_value(value)
        except ValueError:
            return value
    return value


def _json_value(text: str) -> Any:
    """``_json_decode(text)`` for a text that starts with its value (no whitespace first): the C
    scanner called directly, without the decoder's Python wrapper and its two regex matches."""
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        raise ValueError("Expecting value") from None
    if end != len(text) and text[end:].strip(" \t\n\r"):  # (the whitespace JSON allows after a value)
        raise ValueError("Extra data")
    return value


_JSON_STARTS = frozenset('{["-0123456789tfnNI')  # (NaN, Infinity: json.loads takes them too)
# json.loads(text) for a str is this decoder's decode, after argument checks that cannot fail here
# (a leading byte-order mark, which json.loads refuses, is not in _JSON_STARTS).
_decoder = json.JSONDecoder()
_json_decode = _decoder.decode
_scan_once = _decoder.scan_once  # type: ignore[attr-defined]  # (the C scanner; it clears its memo after each call)


def _exception(span: Span) -> tuple[str, str]:
    for e in span.events:
        if e.name == "exception":
            return str(e.attributes.get("exception.type") or ""), str(e.attributes.get("exception.message") or "")
    return "", ""


def failure_text(span: Span) -> str:
    """Why a span failed, as one line: error type and message."""
    error_type = _name(span.attributes, "error.type") or ""
    exc_type, exc_message = _exception(span)
    error_type = error_type or exc_type
    message = content.first_line_error(span.status_message or exc_message)
    short_type = error_type.rsplit(".", 1)[-1]
    if short_type and message and not message.startswith(short_type):
        return f"{short_type}: {message}"
    return message or short_type


TOKENS_IN = ("gen_ai.usage.input_tokens", "llm.token_count.prompt", "gen_ai.usage.prompt_tokens")
TOKENS_OUT = ("gen_ai.usage.output_tokens", "llm.token_count.completion", "gen_ai.usage.completion_tokens")
CACHE_READ = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
              "llm.token_count.prompt_details.cache_read", "gen_ai.usage.details.cache_read_tokens")
CACHE_WRITE = ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens",
               "llm.token_count.prompt_details.cache_write")
COST = ("agentdeck.cost_usd", "llm.cost.total", "gen_ai.usage.cost", "operation.cost", "langfuse.observation.cost_details.total")
SESSION = ("gen_ai.conversation.id", "session.id", "langfuse.session.id", "langfuse.trace.session_id",
           "traceloop.association.properties.session_id")
USER = ("user.id", "enduser.id", "langfuse.user.id", "langfuse.trace.user_id", "traceloop.association.properties.user_id")
# Most spans have none of these: one set operation answers for a whole list of lookups.
_SESSION_KEYS = frozenset(SESSION)
_USER_KEYS = frozenset(USER)
_INPUT_KEYS, _OUTPUT_KEYS = content.INPUT_KEYS, content.OUTPUT_KEYS
_MESSAGE_KEYS = _INPUT_KEYS | _OUTPUT_KEYS  # a model call with messages: one of these is set
_COST_KEYS = frozenset((*COST, "langfuse.observation.cost_details", "llm.cost.prompt", "llm.cost.completion"))
_CACHE_KEYS = frozenset((*CACHE_READ, *CACHE_WRITE))


def _step_meta(span: Span, model: bool, seq: int, summary: Any, said: str, summary_text: str, cost: float,
               session: Any) -> dict[str, Any]:
    """A step's meta (the hot path and the reference build it alike): a model call's seq, request and answer, its
    parent; any step's cost and session."""
    meta: dict[str, Any] = {}
    if model:
        a = span.attributes
        # Its messages may come as log records (store/otlp_logs.py): the step's seq, and
        # while the summary is the span's name, how much of it the answer replaces.
        bare = summary is span.name and not said
        meta["step"] = (seq, len(summary_text) if bare else None)
        if not _INPUT_KEYS.isdisjoint(a) and (asked := _text(content.short(content.first_user_text(a)))):
            meta["req"] = (span.start_ns, asked)
        if said and (answer := _text(content.short(said, 4000))):
            meta["ans"] = (span.end_ns, answer)
        if span.parent_span_id:
            meta["parent"] = span.parent_span_id
    if cost:
        meta["cost"] = cost
    if session:
        meta["session"] = session
    return meta


def _langfuse_cost(a: dict[str, Any]) -> float:
    details = _decoded(a.get("langfuse.observation.cost_details"))
    if isinstance(details, dict):
        total = details.get("total")
        if isinstance(total, (int, float)) and not isinstance(total, bool) and total >= 0:
            return float(total)
        return float(sum(v for v in details.values() if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0))
    return 0.0


def _langfuse_usage(a: dict[str, Any], *keys: str) -> int:
    usage = _decoded(a.get("langfuse.observation.usage_details"))
    if isinstance(usage, dict):
        for key in keys:
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
    return 0


def span_cost(a: dict[str, Any]) -> float:
    if _COST_KEYS.isdisjoint(a):
        return 0.0
    # OpenInference may give only the parts (llm.cost.prompt / llm.cost.completion).
    return _number(a, *COST) or _langfuse_cost(a) or (_number(a, "llm.cost.prompt") + _number(a, "llm.cost.completion"))


def _truncated_note(span: Span) -> str:
    if Truncated not in map(type, span.attributes.values()):
        return ""
    cut = sorted(k for k, v in span.attributes.items() if isinstance(v, Truncated))
    return f" [truncated over {MAX_VALUE_BYTES // 1024} KiB: {', '.join(cut)[:300]}]" if cut else ""


def _usage_note(a: dict[str, Any], cost: float) -> str:
    if not cost and _CACHE_KEYS.isdisjoint(a):
        return ""
    notes = []
    if cached := _count(a, *CACHE_READ):
        notes.append(f"cache read {cached}")
    if written := _count(a, *CACHE_WRITE):
        notes.append(f"cache write {written}")
    if cost:
        notes.append(f"${cost:.6f}".rstrip("0").rstrip("."))
    return f" ({', '.join(notes)})" if notes else ""


def _framing(span: Span, kind: str, rank: int | None, winner: Span | None, fallback: tuple | None, tid: str,
             failure: str, latency_ms: float, note: str, session: tuple | None) -> tuple | None:
    """What the span contributes to its task's framing, for both mapping paths: nothing (None);
    a named agent inside another span's task: ``(plan fields, meta)``, its sub-agent step; or, the
    span framing its task (``winner`` None or itself): ``(start, end, start meta, end meta)``, the
    task_start and task_end fields without their envelope (v, ts, task_id, seq)."""
    if rank is None or not (winner is None or winner is span or rank == RANK_AGENT):
        return None
    a = span.attributes
    start_ns, end_ns = span.start_ns, span.end_ns
    winner = winner or span
    start = _task_start(span, kind)
    end = _task_end(span, kind, rank, failure, latency_ms, note)
    name = start["agent"] if rank == RANK_AGENT else None
    plan = _subagent_plan(tid, start_ns, start["agent"], start["request"], end["outcome"], end["summary"]) \
        if name else None
    # A sub-agent step that lacks its request or answer takes its model calls' (``_inner``).
    sub = [start_ns, start["agent"], start["request"], end["outcome"], end["summary"]] \
        if name and (not start["request"] or not end["summary"]) else None
    # A named agent's own answer competes, by end time, for the task's answer: after a
    # handoff the last agent answers (not the first); a sub-agent called from a tool ends
    # before its caller, whose answer stays the task's. A failure or an agentdeck.summary
    # is the task's own and stands.
    fixed = bool(failure or a.get("agentdeck.summary"))
    own_ans = (end_ns, end["summary"]) if name and end["summary"] and not fixed else None
    if winner is span:
        needs_req, needs_ans = not start["request"], not end["summary"] or own_ans is not None
        req, ans = fallback or (None, None)
        if own_ans is not None and (ans is None or own_ans > tuple(ans)):
            ans = own_ans
        if needs_req and req:
            start["request"] = req[1]
        if needs_ans and ans:
            end["summary"] = ans[1]
        common = {"frame": (rank, start_ns, span.span_id), "agent": start["agent"], "named": bool(name),
                  "needs_req": needs_req, "needs_ans": needs_ans}
        # (alt: the plan step this span becomes if another span frames the task; encoded only then, by claim)
        return (start, end, {**common, "alt": plan, "alt_sub": sub, "session": session,
                             "used": req if needs_req else None, "ans": own_ans},
                {**common, "alt": None, "used": ans if needs_ans else None, "ans": own_ans})
    if name and name != agent_name(winner):
        return plan, {"session": session, "ans": own_ans, "sub": sub,
                      "shown": plan["summary"] if plan and sub else None}  # type: ignore[index]
    return None


def _checked_span_events(span: Span, kind: str | None = None, winner: Span | None = None,
                         fallback: tuple | None = None) -> list[SpanItem]:
    """``span_events`` the plain way: every event's fields validated by its pydantic model.

    The reference the hot path (``span_events``) must agree with, item for item
    (tests/test_otlp_fast_mapping.py), and the path of the span classes it leaves
    alone (guardrail, plan, handoff, embedding, evaluator: rare).
    """
    a = span.attributes
    for key in a:
        if key[:10] == "agentdeck." and key not in SPAN_ATTRIBUTES:
            unknown = sorted(k for k in a if k[:10] == "agentdeck." and k not in SPAN_ATTRIBUTES)
            raise OtlpError(f"unknown attribute {unknown[0]!r} (see docs/otel.md)")
    kind = kind or span_class(a)
    start_ns, end_ns, error = span.start_ns, span.end_ns, span.error
    tid = TASK_PREFIX + span.trace_id
    made: list[tuple[str, dict[str, Any], dict | None]] = []  # (part, event fields, meta)
    latency_ms = max(0, end_ns - start_ns) / 1e6
    failure = failure_text(span) if error or a.get("error.type") else ""
    note = _truncated_note(span)
    named_session = None if _SESSION_KEYS.isdisjoint(a) else _name(a, *SESSION)
    # the task's session: that of its earliest-starting span that names one (claim settles it)
    session = (start_ns, named_session) if named_session else None

    framed = _framing(span, kind, _rank(span, kind), winner, fallback, tid, failure, latency_ms, note, session)
    if framed is not None:
        if len(framed) == 2:  # a named agent inside another agent's task: one sub-agent plan step
            made.append(("start", *framed))
        else:
            start, end, start_meta, end_meta = framed
            start.update(v=1, ts=_ts(start_ns), task_id=tid, seq=FIRST_SEQ)
            made.append(("start", start, start_meta))
            end.update(v=1, ts=_ts(end_ns), task_id=tid, seq=LAST_SEQ)
            made.append(("end", end, end_meta))
    if kind == "tool" or kind == "retrieval":
        call_id = _name(a, "gen_ai.tool.call.id", "tool_call.id") or span.span_id
        tool = _name(a, "gen_ai.tool.name", "tool.name") or span.name[:200] or kind
        tool_input = _first(a, "gen_ai.tool.call.arguments", "tool_call.function.arguments", "input.value",
                            "gen_ai.retrieval.query.text", "traceloop.entity.input", "langfuse.observation.input",
                            "tool.parameters")
        made.append(("call", {
            "v": 1, "task_id": tid, "seq": step_seq(start_ns),
            "kind": "tool_call", "call_id": call_id, "tool": tool,
            "input": tool_input if tool_input is None else _tool_value(tool_input),
            "ts": _ts(start_ns),  # (last: evaluated after the fields, as before, so the same error wins)
        }, {"session": session} if session else None))
        output = _first(a, "gen_ai.tool.call.result", "output.value", "traceloop.entity.output",
                        "langfuse.observation.output")
        if output is None and kind == "retrieval":
            output = _documents(a)
        if failure:
            output = failure if output is None else {"error": failure, "output": _decoded(output)}
        elif output is not None:
            output = _tool_value(output)
        if note:
            output = {"output": output, "note": note.strip()}
        made.append(("result", {
            "v": 1, "task_id": tid, "seq": step_seq(end_ns),
            "kind": "tool_result", "call_id": call_id, "tool": tool, "output": output,
            "status": a.get("agentdeck.status") or ("error" if error else "ok"),
            "latency_ms": latency_ms, "retry": _count(a, "agentdeck.retry") if "agentdeck.retry" in a else 0,
            "ts": _ts(end_ns),
        }, None))
    elif kind == "model" or kind == "embedding" or kind == "evaluator":
        if kind == "model":
            said = "" if _OUTPUT_KEYS.isdisjoint(a) else content.answer_text(a)
        elif kind == "embedding":
            said = f"embeddings{' of ' + str(_count(a, *TOKENS_IN)) + ' tokens' if _count(a, *TOKENS_IN) else ''}"
        else:
            raw = _first(a, "output.value", "langfuse.observation.output", "gen_ai.evaluation.score.value")
            said = f"evaluation {span.name}: " + (content.answer_text(a) or (str(raw) if raw is not None else ""))
        summary = _first(a, "agentdeck.summary") or failure or said or span.name
        cost = span_cost(a)
        summary_text = content.short(str(summary))
        seq = step_seq(start_ns)
        meta = _step_meta(span, kind == "model", seq, summary, said, summary_text, cost, session)
        made.append(("step", {
            "v": 1, "task_id": tid, "seq": seq,
            "kind": "reasoning",
            "model": _name(a, "gen_ai.response.model", "gen_ai.request.model", "llm.model_name",
                           "langfuse.observation.model.name"),
            "summary": _text(summary_text + _usage_note(a, cost) + note),
            "tokens_in": _count(a, *TOKENS_IN) or (_langfuse_usage(a, "input", "prompt_tokens", "input_tokens")
                                                   if "langfuse.observation.usage_details" in a else 0),
            "tokens_out": _count(a, *TOKENS_OUT) or (_langfuse_usage(a, "output", "completion_tokens", "output_tokens")
                                                     if "langfuse.observation.usage_details" in a else 0),
            "status": "error" if error else "ok",
            "ts": _ts(start_ns),
        }, meta or None))
    elif kind == "guardrail":
        made.append(("step", {
            "v": 1, "task_id": tid, "seq": step_seq(start_ns),
            "kind": "policy_check",
            "policy_id": _name(a, "agentdeck.policy_id") or span.name[:200] or "guardrail",
            "policy_version": _name(a, "agentdeck.policy_version") or "unversioned",
            "verdict": a.get("agentdeck.verdict") or ("deny" if error else "allow"),
            "reason": _text(_first(a, "agentdeck.reason") or failure or _first(a, "output.value") or ""),
            "subject": _name(a, "agentdeck.subject"),
            "ts": _ts(start_ns),
        }, None))
    elif kind == "plan":
        made.append(("step", {
            "v": 1, "task_id": tid, "seq": step_seq(start_ns),
            "kind": "plan", "summary": _text(content.short(content.answer_text(a) or failure or span.name) + note),
            "ts": _ts(start_ns),
        }, None))
    elif kind == "handoff":
        source = _name(a, "gen_ai.handoff.from_agent") or "?"
        target = _name(a, "gen_ai.handoff.to_agent") or "?"
        made.append(("step", {"v": 1, "task_id": tid, "seq": step_seq(start_ns),
                              "kind": "plan", "summary": f"handoff {source} → {target}", "ts": _ts(start_ns)}, None))

    if span.events:
        _event_steps(span, tid, made)
    trace, span_id = span.trace_id, span.span_id
    out = []
    for part, fields, part_meta in made:
        event = _validate(fields)
        to_json = _TO_JSON.get(event.__class__)
        if to_json is None:
            to_json = _TO_JSON[event.__class__] = event.__pydantic_serializer__.to_json
        item = _new_tuple(SpanItem, (event, to_json(event, exclude_none=True).decode()))
        item.key, item.meta, item.source = (trace, span_id, part), part_meta, None
        out.append(item)
    return out


_new_tuple = tuple.__new__  # a SpanItem without the Python-level __new__ (one call less an event)


# -- the hot path ----------------------------------------------------------------
#
# Validating the events built above told nothing new: their fields come from
# helpers that already bound every identifier to 1-200 characters, every text to
# MAX_TEXT and every number to its type (measured 2026-11-30: validate_python 2.3 us
# an event, making the model without it 1.1 us; writing payloads by hand instead of
# pydantic's to_json was tried too and cost more). ``span_events`` builds each event's fields in its model's field order
# (the order pydantic serialises them in), checks the few that untrusted values
# reach unchanged (literals, count and money ranges, the task input's type) and
# makes the model without validating again; a field failing a check, and a text
# pydantic cannot encode (a lone surrogate), send the event through pydantic,
# which refuses it with the same reason as before.

_new_object = object.__new__
_set_attr = object.__setattr__
_compress = itertools.compress
_AGENTDECK = itertools.repeat("agentdeck.")
_COHORTS = frozenset(("baseline", "canary"))
_STAGES = frozenset(("shadow", "assisted", "partial", "bounded"))
_OUTCOMES = frozenset(("success", "failed", "denied", "escalated", "aborted", "timeout"))
_TOOL_STATUSES = frozenset(("ok", "error", "timeout"))
_FAST_KINDS = frozenset(("tool", "retrieval", "model", "agent", "workflow", "genai", "other"))
_STEP_RANKED = frozenset(("tool", "retrieval", "model"))  # (what _rank answers for them without a call)
_TOOL_INPUT = ("gen_ai.tool.call.arguments", "tool_call.function.arguments", "input.value", "gen_ai.retrieval.query.text",
               "traceloop.entity.input", "langfuse.observation.input", "tool.parameters")
_TOOL_OUTPUT = ("gen_ai.tool.call.result", "output.value", "traceloop.entity.output", "langfuse.observation.output")
_TOOL_INPUT_KEYS, _TOOL_OUTPUT_KEYS = frozenset(_TOOL_INPUT), frozenset(_TOOL_OUTPUT)
_MAX_COUNT, _MAX_MONEY = ev.MAX_COUNT, ev.MAX_MONEY
_MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name", "langfuse.observation.model.name")
_fromtimestamp = datetime.fromtimestamp


def _built(cls: type, fields: dict[str, Any]) -> Any:
    """The model ``cls`` holding ``fields`` -- all of its fields, in its order, of its types -- as
    validation would have made it, without validating (model_construct, without its Python loop).
    Its fields_set names every field (validation names those given; nothing reads it, and the
    serialiser and ``==`` ignore it)."""
    event: Any = _new_object(cls)
    _set_attr(event, "__dict__", fields)
    _set_attr(event, "__pydantic_fields_set__", _FIELD_NAMES[cls])
    _set_attr(event, "__pydantic_extra__", None)
    _set_attr(event, "__pydantic_private__", None)
    return event


# Each model's field names: the fields_set of every model built here, one set shared by all the
# events of a class (a copy an event was the set's allocation, its copying and the memory it kept).
# Nothing changes it: the models are frozen, and pydantic copies a model's set before it changes
# the copy's (model_copy).
_FIELD_NAMES: dict[type, set[str]] = {cls: set(cls.model_fields) for cls in (
    ev.AgentVersion, ev.TaskStart, ev.TaskEnd, ev.Plan, ev.Reasoning, ev.ToolCall, ev.ToolResult, ev.Action,
    ev.DownstreamResponse)}
_SERIALIZERS: dict[type, Any] = {cls: cls.__pydantic_serializer__.to_json for cls in (
    ev.TaskStart, ev.TaskEnd, ev.Plan, ev.Reasoning, ev.ToolCall, ev.ToolResult, ev.Action)}


_ACTION_FIELDS = ("v", "ts", "task_id", "seq", "kind", "action_id", "system", "operation", "params", "amount", "before",
                  "after", "response", "status", "justification", "compensation")
_ACTION_GIVEN = frozenset(_ACTION_FIELDS) - {"response", "compensation"}  # (those two: pydantic)


def _action(fields: dict[str, Any]) -> tuple[dict[str, Any], type | None]:
    """An agentdeck.action span event's fields in the Action model's order and checked as it would
    check them, with ev.Action; else as they came, with None (pydantic validates them). Its fields
    come from the span event's attributes: every one is checked here."""
    if not _ACTION_GIVEN.issuperset(fields):
        return fields, None  # a response, a compensation, or a field the model does not have
    v, ts, tid, seq = fields["v"], fields["ts"], fields["task_id"], fields["seq"]  # (attributes may name them)
    action_id, system, operation = fields.get("action_id"), fields.get("system"), fields.get("operation")
    params, amount = fields.get("params", _MISSING), fields.get("amount")
    status, justification = fields.get("status", "ok"), fields.get("justification", "")
    if not (type(v) is int and v == 1 and type(ts) is datetime and ts.tzinfo is UTC
            and type(tid) is str and 0 < len(tid) <= 200 and type(seq) is int and 0 <= seq < 10_000_000
            and type(action_id) is str and 0 < len(action_id) <= 200 and type(system) is str
            and 0 < len(system) <= 200 and type(operation) is str and 0 < len(operation) <= 200
            and (params is _MISSING or type(params) is dict) and (amount is None or type(amount) is float
                                                                   and amount - amount == 0)
            and type(status) is str and status in _ACTION_STATUSES
            and type(justification) is str and len(justification) <= MAX_TEXT):
        return fields, None
    return {"v": 1, "ts": ts, "task_id": tid, "seq": seq, "kind": "action", "action_id": action_id, "system": system,
            "operation": operation, "params": {} if params is _MISSING else dict(params), "amount": amount,  # type: ignore[call-overload]
            "before": fields.get("before"), "after": fields.get("after"),
            "response": _NO_RESPONSE, "status": status,
            "justification": justification, "compensation": None}, ev.Action


_ACTION_STATUSES = frozenset(("ok", "failed"))
# An action's response when its span event gives none: what validation makes of the default, shared
# (the models are frozen: no event can change it).
_NO_RESPONSE = _built(ev.DownstreamResponse, {"status": None, "body": None})


def span_events(span: Span, kind: str | None = None, winner: Span | None = None,
                fallback: tuple | None = None) -> list[SpanItem]:
    """The native events one span stands for, each keyed by its span part.

    ``winner`` is the span that frames this span's task among the spans known
    so far (None: this span's own task, if it may frame one).

    The hot loop of OTLP ingestion (every span of every request and line): the
    events of tool calls, model calls and framing spans are built here without
    pydantic validating them again (see above); the other classes go the
    checked way.
    """
    a = span.attributes
    kind = kind or span_class(a)
    if kind not in _FAST_KINDS:
        return _checked_span_events(span, kind, winner, fallback)
    for key in _compress(a, map(str.startswith, a, _AGENTDECK)):  # (its agentdeck.* keys, picked out in C)
        if key not in SPAN_ATTRIBUTES:
            unknown = sorted(k for k in a if k[:10] == "agentdeck." and k not in SPAN_ATTRIBUTES)
            raise OtlpError(f"unknown attribute {unknown[0]!r} (see docs/otel.md)")
    start_ns, end_ns, error = span.start_ns, span.end_ns, span.error
    tid = TASK_PREFIX + span.trace_id
    # (part, fields, meta, model): fields in the model's order and checked when model is
    # set; else as _checked_span_events builds them, for pydantic to validate.
    made: list[tuple[str, dict[str, Any], dict | None, type | None]] = []
    latency_ms = max(0, end_ns - start_ns) / 1e6
    failure = failure_text(span) if error or a.get("error.type") else ""
    note = _truncated_note(span) if Truncated in map(type, a.values()) else ""
    named_session = None if _SESSION_KEYS.isdisjoint(a) else _name(a, *SESSION)
    session = (start_ns, named_session) if named_session else None

    rank = RANK_STEP if kind in _STEP_RANKED else _rank(span, kind)
    # (_framing's first test, here: a step of a task another span frames, most spans, skips the call)
    framed = _framing(span, kind, rank, winner, fallback, tid, failure, latency_ms, note, session) \
        if rank is not None and (winner is None or winner is span or rank == RANK_AGENT) else None
    if framed is not None:
        if len(framed) == 2:  # a named agent inside another agent's task: one sub-agent plan step
            plan, plan_meta = framed
            made.append(("start", {**plan, "steps": []}, plan_meta, ev.Plan))
        else:
            start, end, start_meta, end_meta = framed
            ts = _fromtimestamp(start_ns / 1e9, UTC)
            task_input = start["input"]
            cohort, stage = start["cohort"], start["stage"]  # (any attribute value: a list is unhashable)
            if type(cohort) is str and cohort in _COHORTS and type(stage) is str and stage in _STAGES \
                    and type(task_input) is dict:
                made.append(("start", {
                    "v": 1, "ts": ts, "task_id": tid, "seq": FIRST_SEQ, "kind": "task_start",
                    "request_id": start["request_id"], "agent": start["agent"],
                    "agent_version": _built(ev.AgentVersion, start["agent_version"]), "cohort": start["cohort"],
                    "stage": start["stage"], "request": start["request"], "input": dict(task_input),
                }, start_meta, ev.TaskStart))
            else:
                start.update(v=1, ts=ts, task_id=tid, seq=FIRST_SEQ)
                made.append(("start", start, start_meta, None))
            ts = _fromtimestamp(end_ns / 1e9, UTC)
            outcome = end["outcome"]
            if (type(outcome) is str and outcome in _OUTCOMES and end["tokens_in"] <= _MAX_COUNT
                    and end["tokens_out"] <= _MAX_COUNT and end["cost_usd"] <= _MAX_MONEY):
                made.append(("end", {
                    "v": 1, "ts": ts, "task_id": tid, "seq": LAST_SEQ, "kind": "task_end",
                    "outcome": end["outcome"], "tokens_in": end["tokens_in"], "tokens_out": end["tokens_out"],
                    "cost_usd": end["cost_usd"], "latency_ms": latency_ms, "summary": end["summary"],
                }, end_meta, ev.TaskEnd))
            else:
                end.update(v=1, ts=ts, task_id=tid, seq=LAST_SEQ)
                made.append(("end", end, end_meta, None))
    if kind == "tool" or kind == "retrieval":
        # (_name and _first inlined for the key SDKs set, the others looked up only when it is not there)
        value = a.get("gen_ai.tool.call.id")
        call_id = str(value)[:200] if value is not None and value != "" else \
            _name(a, "tool_call.id") or span.span_id
        value = a.get("gen_ai.tool.name")
        tool = str(value)[:200] if value is not None and value != "" else \
            _name(a, "tool.name") or span.name[:200] or kind
        tool_input = None if _TOOL_INPUT_KEYS.isdisjoint(a) else _first(a, *_TOOL_INPUT)
        made.append(("call", {
            "v": 1, "ts": _fromtimestamp(start_ns / 1e9, UTC), "task_id": tid,
            "seq": 1 + (start_ns // TICK_NS) % _STEP_SEQS, "kind": "tool_call", "call_id": call_id, "tool": tool,
            "input": tool_input if tool_input is None else _tool_value(tool_input),
        }, {"session": session} if session else None, ev.ToolCall))
        output = None if _TOOL_OUTPUT_KEYS.isdisjoint(a) else _first(a, *_TOOL_OUTPUT)
        if output is None and kind == "retrieval":
            output = _documents(a)
        if failure:
            output = failure if output is None else {"error": failure, "output": _decoded(output)}
        elif output is not None:
            output = _tool_value(output)
        if note:
            output = {"output": output, "note": note.strip()}
        status = a.get("agentdeck.status") or ("error" if error else "ok")
        retry = _count(a, "agentdeck.retry") if "agentdeck.retry" in a else 0
        made.append(("result", {
            "v": 1, "ts": _fromtimestamp(end_ns / 1e9, UTC), "task_id": tid,
            "seq": 1 + (end_ns // TICK_NS) % _STEP_SEQS, "kind": "tool_result", "call_id": call_id, "tool": tool,
            "output": output, "status": status, "latency_ms": latency_ms, "retry": retry,
        }, None, ev.ToolResult if type(status) is str and status in _TOOL_STATUSES and retry <= _MAX_COUNT else None))
    elif kind == "model":
        said = "" if _OUTPUT_KEYS.isdisjoint(a) else content.answer_text(a)
        summary = _first(a, "agentdeck.summary") or failure or said or span.name
        cost = span_cost(a)
        summary_text = content.short(str(summary))
        seq = 1 + (start_ns // TICK_NS) % _STEP_SEQS
        meta = _step_meta(span, True, seq, summary, said, summary_text, cost, session)
        text = _text(summary_text + _usage_note(a, cost) + note)
        value = a.get("gen_ai.usage.input_tokens")  # (_count's common case inlined: a plain int)
        tokens_in = (value if type(value) is int and 0 <= value <= _MAX_COUNT else _count(a, *TOKENS_IN)) or (_langfuse_usage(a, "input", "prompt_tokens", "input_tokens")
                                              if "langfuse.observation.usage_details" in a else 0)
        value = a.get("gen_ai.usage.output_tokens")
        tokens_out = (value if type(value) is int and 0 <= value <= _MAX_COUNT else _count(a, *TOKENS_OUT)) or (_langfuse_usage(a, "output", "completion_tokens", "output_tokens")
                                                if "langfuse.observation.usage_details" in a else 0)
        made.append(("step", {
            "v": 1, "ts": _fromtimestamp(start_ns / 1e9, UTC), "task_id": tid, "seq": seq, "kind": "reasoning",
            "model": _name(a, *_MODEL_KEYS),
            "summary": text, "tokens_in": tokens_in, "tokens_out": tokens_out, "status": "error" if error else "ok",
        }, meta or None, ev.Reasoning if tokens_in <= _MAX_COUNT and tokens_out <= _MAX_COUNT else None))

    if span.events:
        _fast_event_steps(span, tid, made)
    trace, span_id = span.trace_id, span.span_id
    out = []
    for part, fields, part_meta, cls in made:
        payload = None
        if cls is not None:
            event: Any = _new_object(cls)  # (_built, inlined: the hot loop's one call an event)
            _set_attr(event, "__dict__", fields)
            _set_attr(event, "__pydantic_fields_set__", _FIELD_NAMES[cls])
            _set_attr(event, "__pydantic_extra__", None)
            _set_attr(event, "__pydantic_private__", None)
            try:
                payload = _SERIALIZERS[cls](event, exclude_none=True).decode()
            except ValueError:  # (a lone surrogate in a text: pydantic names the field)
                payload = None
                if cls is ev.TaskStart:  # (validated as a dict, as before: an instance would pass as it is)
                    fields = {**fields, "agent_version": fields["agent_version"].__dict__}
        if payload is None:
            event = _validate(fields)
            to_json = _TO_JSON.get(event.__class__)
            if to_json is None:
                to_json = _TO_JSON[event.__class__] = event.__pydantic_serializer__.to_json
            payload = to_json(event, exclude_none=True).decode()
        item = _new_tuple(SpanItem, (event, payload))
        item.key = (trace, span_id, part)
        if part_meta is not None:  # (meta and source default to None: the class's)
            item.meta = part_meta
        out.append(item)
    return out


def _event_steps(span: Span, tid: str, made: list) -> None:
    """The span's agentdeck.<kind> span events, as that native event each."""
    for n, e in enumerate(span.events):
        if e.name.startswith("agentdeck."):  # (exception, log and other events are not steps)
            made.append(_event_step(span, tid, n, e))


def _event_step(span: Span, tid: str, n: int, e: SpanEvent) -> tuple[str, dict[str, Any], None]:
    """One agentdeck.<kind> span event (the ``n``th of its span) as that native event's fields."""
    event_kind = e.name[len("agentdeck."):]
    if event_kind not in EVENT_KINDS:
        raise OtlpError(f"unknown span event {e.name[:60]!r} (see docs/otel.md)")
    fields: dict[str, Any] = {"kind": event_kind}
    for key, value in e.attributes.items():
        if key.startswith("agentdeck."):
            field_name = key[len("agentdeck."):]
            fields[field_name] = _decoded(value) if field_name in STRUCTURED_FIELDS else value
    time_ns = e.time_ns or span.start_ns
    # (The event's own attributes may name an envelope field: theirs win, as they always have.)
    return f"event{n}", {"v": 1, "ts": _ts(time_ns), "task_id": tid, "seq": step_seq(time_ns), **fields}, None


# The attributes of an agentdeck.action span event that the hot path reads itself (SDKs send these).
_ACTION_ATTRIBUTES = frozenset("agentdeck." + f for f in (
    "action_id", "system", "operation", "params", "amount", "before", "after", "status", "justification"))


def _fast_event_steps(span: Span, tid: str, made: list) -> None:
    """``_event_steps`` then ``_action`` for the hot path, in one pass: an agentdeck.action span
    event holding only ``_ACTION_ATTRIBUTES`` becomes its Action fields directly (checked as
    ``_action`` checks them); any other span event, or a check failing, goes the plain way."""
    for n, e in enumerate(span.events):
        name = e.name
        if name[:10] != "agentdeck.":
            continue  # exception, log and other events are not steps
        a = e.attributes
        if name == "agentdeck.action" and _ACTION_ATTRIBUTES.issuperset(a):
            params = a.get("agentdeck.params", _MISSING)
            if params is not _MISSING:
                params = _decoded(params)
            before, after = a.get("agentdeck.before"), a.get("agentdeck.after")
            before, after = _decoded(before), _decoded(after)  # (None stays None)
            action_id, system, operation = a.get("agentdeck.action_id"), a.get("agentdeck.system"), \
                a.get("agentdeck.operation")
            amount = a.get("agentdeck.amount")
            status, justification = a.get("agentdeck.status", "ok"), a.get("agentdeck.justification", "")
            time_ns = e.time_ns or span.start_ns
            ts = _fromtimestamp(time_ns / 1e9, UTC)  # (raises as _ts would, at the same point)
            if (type(action_id) is str and 0 < len(action_id) <= 200 and type(system) is str
                    and 0 < len(system) <= 200 and type(operation) is str and 0 < len(operation) <= 200
                    and (params is _MISSING or type(params) is dict)
                    and (amount is None or type(amount) is float and amount - amount == 0)
                    and type(status) is str and status in _ACTION_STATUSES
                    and type(justification) is str and len(justification) <= MAX_TEXT):
                made.append((f"event{n}", {
                    "v": 1, "ts": ts, "task_id": tid, "seq": 1 + (time_ns // TICK_NS) % _STEP_SEQS, "kind": "action",
                    "action_id": action_id, "system": system, "operation": operation,
                    "params": {} if params is _MISSING else dict(params),  # type: ignore[call-overload]
                    "amount": amount, "before": before, "after": after, "response": _NO_RESPONSE,
                    "status": status, "justification": justification, "compensation": None}, None, ev.Action))
                continue
        part, fields, meta = _event_step(span, tid, n, e)
        if fields["kind"] == "action":
            fields, cls = _action(fields)
            made.append((part, fields, meta, cls))
        else:
            made.append((part, fields, meta, None))


def _item(fields: dict[str, Any], key: tuple[str, str, str], meta: dict | None = None) -> SpanItem:
    event, payload = encode(fields)
    return SpanItem(event, payload, key, meta)


def encode(fields: dict[str, Any]) -> tuple[Any, str]:
    """An event validated from the fields built here, and its payload. (Building the payload
    by hand and skipping validation was measured: no faster than pydantic's Rust core; on
    2026-11-30, json.dumps plus the models' checks in Python took 13 us an event against 8.)"""
    event = _validate(fields)
    to_json = _TO_JSON.get(event.__class__)
    if to_json is None:
        to_json = _TO_JSON[event.__class__] = event.__pydantic_serializer__.to_json
    return event, to_json(event, exclude_none=True).decode()


# The core validator itself: the TypeAdapter wrapper costs as much again per event.
_validate = ev.event_adapter.validator.validate_python
# Each event class's serializer, looked up once (measured: ~10% of serialising an event
# went to finding it through the instance).
_TO_JSON: dict[type, Any] = {}


def _tool_value(value: Any) -> Any:
    value = _decoded(value)
    # (tool_value unwraps dicts holding one of these keys only; anything else it returns as it is)
    return content.tool_value(value) if isinstance(value, dict) and not _ENVELOPE_KEYS.isdisjoint(value) else value


_ENVELOPE_KEYS = frozenset(("args", "input_str", "output", "kwargs", "type"))


def _documents(a: dict[str, Any]) -> list[str] | None:
    docs = []
    for key, value in a.items():
        if key.startswith("retrieval.documents.") and key.endswith(".document.content"):
            docs.append(str(value)[:500])
    return docs or None


def _subagent_plan(tid: str, start_ns: int, agent: str, request: str, outcome: str, summary: str) -> dict[str, Any]:
    """A named agent invoked inside another agent's task (a sub-agent or a handoff), as one step."""
    result = f"{outcome}: {summary}" if outcome != "success" else summary
    text = f"sub-agent {agent}: {content.short(request, 500)}" + (f" → {content.short(result, 1000)}" if result else "")
    return {"v": 1, "ts": _ts(start_ns), "task_id": tid, "seq": step_seq(start_ns), "kind": "plan", "summary": _text(text)}


_START_KEYS = frozenset(("agentdeck.agent_version", "agentdeck.agent_version.prompt", "agentdeck.agent_version.model",
                         "agentdeck.agent_version.policy", "agentdeck.agent_version.tool_schema", "agentdeck.input"))


def _task_start(span: Span, kind: str) -> dict[str, Any]:
    a = span.attributes
    if _START_KEYS.isdisjoint(a):  # (most spans: the lookups of the agentdeck.* keys below answer None)
        version = {
            "id": _name(a, "gen_ai.agent.version") or _name(span.resource, "service.version") or "unversioned",
            "prompt": None, "model": _name(a, "gen_ai.request.model", "llm.model_name", "model_name"),
            "policy": None, "tool_schema": None,
        }
        given_input = None
    else:
        version = {
            "id": _name(a, "agentdeck.agent_version", "gen_ai.agent.version") or _name(span.resource, "service.version")
            or "unversioned",
            "prompt": _name(a, "agentdeck.agent_version.prompt"),
            "model": _name(a, "agentdeck.agent_version.model", "gen_ai.request.model", "llm.model_name", "model_name"),
            "policy": _name(a, "agentdeck.agent_version.policy"),
            "tool_schema": _name(a, "agentdeck.agent_version.tool_schema"),
        }
        given_input = _first(a, "agentdeck.input")
    if given_input is not None:
        task_input = _decoded(given_input)
    else:
        task_input = {}
        if (value := a.get("gen_ai.agent.id")) is not None:
            task_input["gen_ai.agent.id"] = value
        if (value := a.get("gen_ai.conversation.id")) is not None:
            task_input["gen_ai.conversation.id"] = value
        if not _SESSION_KEYS.isdisjoint(a) and (session := _name(a, *SESSION)):
            task_input["session_id"] = session
        if not _USER_KEYS.isdisjoint(a) and (user := _name(a, *USER)):
            task_input["user_id"] = user
        if "gen_ai.system_instructions" in a and (instructions := content.system_text(a)):
            task_input["instructions"] = content.short(instructions, 1000)
    request = a.get("agentdeck.request") or (not _INPUT_KEYS.isdisjoint(a) and content.first_user_text(a))
    return {
        "kind": "task_start",
        "request_id": _name(a, "agentdeck.request_id", "gen_ai.conversation.id") or span.trace_id,
        "agent": agent_name(span, kind) or _name(span.resource, "service.name") or span.name[:200] or "agent",
        "agent_version": version,
        "cohort": a.get("agentdeck.cohort") or "baseline",
        "stage": a.get("agentdeck.stage") or "bounded",
        "request": _text(str(request)) if request else "",
        "input": task_input,
    }


_END_USAGE_KEYS = frozenset(("gen_ai.usage.input_tokens", "llm.token_count.prompt", "gen_ai.usage.output_tokens",
                             "llm.token_count.completion", "agentdeck.cost_usd"))


def _task_end(span: Span, kind: str, rank: int, failure: str, latency_ms: float, note: str) -> dict[str, Any]:
    a = span.attributes
    answer = content.answer_text(a) if (kind == "agent" or kind == "workflow") and not _OUTPUT_KEYS.isdisjoint(a) else ""
    # (a.get, not _first: in an ``or`` chain an empty value is skipped either way)
    summary = a.get("agentdeck.summary") or failure or answer
    # An agent span's own usage is the task's total; a step framing its own
    # task leaves the total to the sum of the model calls.
    if rank != RANK_STEP and not _END_USAGE_KEYS.isdisjoint(a):
        tokens_in = _count(a, "gen_ai.usage.input_tokens", "llm.token_count.prompt")
        tokens_out = _count(a, "gen_ai.usage.output_tokens", "llm.token_count.completion")
        cost = _number(a, "agentdeck.cost_usd")
    else:
        tokens_in, tokens_out, cost = 0, 0, 0.0
    return {
        "kind": "task_end",
        "outcome": a.get("agentdeck.outcome") or ("failed" if span.error else "success"),
        "tokens_in": tokens_in, "tokens_out": tokens_out, "cost_usd": cost, "latency_ms": latency_ms,
        "summary": _text(content.short(str(summary), 4000) + note) if summary else "",
    }
