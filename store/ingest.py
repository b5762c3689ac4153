"""Turning validated events into store rows, one transaction a batch.

``apply_batch`` is the only writer of events, tasks, escalations and actions
that came from traces. It commits a source's new offset in the same
transaction as the rows read up to it: that is the whole exactly-once
guarantee, so keep it that way.
"""

from __future__ import annotations

import json
import operator
from array import array
from itertools import repeat
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone, UTC
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pydantic import ValidationError
from pydantic_core import TzInfo

from agentdeck.store import events as ev
from agentdeck.store import formats
from agentdeck.store.contract import fact_of_event
from agentdeck.store.reader import MAX_LINE
from agentdeck.store.txn import StoreError, atomic

MAX_REJECT_RAW = 4096
RISK_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def epoch(ts: datetime) -> float:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.timestamp()


# Fixed-offset zones seen so far: id(tzinfo) -> (tzinfo, 1970-01-01 00:00 in it, its offset). pydantic
# gives every "Z" timestamp one shared TzInfo; ``datetime.timestamp()`` on it asks its utcoffset()
# through Python twice (~1 us, a sixth of ``prepare``), while the difference of two datetimes with the
# same tzinfo object is taken without asking. A few entries at most: other offsets (a new TzInfo a
# value) go the usual way.
_ZONES: dict[int, tuple] = {}
_FIXED_ZONES = (timezone, TzInfo)


def fast_epoch(ts: datetime) -> float:
    """``epoch(ts)``, the same float, cheaper for the zones timestamps usually come in."""
    tz = ts.tzinfo
    zone = _ZONES.get(id(tz))
    if zone is not None and zone[0] is tz:
        # Exact: a timedelta is whole microseconds, total_seconds() divides them as timestamp() does.
        return (ts - zone[1] - zone[2]).total_seconds()
    if tz is None:
        return epoch(ts)
    if type(tz) in _FIXED_ZONES and len(_ZONES) < 8:
        _ZONES[id(tz)] = (tz, datetime(1970, 1, 1, tzinfo=tz), tz.utcoffset(None))
    return ts.timestamp()


@dataclass(slots=True)
class Reject:
    offset: int
    error: str
    raw: bytes  # the line, or its first bytes when it was oversized
    length: int | None = None  # the full line's length, when ``raw`` is only its head


@dataclass(slots=True)
class ParsedLine:
    offset: int
    events: list  # list[(Event, payload_json: str)]


@dataclass
class BatchResult:
    events: int = 0
    rejects: int = 0
    tasks: set[str] = field(default_factory=set)
    escalations: list[str] = field(default_factory=list)
    problem: str | None = None  # derived work that could not be done (queued for a retry)


def describe_error(exc: Exception) -> str:
    """A one-line, human-readable reason for a rejected line."""
    if isinstance(exc, ValidationError):
        errs = exc.errors(include_url=False)
        first = errs[0]
        loc = ".".join(str(p) for p in first.get("loc", ())) or "line"
        kind = first.get("type", "")
        if kind == "json_invalid":
            return f"bad JSON: {first.get('msg', '')}"
        if kind == "union_tag_invalid":
            return f"unknown kind: {first.get('input', {}).get('kind') if isinstance(first.get('input'), dict) else ''}".rstrip(": ")
        if kind == "union_tag_not_found":
            return "missing field: kind"
        if loc.endswith(".v") or loc == "v":
            return f"unsupported format version (this agentdeck reads v{ev.FORMAT_VERSION})"
        more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
        return f"{loc}: {first.get('msg', kind)}{more}"
    return f"{type(exc).__name__}: {exc}"


def decode_lines(lines, proto: bool = False) -> tuple[list, list[Reject]]:
    """Validated ``(event, payload)`` pairs and the rejects, for a batch of lines
    (of length-prefixed OTLP protobuf records when ``proto``: store/otlp_files.py)."""
    parsed: list = []
    rejects: list[Reject] = []
    if proto:
        from agentdeck.store import otlp, otlp_files

        for line in lines:
            if line.oversized:
                rejects.append(Reject(line.offset, f"not a length-prefixed OTLP record ({line.oversized} bytes "
                                      "skipped to the end of the file)", line.data, line.oversized))
                continue
            try:
                items = otlp_files.decode_record(line.data)  # traces, logs or metrics
            except Exception as exc:  # any bad record is a reject, never a crash
                rejects.append(Reject(line.offset, describe_error(exc), line.data))
                continue
            parsed.extend(items)
            if getattr(items, "rejected", None):
                rejects.append(Reject(line.offset, otlp.refused(items), line.data))
        return parsed, rejects
    append = parsed.append
    validate = ev.event_adapter.validator.validate_json  # the hot path, without the calls around it
    for line in lines:
        data = line.data
        if line.oversized:
            rejects.append(Reject(line.offset, f"line too long ({line.oversized} bytes, limit {MAX_LINE})",
                                  data, line.oversized))
            continue
        try:
            if data.startswith(b'{"v":'):  # a native event, as agents write them
                append((validate(data), data.decode("utf-8")))
            else:
                _decode_other(data, line.offset, parsed, rejects)
        except Exception as exc:  # any bad line is a reject, never a crash
            rejects.append(Reject(line.offset, describe_error(exc), data))
    return parsed, rejects


def _decode_other(data: bytes, offset: int, parsed: list, rejects: list[Reject]) -> None:
    """A line that is not a native event as agents write them (an OTLP request, a reordered event)."""
    items = formats.decode(data)
    parsed.extend(items)
    if getattr(items, "rejected", None):  # spans refused, the line's others kept
        from agentdeck.store import otlp

        rejects.append(Reject(offset, otlp.refused(items), data))


_BLANK = frozenset(b" \t\r\n\x0b\x0c")


def decode_chunk(chunk: bytes, base: int) -> tuple[list, list[Reject], int]:
    """``decode_lines`` over a chunk of complete lines read from offset ``base``, and the line count.

    The parse processes' hot loop: the same result as ``split_lines`` then
    ``decode_lines``, without a ``Line`` object a line.
    """
    return decode_chunk_native(chunk, base)[:3]


def decode_chunk_native(chunk: bytes, base: int) -> tuple[list, list[Reject], int, bool]:
    """``decode_chunk``, and whether every item is a native event (an ``(event, payload)`` tuple):
    then nobody needs to look at each item again to find spans."""
    native = True
    parsed: list = []
    rejects: list[Reject] = []
    append = parsed.append
    validate = ev.event_adapter.validator.validate_json
    pos = base
    count = 0
    for piece in chunk.split(b"\n")[:-1]:
        start = pos
        pos += len(piece) + 1
        if piece.endswith(b"\r"):
            piece = piece[:-1]
        if not piece or (piece[0] in _BLANK and not piece.strip()):
            continue
        count += 1
        if len(piece) > MAX_LINE:
            rejects.append(Reject(start, f"line too long ({len(piece)} bytes, limit {MAX_LINE})", piece[:4096],
                                  len(piece)))
            continue
        try:
            if piece.startswith(b'{"v":'):
                append((validate(piece), piece.decode("utf-8")))
            else:
                native = False
                _decode_other(piece, start, parsed, rejects)
        except Exception as exc:  # any bad line is a reject, never a crash
            rejects.append(Reject(start, describe_error(exc), piece))
    return parsed, rejects, count, native


def is_store_error(exc: BaseException) -> bool:
    """The store failed (locked, full, read-only, damaged), not a line's data.

    Everything else raised while a batch is prepared or written (an integer
    SQLite cannot hold, a value of a type nobody expected) is the fault of
    some line in it, and that line alone is rejected.
    """
    return isinstance(exc, (StoreError, sqlite3.OperationalError, sqlite3.InternalError)) or \
        type(exc) is sqlite3.DatabaseError


class BadBatch(ValueError):
    """A batch with no lines to tell apart (an OTLP request) holds a value the store cannot take."""


def _task_delta() -> dict:
    return {
        "request_id": None, "agent": None, "version": None, "cohort": None, "stage": None,
        "request": None, "started": None, "ended": None, "last_ts": None, "events": 0,
        "max_seq": -1, "last_kind": None, "last_tool": None, "tool_calls": 0, "tool_errors": 0,
        "retries": 0, "policy_denials": 0, "escalations": 0, "actions": 0, "actions_failed": 0,
        "compensations": 0, "outcome": None, "tokens": 0, "cost_usd": 0.0, "latency_ms": None,
        "reasoning_tokens": 0, "end_tokens": None,
    }


_TASK_COLUMNS = tuple(_task_delta())
_TASK_UPSERT = f"""
INSERT INTO tasks (task_id, updated_at, {", ".join(_TASK_COLUMNS)})
VALUES (?, ?, {", ".join("?" for _ in _TASK_COLUMNS)})
ON CONFLICT(task_id) DO UPDATE SET
    request_id = coalesce(excluded.request_id, request_id),
    agent = coalesce(excluded.agent, agent),
    version = coalesce(excluded.version, version),
    cohort = coalesce(excluded.cohort, cohort),
    stage = coalesce(excluded.stage, stage),
    request = coalesce(excluded.request, request),
    started = coalesce(min(excluded.started, started), excluded.started, started),
    ended = coalesce(excluded.ended, ended),
    last_ts = coalesce(max(excluded.last_ts, last_ts), excluded.last_ts, last_ts),
    updated_at = excluded.updated_at,
    events = events + excluded.events,
    last_kind = CASE WHEN excluded.max_seq > max_seq THEN excluded.last_kind ELSE last_kind END,
    max_seq = max(max_seq, excluded.max_seq),
    last_tool = coalesce(excluded.last_tool, last_tool),
    tool_calls = tool_calls + excluded.tool_calls,
    tool_errors = tool_errors + excluded.tool_errors,
    retries = retries + excluded.retries,
    policy_denials = policy_denials + excluded.policy_denials,
    escalations = escalations + excluded.escalations,
    actions = actions + excluded.actions,
    actions_failed = actions_failed + excluded.actions_failed,
    compensations = compensations + excluded.compensations,
    outcome = coalesce(excluded.outcome, outcome),
    reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens,
    end_tokens = coalesce(excluded.end_tokens, end_tokens),
    tokens = coalesce(excluded.end_tokens, end_tokens, reasoning_tokens + excluded.reasoning_tokens),
    cost_usd = cost_usd + excluded.cost_usd,
    latency_ms = coalesce(excluded.latency_ms, latency_ms)
"""


@dataclass
class Prepared:
    """A batch turned into rows, ready to commit; plain data, so a parse process can build it."""

    # The events' rows by column, all from source ``source_id``; ``event_rows``
    # zips them for executemany. A parse process pickles three lists and two
    # arrays instead of a tuple, a float and an int an event: about 1.3 us an
    # event less to pickle and unpickle, and unpickling is the ingesting
    # process's time, the bottleneck of a bulk import.
    ev_task: list = field(default_factory=list)
    ev_seq: array = field(default_factory=lambda: array("q"))
    ev_kind: list = field(default_factory=list)
    ev_ts: array = field(default_factory=lambda: array("d"))
    ev_payload: list = field(default_factory=list)
    source_id: int | None = None
    task_rows: list = field(default_factory=list)
    esc_rows: list = field(default_factory=list)
    action_rows: list = field(default_factory=list)
    decisions: list = field(default_factory=list)
    compensations: list = field(default_factory=list)
    agent_known: bool = False
    escalations: list = field(default_factory=list)
    tasks: set = field(default_factory=set)
    # What contract checks read, per task: (kinds seen, facts in arrival
    # order, events) -- see store/contract.py ``facts_of_event``. Built here,
    # from the validated events, so checking a new task needs no read back.
    facts: dict = field(default_factory=dict)
    # Checked already (by a parse process, which then sends no facts):
    # task_id -> (agent, violations or None without a contract), against
    # the contract book ``book_token`` names. Only valid for a task whose
    # events all came in this one batch; merge() drops tasks found in two.
    checked: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)  # task_id -> events in this batch, when facts were not kept
    book_token: object = None

    def event_rows(self) -> Iterator[tuple]:
        """(task_id, seq, kind, ts, source_id, payload) per event, made as executemany takes them."""
        return zip(self.ev_task, self.ev_seq, self.ev_kind, self.ev_ts, repeat(self.source_id), self.ev_payload)


def prepare(parsed: Iterable[tuple[Any, str]], source_id: int | None, book: Any = None,
            book_token: object = None) -> Prepared:
    """Rows for a batch of ``(event, payload_json)`` pairs; no I/O.

    The hot loop of a bulk import, in two passes so each costs little an
    event: the first makes the event rows (and, in batch order, the rows of
    the few kinds that have their own table: the first of two rows with one
    id wins whatever the batch boundaries); the second sums each task's
    events into its summary row with local variables (a dict update per
    event and counter cost about 2 us an event more).
    """
    now = time.time()
    p = Prepared(source_id=source_id)
    add_task_id, add_seq, add_kind = p.ev_task.append, p.ev_seq.append, p.ev_kind.append
    add_ts, add_payload = p.ev_ts.append, p.ev_payload.append
    action_rows, decisions, compensations = p.action_rows, p.decisions, p.compensations
    esc_rows: list = []
    groups: dict[str, list] = {}
    for e, payload in parsed:
        if e is None:
            continue  # an OTLP log record's item: no event of its own (store/otlp_logs.py)
        ts = fast_epoch(e.ts)
        task_id, kind = e.task_id, e.kind
        add_task_id(task_id)
        add_seq(e.seq)
        add_kind(kind)
        add_ts(ts)
        add_payload(payload)
        g = groups.get(task_id)
        if g is None:
            groups[task_id] = [e, ts]
        else:
            g.append(e)
            g.append(ts)
        if kind in _ROW_KINDS:
            if kind == "action":
                comp = e.compensation
                action_rows.append((
                    e.action_id, task_id, e.seq, ts, e.system, e.operation, e.amount, e.status,
                    e.justification, comp.model_dump_json() if comp else None,
                    comp.idempotency_key if comp else None,
                ))
            elif kind == "escalation":
                esc_rows.append((
                    e.escalation_id, task_id, e.seq, ts, None, e.risk, RISK_RANK[e.risk], e.reason,
                    fast_epoch(e.deadline), e.policy_id, e.justification,
                    e.proposed_action.model_dump_json(), e.callback_url,
                ))
                p.escalations.append(e.escalation_id)
            elif kind == "decision":
                decisions.append((e.decision, e.decided_by, ts, e.reason, e.escalation_id))
            else:  # compensation
                compensations.append((ts, e.by, e.status, e.action_id))

    checking = book is not None
    if checking:
        # In a parse process: check each task here, on the facts in hand, and
        # send the verdicts instead of the facts (fewer objects to pickle, and
        # the committing process, the bottleneck, does not check).
        from agentdeck.store.contract import check_facts

        p.book_token = book_token
    agents: dict[str, str | None] = {}
    add_task = p.task_rows.append
    fact_kinds = _FACT_KINDS
    for task_id, g in groups.items():
        request_id = agent = version = cohort = stage = request = started = ended = last_ts = None
        last_kind = last_tool = outcome = latency_ms = end_tokens = None
        max_seq = -1
        tool_calls = tool_errors = retries = policy_denials = escalations = actions = 0
        actions_failed = compensations_n = reasoning_tokens = 0
        cost_usd = 0.0
        kinds: set = set()
        facts: list = []
        it = iter(g)
        for e, ts in zip(it, it):
            kind = e.kind
            kinds.add(kind)
            if kind in fact_kinds:
                facts.append(fact_of_event(e))
            if last_ts is None or ts > last_ts:
                last_ts = ts
            seq = e.seq
            if seq > max_seq:
                max_seq = seq
                last_kind = kind
            if kind == "reasoning":
                reasoning_tokens += e.tokens_in + e.tokens_out
            elif kind == "tool_call":
                tool_calls += 1
                last_tool = e.tool
            elif kind == "tool_result":
                last_tool = e.tool
                if e.status != "ok":
                    tool_errors += 1
                if e.retry:
                    retries += 1
            elif kind == "task_start":
                request_id, agent, version = e.request_id, e.agent, e.agent_version.id
                cohort, stage, request, started = e.cohort, e.stage, e.request[:500], ts
            elif kind == "task_end":
                outcome, ended, latency_ms = e.outcome, ts, e.latency_ms
                cost_usd += e.cost_usd
                if e.tokens_in or e.tokens_out:
                    end_tokens = e.tokens_in + e.tokens_out  # the task's total: wins over the sum
            elif kind == "policy_check":
                if e.verdict == "deny":
                    policy_denials += 1
            elif kind == "action":
                actions += 1
                if e.status != "ok":
                    actions_failed += 1
            elif kind == "escalation":
                escalations += 1
            elif kind == "compensation":
                compensations_n += 1
        n = len(g) // 2
        agents[task_id] = agent
        # tokens: the total task_end reports, else the sum over reasoning
        # events (kept apart so batches and late events add up either way).
        # Order: _TASK_COLUMNS.
        add_task((task_id, now, request_id, agent, version, cohort, stage, request, started, ended, last_ts, n,
                  max_seq, last_kind, last_tool, tool_calls, tool_errors, retries, policy_denials, escalations,
                  actions, actions_failed, compensations_n, outcome,
                  end_tokens if end_tokens is not None else reasoning_tokens, cost_usd, latency_ms,
                  reasoning_tokens, end_tokens))
        if checking:
            contract = book.get(agent)
            p.checked[task_id] = (agent, None if contract is None else check_facts(
                contract, kinds, sorted(facts, key=_seq), version=version, stage=stage))
            p.counts[task_id] = n
        else:
            p.facts[task_id] = [kinds, facts, n]
    # An escalation shows its agent: from this batch when its task_start is
    # here too; otherwise commit() fills it from the tasks table.
    p.esc_rows = [(*esc[:4], agents[esc[1]], *esc[5:]) for esc in esc_rows]
    p.agent_known = bool(esc_rows) or any(agent is not None for agent in agents.values())
    p.tasks = set(groups)
    return p


_seq = operator.itemgetter(1)

# Kinds the contract rules look into (the others count only by kind).
_FACT_KINDS = frozenset(("tool_call", "decision", "escalation", "action", "task_end"))
# Kinds with rows of their own (actions, escalations, decisions, compensations).
_ROW_KINDS = frozenset(("action", "escalation", "decision", "compensation"))


def merge(batches: list[Prepared]) -> Prepared:
    """Consecutive prepared batches as one (a task's summary rows add up when upserted in order)."""
    if len(batches) == 1:
        return batches[0]
    out = Prepared(source_id=batches[0].source_id)
    for b in batches:
        if b.source_id != out.source_id:
            raise ValueError("merge: batches from different sources")  # (a tailer merges one file's)
        for name in ("ev_task", "ev_seq", "ev_kind", "ev_ts", "ev_payload", "task_rows", "esc_rows", "action_rows",
                     "decisions", "compensations", "escalations"):
            getattr(out, name).extend(getattr(b, name))
        out.agent_known = out.agent_known or b.agent_known
        out.tasks |= b.tasks
        if b.checked:
            seen = out.counts
            for task_id, verdict in b.checked.items():
                if task_id in seen or task_id in out.facts:
                    out.checked.pop(task_id, None)  # in two batches: checked again from the store
                else:
                    out.checked[task_id] = verdict
            for task_id, n in b.counts.items():
                seen[task_id] = seen.get(task_id, 0) + n
            out.book_token = b.book_token if out.book_token in (None, b.book_token) else object()
        for task_id, (kinds, facts, n) in b.facts.items():
            mine = out.facts.get(task_id)
            if mine is None:
                out.facts[task_id] = [set(kinds), list(facts), n]
            else:
                mine[0] |= kinds
                mine[1].extend(facts)
                mine[2] += n
    return out


Derive = Callable[[sqlite3.Connection, Prepared], None]


def apply_batch(
    conn: sqlite3.Connection,
    source: dict | None,
    parsed: Iterable[tuple[Any, str]],
    rejects: list[Reject],
    *,
    new_offset: int | None = None,
    lines: int = 0,
    derive: Derive | None = None,
) -> BatchResult:
    """Write one batch and (if ``source`` is given) the source's new offset, atomically.

    ``source`` is a row of the ``sources`` table as a dict; its ``offset`` is
    checked inside the transaction so two tailers on one store can never
    ingest the same bytes twice. Returns what changed, for the console.
    Raises ``OffsetMoved`` if another process got there first, and
    ``BadBatch`` (with the reason) if a value in the batch cannot be stored:
    nothing of it is then written.
    """
    parsed = list(parsed)
    # Events made from OpenTelemetry spans (store/otlp.py) know their span: a
    # span sent twice (a client retry; a file and HTTP) must be stored once.
    from_spans = any(type(item) is not tuple for item in parsed)
    try:
        prepared = prepare(parsed, source["id"] if source else None)
    except Exception as exc:
        raise BadBatch(describe_error(exc)) from exc
    return commit(conn, source, prepared, rejects, new_offset=new_offset, lines=lines,
                  spans=parsed if from_spans else None, derive=derive)


def commit(
    conn: sqlite3.Connection,
    source: dict | None,
    prepared: Prepared,
    rejects: list[Reject],
    *,
    new_offset: int | None = None,
    lines: int = 0,
    spans: list | None = None,
    derive: Derive | None = None,
    reread: Callable[[], list] | None = None,
    proto: bool = False,
) -> BatchResult:
    """The write half of ``apply_batch``: one transaction with the source's new offset.

    ``derive`` writes what is derived from the batch (contract violations)
    in the same transaction; without it the batch's tasks are queued in
    ``contract_pending`` in that transaction, for a checker to finish later.
    When a value in the batch makes the write fail (not the store: a locked,
    full or read-only store raises), ``reread`` gives the batch's lines again
    and they are committed one by one (``commit_lines``): the line at fault
    is rejected with the reason and the rest is stored. Without ``reread``,
    ``BadBatch`` is raised and nothing is written.
    """
    source_id = source["id"] if source else None
    try:
        with atomic(conn):
            _check_offset(conn, source)
            if spans is not None:
                kept = claim_spans(conn, spans)
                if kept is not spans:  # some spans are stored already, or framed otherwise: write these
                    prepared = prepare(full_items(kept), source_id)
            _write_rows(conn, prepared)
            result = _finish(conn, source, prepared, rejects, new_offset, lines, derive)
    except Exception as exc:
        if isinstance(exc, OffsetMoved) or is_store_error(exc):
            raise
        if reread is None:
            raise BadBatch(describe_error(exc)) from exc
        return commit_lines(conn, source, reread(), new_offset=new_offset, lines=lines, derive=derive, proto=proto)
    if source is not None and new_offset is not None:
        source["offset"] = new_offset
    return result


def commit_lines(
    conn: sqlite3.Connection,
    source: dict | None,
    batch: list,
    *,
    new_offset: int | None = None,
    lines: int = 0,
    derive: Derive | None = None,
    proto: bool = False,
) -> BatchResult:
    """Commit a batch of lines (``reader.Line``) isolating the ones that cannot be stored.

    The slow path, taken only after a batch failed: lines are decoded one by
    one, then written in halves, each half in a savepoint, halving again
    where a write fails, so a bad line costs O(log n) attempts and ends up
    alone in ``rejects`` with its reason. Still one transaction, with the
    source's offset, so exactly-once holds.
    """
    source_id = source["id"] if source else None
    units: list[tuple[object, list]] = []
    rejects: list[Reject] = []
    for line in batch:
        items, bad = decode_lines([line], proto)
        rejects.extend(bad)
        if items:
            units.append((line, items))
    written: list[Prepared] = []

    def write(group: list[tuple[object, list]]) -> None:
        try:
            with atomic(conn):  # a savepoint: a failed half leaves the rest of the batch alone
                items = [item for _, its in group for item in its]
                if any(type(item) is not tuple for item in items):
                    items = claim_spans(conn, items)
                p = prepare(items, source_id)
                _write_rows(conn, p)
            written.append(p)
        except Exception as exc:
            if is_store_error(exc):
                raise
            if len(group) == 1:
                line = group[0][0]
                rejects.append(Reject(line.offset, describe_error(exc), line.data))  # type: ignore[attr-defined]
                return
            mid = len(group) // 2
            write(group[:mid])
            write(group[mid:])

    with atomic(conn):
        _check_offset(conn, source)
        if len(units) == 1:
            write(units)
        elif units:  # the whole failed once already: start with its halves
            write(units[: len(units) // 2])
            write(units[len(units) // 2:])
        rejects.sort(key=lambda r: r.offset)
        prepared = merge(written) if written else Prepared()
        result = _finish(conn, source, prepared, rejects, new_offset, lines, derive)
    if source is not None and new_offset is not None:
        source["offset"] = new_offset
    return result


def full_items(items: list) -> list:
    """Items with their events: a parse process sends span items without them
    (store/parallel.py); those ``claim`` kept are validated again from their payload."""
    if all(item[0] is not None or not item[1] for item in items):
        return items  # (an item without event or payload stands for an OTLP log record)
    from agentdeck.store.otlp import SpanItem

    validate = ev.event_adapter.validator.validate_json
    return [item if item[0] is not None or not item[1] else
            SpanItem(validate(item[1]), item[1], item.key, item.meta, item.source) for item in items]


class _Rewritten(Exception):
    """otlp.claim() asked for other items: undo what it recorded."""


def claim_spans(conn: sqlite3.Connection, items: list) -> list:
    """Claim the span parts of ``items`` (store/otlp.py ``claim``) inside the batch's transaction.

    Returns the items to write: ``items`` itself, or what ``claim`` asked to
    write instead (without parts stored already, or reframed), claimed in
    turn. What a refused claim recorded is undone with its savepoint.
    """
    from agentdeck.store import otlp

    for _ in range(100):
        kept = None
        try:
            with atomic(conn):
                kept = otlp.claim(conn, items)
                if kept is not None:
                    raise _Rewritten
        except _Rewritten:
            items = kept  # type: ignore[assignment]
            continue
        return items
    raise ValueError("the spans' framing did not settle after 100 rounds")


def _check_offset(conn: sqlite3.Connection, source: dict | None) -> None:
    if source is None:
        return
    # The stream's offset: the furthest this file or any copy of it (same
    # fingerprint) was read. Anything else means another ingester got here first.
    row = conn.execute(
        "SELECT max(offset) FROM sources WHERE id = ? OR (fp_len = ? AND fingerprint = ?)",
        (source["id"], source["fp_len"] or -1, source["fingerprint"]),
    ).fetchone()
    if row is None or row[0] != source["offset"]:
        raise OffsetMoved(source["path"])


def _write_rows(conn: sqlite3.Connection, p: Prepared) -> None:
    """The batch's events and what they change in tasks, escalations and actions (inside a transaction)."""
    task_rows, esc_rows, action_rows = p.task_rows, p.esc_rows, p.action_rows
    decisions, compensations = list(p.decisions), p.compensations
    # Events stored before this batch end here (decisions that came before
    # their escalation are looked up among them, below).
    stored_up_to = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0] if esc_rows else 0
    if p.ev_payload:
        conn.executemany(
            "INSERT INTO events (task_id, seq, kind, ts, source_id, payload) VALUES (?, ?, ?, ?, ?, ?)",
            p.event_rows(),
        )
        conn.executemany(_TASK_UPSERT, task_rows)
        otel = [row[0] for row in task_rows if row[0].startswith("otel-")]
        if otel:
            fill_otel_tasks(conn, otel)
    if esc_rows:
        # An escalation decided in its own batch (the usual case) is written
        # decided: one statement instead of an insert and an update. The
        # update's rule holds: only a pending escalation takes an agent's
        # decision (one already stored and decided by the console keeps its).
        # Decisions that arrived first (relayed through another file, in an
        # earlier batch) come before this batch's: the first one wins.
        earlier = _stored_decisions(conn, esc_rows, stored_up_to)
        folded, decisions = _fold_decisions(esc_rows, earlier + decisions)
        conn.executemany(_ESC_UPSERT, folded)
    if p.agent_known:
        # Escalations that arrived before their task_start (few; a partial
        # index keeps this from scanning the rest).
        conn.execute(
            """UPDATE escalations SET agent = (SELECT agent FROM tasks WHERE tasks.task_id = escalations.task_id)
               WHERE agent IS NULL
               AND (SELECT agent FROM tasks WHERE tasks.task_id = escalations.task_id) IS NOT NULL"""
        )
    if action_rows:
        conn.executemany(
            """INSERT OR IGNORE INTO actions (action_id, task_id, seq, ts, system, operation, amount, status,
               justification, compensation, idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            action_rows,
        )
    if decisions:
        # The agent reporting a decision it received: only fills a decision
        # the console does not already hold (the console's own is the record).
        # Never a release item (kind 'release'): a trace cannot promote a version.
        conn.executemany(
            """UPDATE escalations SET status = CASE ? WHEN 'approve' THEN 'approved' WHEN 'deny' THEN 'denied' ELSE 'expired' END,
               decided_by = ?, decided_at = ?, decision_reason = ?
               WHERE escalation_id = ? AND status = 'pending' AND kind IS NULL""",
            decisions,
        )
    if compensations:
        conn.executemany(
            """UPDATE actions SET compensated_at = ?, compensated_by = ?, compensation_status = ?
               WHERE action_id = ? AND compensated_at IS NULL""",
            compensations,
        )


def _stored_decisions(conn: sqlite3.Connection, esc_rows: list, stored_up_to: int) -> list:
    """Decisions on these escalations stored before this batch (ids up to ``stored_up_to``), in arrival order.

    One query a batch; ``id <= ?`` is checked on the index entries, so the
    tasks new in this batch (the usual case) cost an index probe each.
    """
    wanted = {esc[0] for esc in esc_rows}
    out = []
    for (payload,) in conn.execute(
        """SELECT payload FROM events WHERE task_id IN (SELECT value FROM json_each(?))
           AND id <= ? AND kind = 'decision' ORDER BY id""",
        (json.dumps(sorted({esc[1] for esc in esc_rows})), stored_up_to),
    ):
        d = ev.parse_event(payload)
        if d.escalation_id in wanted:
            out.append((d.decision, d.decided_by, epoch(d.ts), d.reason, d.escalation_id))
    return out


_ESC_UPSERT = """
INSERT INTO escalations (escalation_id, task_id, seq, ts, agent, risk, risk_rank, reason, deadline, policy_id,
    justification, proposed_action, callback_url, status, decided_by, decided_at, decision_reason)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(escalation_id) DO UPDATE SET
    status = excluded.status, decided_by = excluded.decided_by, decided_at = excluded.decided_at,
    decision_reason = excluded.decision_reason
WHERE escalations.status = 'pending' AND excluded.status != 'pending'
    AND escalations.kind IS NULL  -- a release item (store/release.py) is decided by a person, never by a trace
"""
_DECIDED = {"approve": "approved", "deny": "denied"}  # anything else: expired


def _fold_decisions(esc_rows: list, decisions: list) -> tuple[list, list]:
    """Escalation rows with the first decision on each from the same batch, and the other decisions.

    Same outcome as inserting the rows pending and then applying every
    decision in order to pending escalations: the first decision on an
    escalation wins, later ones changed nothing. A row that is a second
    copy of an escalation (same id) stays pending: it changes nothing either.
    """
    first: dict[str, int] = {}
    for i, row in enumerate(esc_rows):
        first.setdefault(row[0], i)
    decided: dict[int, tuple] = {}
    rest: list = []
    for d in decisions:  # (decision, decided_by, ts, reason, escalation_id)
        at = first.get(d[4])
        if at is None:
            rest.append(d)
        elif at not in decided:
            decided[at] = (_DECIDED.get(d[0], "expired"), d[1], d[2], d[3])
    pending = ("pending", None, None, None)
    return [(*row, *decided.get(i, pending)) for i, row in enumerate(esc_rows)], rest


def fill_otel_tasks(conn: sqlite3.Connection, task_ids: list[str]) -> None:
    """What a new OpenTelemetry task row takes from the claims made before it in its transaction.

    Its senders (the sources of its span parts claimed so far, in ``otlp_spans`` or, for a trace
    claimed in one batch so far, ``otlp_claims``; ``otlp.claim``
    appends later senders to a task that exists), and whether its agent is a stand-in (its frame in
    ``otlp_tasks`` names no agent; ``otlp.claim`` keeps existing rows in
    step). Run after the claims and the task rows, for the batch's 'otel-'
    tasks; a row set already is left alone. Both were triggers on every task
    insert, which cost a trigger program per task row of every batch,
    OpenTelemetry or not.
    """
    ids = json.dumps(task_ids)
    conn.execute(
        """UPDATE tasks SET source = coalesce((
               SELECT group_concat(DISTINCT source) FROM otlp_spans
               WHERE trace_id = substr(tasks.task_id, 6) AND source IS NOT NULL),
               (SELECT sources FROM otlp_claims WHERE trace_id = substr(tasks.task_id, 6)))
           WHERE task_id IN (SELECT value FROM json_each(?)) AND source IS NULL""",
        (ids,),
    )
    conn.execute(
        """UPDATE tasks SET agent_stand_in = 1
           WHERE task_id IN (SELECT value FROM json_each(?)) AND NOT agent_stand_in
           AND EXISTS (SELECT 1 FROM otlp_tasks WHERE trace_id = substr(tasks.task_id, 6) AND named = 0)""",
        (ids,),
    )


def queue_checks(conn: sqlite3.Connection, tasks: Iterable[str]) -> None:
    """Queue these tasks' contract checks (inside the transaction that changed them)."""
    tasks = sorted(tasks)
    if tasks:
        conn.execute("INSERT OR IGNORE INTO contract_pending (task_id) SELECT value FROM json_each(?)",
                     (json.dumps(tasks),))


def _finish(
    conn: sqlite3.Connection,
    source: dict | None,
    p: Prepared,
    rejects: list[Reject],
    new_offset: int | None,
    lines: int,
    derive: Derive | None,
) -> BatchResult:
    """Derived rows, rejects and the source's new offset: the rest of the batch's transaction."""
    now = time.time()
    result = BatchResult(events=len(p.ev_payload), rejects=len(rejects), tasks=set(p.tasks),
                         escalations=list(p.escalations))
    source_id = source["id"] if source else None
    if p.tasks:
        if derive is None:
            queue_checks(conn, p.tasks)
        else:
            try:
                with atomic(conn):  # a savepoint: a failed check must not cost the events
                    derive(conn, p)
            except Exception as exc:
                if is_store_error(exc):
                    raise
                # Queued durably instead; the checker retries and says why it fails.
                queue_checks(conn, p.tasks)
                result.problem = f"contract check failed, queued: {describe_error(exc)}"
    if rejects:
        conn.executemany(
            "INSERT INTO rejects (source_id, path, offset, error, raw, raw_length, ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (source_id, source["path"] if source else "", r.offset, r.error[:1000],
                 r.raw[:MAX_REJECT_RAW].decode("utf-8", "replace"), r.length or len(r.raw), now)
                for r in rejects
            ],
        )
    if source is not None and new_offset is not None:
        conn.execute(
            """UPDATE sources SET offset = ?, lines = lines + ?, rejects = rejects + ?,
               fingerprint = ?, fp_len = ?, path = ?, updated_at = ? WHERE id = ?""",
            (new_offset, lines, len(rejects), source["fingerprint"], source["fp_len"],
             source["path"], now, source_id),
        )
    return result


class OffsetMoved(Exception):
    """Another ingester committed this source's offset first."""
