"""One task's decision path, rebuilt from the store as plain data.

``reconstruct(conn, task_or_request_id)`` reads the task's events (ordered by
``seq``, whatever order they arrived in), the escalations and actions tables
(where the human decision and the compensation state live), the console's
compensation attempts and the audit records about the task. The result is a
``Reconstruction``: a timeline of ``Step``s plus the same facts grouped the way
an evidence packet needs them. The Replay screen renders it; ``agentdeck
evidence`` exports it. Nothing here touches the UI.

A seq that never arrived is a ``gap`` step in the timeline, never an error.
Payloads were validated at ingest, so they are read with ``json.loads`` (a
10,000-step task must open in a blink), not re-validated.

The timeline is a ``Timeline``: the task's rows as SQLite returned them
(plain tuples, already in ``seq, id`` order), each ``Step`` made the first time
it is asked for. A 10,000-step task opened on Replay makes the few steps its
summary and its first screenful need, not 10,000 (the read was most of the
open's time: issue 9). ``reconstruct_eager`` is the way it was done before
(every step made, rows re-sorted in Python): the reference the lazy timeline
is tested against, and the baseline bench/console.py prints beside the open.
"""

from __future__ import annotations

import importlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, overload

from agentdeck.store import queries
from agentdeck.replay.step_text import step_title

# Kinds that mark the moment a human or the agent committed to something.
DECISION_KINDS = ("escalation", "decision", "action")
# Kinds whose steps the reconstruction's summary reads (the rest are parsed when looked at).
SUMMARY_KINDS = frozenset(("escalation", "decision", "action", "task_start", "plan", "task_end"))
_AUDIT_CHUNK = 500
_EVENTS_SQL = "SELECT id, seq, kind, ts, payload FROM events WHERE task_id = ? ORDER BY seq, id"


class Step:
    """One line of the timeline: an event, or a run of missing seqs.

    ``data`` (the event as JSON; for a gap ``{"missing_from": a, "missing_to": b}``)
    and ``title`` (one line of trace text: display through console.safe) are
    parsed from the payload on first use, so a 10,000-step task only pays for
    the lines that are looked at.
    """

    __slots__ = ("index", "kind", "seq", "ts", "event_id", "_payload", "_data", "_title")

    def __init__(self, index: int, kind: str, seq: int | None, ts: float | None, *, payload: str | None = None,
                 data: Any = None, title: str | None = None, event_id: int | None = None) -> None:
        self.index = index
        self.kind = kind  # an event kind, or "gap"
        self.seq = seq  # first missing seq for a gap
        self.ts = ts
        self.event_id = event_id
        self._payload = payload
        self._data = data
        self._title = title

    @property
    def data(self) -> Any:
        if self._payload is not None:
            self._data = _load(self._payload)
            self._payload = None
        return self._data

    @property
    def title(self) -> str:
        if self._title is None:
            self._title = step_title(self.kind, self.data if isinstance(self.data, dict) else {})
        return self._title

    @property
    def is_gap(self) -> bool:
        return self.kind == "gap"

    def __repr__(self) -> str:
        return f"Step({self.index}, {self.kind!r}, seq={self.seq})"


def _gap_step(index: int, first: int, last: int) -> Step:
    missing = f"seq {first}" if last == first else f"seqs {first}–{last}"
    return Step(index, "gap", first, None, title=f"gap: {missing} never arrived",
                data={"missing_from": first, "missing_to": last})


class Timeline(Sequence[Step]):
    """A task's steps in timeline order, each made on first use from the row it stands for.

    ``rows`` are ``(id, seq, kind, ts, payload)`` tuples in ``seq, id`` order
    (as the SELECT returns them: no re-sort). Where seqs are missing a gap step
    stands between rows, as ``build_steps`` puts it. The same step is the same
    object each time it is asked for (two threads asking for a new one at once
    may each make one: equal, one of them kept).
    """

    __slots__ = ("_rows", "_slots", "_made", "gaps")

    def __init__(self, rows: list[tuple[int, int, str, float, str]]) -> None:
        self._rows = rows
        seqs = [r[1] for r in rows]
        # Most tasks: seqs 0..n-1, once each. Then step i is row i (no per-row work here).
        self._slots: list[int | tuple[int, int]] | None = None
        self.gaps: list[tuple[int, int]] = []
        if seqs != list(range(len(seqs))):
            slots: list[int | tuple[int, int]] = []
            expected = 0
            for i, seq in enumerate(seqs):  # the same walk as build_steps
                if seq > expected:
                    self.gaps.append((expected, seq - 1))
                    slots.append((expected, seq - 1))
                slots.append(i)
                if seq >= expected:
                    expected = seq + 1
            self._slots = slots
        self._made: list[Step | None] = [None] * (len(rows) if self._slots is None else len(self._slots))

    def __len__(self) -> int:
        return len(self._made)

    def _step(self, index: int) -> Step:
        step = self._made[index]
        if step is None:
            slot = index if self._slots is None else self._slots[index]
            if isinstance(slot, tuple):
                step = _gap_step(index, *slot)
            else:
                event_id, seq, kind, ts, payload = self._rows[slot]
                step = Step(index, kind, seq, ts, payload=payload, event_id=event_id)
            self._made[index] = step
        return step

    @overload
    def __getitem__(self, index: int) -> Step: ...

    @overload
    def __getitem__(self, index: slice) -> list[Step]: ...

    def __getitem__(self, index: int | slice) -> Step | list[Step]:
        if isinstance(index, slice):
            return [self._step(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("timeline index out of range")
        return self._step(index)

    def __iter__(self) -> Iterator[Step]:
        return (self._step(i) for i in range(len(self)))

    def kind_at(self, index: int) -> str:
        """The step's kind without making the step."""
        slot = index if self._slots is None else self._slots[index]
        return "gap" if isinstance(slot, tuple) else self._rows[slot][2]

    def indexes_of(self, kinds: Iterable[str]) -> list[int]:
        """Indexes of the steps of these kinds, in order, without making the others."""
        wanted = frozenset(kinds)
        if self._slots is None:
            return [i for i, r in enumerate(self._rows) if r[2] in wanted]
        rows, gap = self._rows, "gap" in wanted
        return [i for i, slot in enumerate(self._slots)
                if (gap if isinstance(slot, tuple) else rows[slot][2] in wanted)]

    def of_kinds(self, kinds: Iterable[str]) -> list[Step]:
        return [self._step(i) for i in self.indexes_of(kinds)]

    def data_of(self, kind: str) -> list[dict]:
        """What ``Step.data`` is for each step of ``kind`` (never a gap's), in order, without making the steps.

        Each call parses the payloads again (the steps made meanwhile keep their own parse).
        """
        return [_load(r[4]) for r in self._rows if r[2] == kind]


@dataclass(slots=True)
class ToolExchange:
    call_id: str
    tool: str
    input: Any
    call_seq: int | None
    results: list[dict] = field(default_factory=list)  # every attempt's tool_result event


@dataclass(slots=True)
class EscalationRecord:
    escalation_id: str
    seq: int
    risk: str
    reason: str
    policy_id: str | None
    justification: str
    proposed_action: Any
    deadline: float | None
    status: str  # pending | approved | denied | expired (from the console's record)
    decided_by: str | None
    decided_at: float | None
    decision_reason: str | None
    delivery: str | None
    agent_saw: dict | None  # the agent's own decision event, if it arrived


@dataclass(slots=True)
class ActionRecord:
    action_id: str
    seq: int
    ts: float
    system: str
    operation: str
    params: dict
    amount: float | None
    status: str
    justification: str
    before: Any
    after: Any
    response: Any
    compensation: dict | None  # the hook as the agent declared it
    idempotency_key: str | None
    compensated_at: float | None
    compensated_by: str | None
    compensation_status: str | None


@dataclass
class Reconstruction:
    task_id: str
    request_id: str | None
    agent: str | None
    agent_version: dict
    cohort: str | None
    stage: str | None
    request: str
    input: dict
    started: float | None
    ended: float | None
    outcome: str | None
    summary: dict  # the task_end event, if any
    steps: Sequence[Step]  # a Timeline (reconstruct) or a list (reconstruct_eager)
    gaps: list[tuple[int, int]]
    plan: dict | None
    escalations: list[EscalationRecord]
    actions: list[ActionRecord]
    console_compensations: list[dict]  # attempts run from this console (compensations table)
    audit: list[dict]
    contract: dict | None
    decision_index: int | None  # the step to jump to: first escalation/decision, else the first action

    # Views parsed on first use (the screen needs few of them; the evidence packet all).

    def _steps_of(self, *kinds: str) -> Iterable[Step]:
        """The steps of these kinds in order (a Timeline makes only those)."""
        steps = self.steps
        if isinstance(steps, Timeline):
            return steps.of_kinds(kinds)
        return (s for s in steps if s.kind in kinds)

    def _of_kind(self, kind: str) -> list[dict]:
        return [s.data for s in self._steps_of(kind) if isinstance(s.data, dict)]

    @cached_property
    def tool_calls(self) -> list[ToolExchange]:
        tools: dict[str, ToolExchange] = {}
        for step in self._steps_of("tool_call", "tool_result"):
            if not isinstance(step.data, dict):
                continue
            e = step.data
            call_id = str(e.get("call_id", ""))
            if step.kind == "tool_call":
                tools.setdefault(call_id, ToolExchange(call_id, e.get("tool", ""), e.get("input"), step.seq))
            else:
                ex = tools.get(call_id)
                if ex is None:  # a result without its call (the call is in a gap)
                    ex = tools[call_id] = ToolExchange(call_id, e.get("tool", ""), None, None)
                ex.results.append(e)
        return list(tools.values())

    @cached_property
    def policy_checks(self) -> list[dict]:
        return self._of_kind("policy_check")

    @cached_property
    def trace_compensations(self) -> list[dict]:
        """Compensation events the agents reported."""
        return self._of_kind("compensation")

    @cached_property
    def policy_versions(self) -> list[str]:
        """``policy_id@policy_version`` of the policy checks, each once, in order (the Replay header's line).

        Read from the payloads without making steps when the timeline is lazy: a long task has thousands
        of checks, and making a step for each was most of this (the screen asks for it on every open).
        """
        steps = self.steps
        checks = (self.policy_checks if not isinstance(steps, Timeline) or "policy_checks" in self.__dict__
                  else steps.data_of("policy_check"))
        seen: dict[str, None] = {}
        for p in checks:
            seen[f"{p.get('policy_id')}@{p.get('policy_version')}"] = None
        return list(seen)

    @property
    def decision_points(self) -> list[int]:
        """Timeline indexes of escalations, decisions and actions, in order (``d`` cycles through them)."""
        if isinstance(self.steps, Timeline):
            return self.steps.indexes_of(DECISION_KINDS)
        return [s.index for s in self.steps if s.kind in DECISION_KINDS]

    def action(self, action_id: str) -> ActionRecord | None:
        return next((a for a in self.actions if a.action_id == action_id), None)


# json.loads(s) is this scanner behind three Python calls and two whitespace regexes (BOM check, decode,
# raw_decode): for a 150-byte payload they cost as much as the parse. A long task's open parses thousands
# (the policy line: issue 9), so a payload is scanned directly first; json.loads is asked only when that is
# not the whole answer.
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # the C scanner, with loads' defaults


def _parse(payload: str) -> Any:
    """``json.loads(payload)``, the same value or the same error, faster for payloads as ingest stores them.

    A scan from index 0 that ends at the string's end is what ``loads`` returns (it strips whitespace first and
    after, and refuses a BOM: a payload with either fails the scan here or ends early, and goes to ``loads``).
    """
    if type(payload) is str:
        try:
            data, end = _scan(payload, 0)
        except (StopIteration, ValueError):
            pass
        else:
            if end == len(payload):
                return data
    return json.loads(payload)


def _load(payload: str) -> dict:
    try:
        data = _parse(payload)
    except ValueError:
        return {"unreadable_payload": payload[:200]}
    return data if isinstance(data, dict) else {"payload": data}


def build_steps(rows: list[tuple[int, int, str, float, str]]) -> tuple[list[Step], list[tuple[int, int]]]:
    """Rows (id, seq, kind, ts, payload) → timeline, ordered by seq, with gaps where seqs are missing."""
    rows = sorted(rows, key=lambda r: (r[1], r[0]))
    steps: list[Step] = []
    gaps: list[tuple[int, int]] = []
    expected = 0
    for event_id, seq, kind, ts, payload in rows:
        if seq > expected:
            gaps.append((expected, seq - 1))
            steps.append(_gap_step(len(steps), expected, seq - 1))
        steps.append(Step(len(steps), kind, seq, ts, payload=payload, event_id=event_id))
        if seq >= expected:
            expected = seq + 1
    return steps, gaps


def _contract(conn: sqlite3.Connection, task_id: str, agent: str | None, version: str | None) -> dict | None:
    """The operating contract in force for this agent (store/contract.py), and the task's violations of it."""
    try:
        module = importlib.import_module("agentdeck.store.contract")
    except ImportError:
        return None
    try:
        book = _book(module, conn)
        found = book.get(agent)
        violations = [
            {"seq": v["seq"], "rule": v["rule"], "detail": v["detail"]} for v in module.task_violations(conn, task_id)
        ] if _has_table(conn, "violations") else []
    except Exception as exc:  # their module, our screen: never crash on it
        return {"error": f"could not read the contract: {type(exc).__name__}: {exc}"[:300]}
    if found is None:
        none: dict[str, Any] = {"agent": agent, "path": None, "note": "no contract for this agent",
                                "violations": violations}
        if book.problems:  # one of them may have been this agent's: "none" alone would hide that
            # (how many, not which: an evidence packet leaves the machine, and the files' paths and other
            # agents' contracts are not the task's; Problems names them)
            none["unusable_files"] = len(book.problems)
        return none
    return {
        "agent": found.agent,
        "path": found.path,
        "description": found.description,
        "stage_of_version": found.versions.get(version or ""),
        "tools": list(found.tools.allow),
        "actions": {name: rule.model_dump(mode="json") for name, rule in found.actions.items()},
        "never": found.never.model_dump(mode="json"),
        "escalate_at_risk": found.limits.escalate_at_risk,
        "violations": violations,
    }


_books: dict[str, Any] = {}  # store file -> its ContractCheck (re-reads the contract files only when they change)
_books_lock = threading.Lock()
_BOOKS_KEPT = 8


def _book(module: Any, conn: sqlite3.Connection) -> Any:
    """``book_for_store(conn)``, kept per store: parsing the contract files on every open cost a few ms."""
    path = next((row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"), "")
    if not path:  # an in-memory store (a suite run's trace): no folders of its own to key on
        return module.book_for_store(conn)
    with _books_lock:
        check = _books.get(path)
        if check is None:
            while len(_books) >= _BOOKS_KEPT:  # (a process that opens many stores: tests, archive checks)
                del _books[next(iter(_books))]
            check = _books[path] = module.ContractCheck()
        return check.book(conn)


def _audit_for(conn: sqlite3.Connection, subjects: list[str]) -> list[dict]:
    records: dict[int, dict] = {}
    for i in range(0, len(subjects), _AUDIT_CHUNK):
        chunk = subjects[i : i + _AUDIT_CHUNK]
        sql = f"SELECT id, ts, actor, kind, subject, detail, hash FROM audit WHERE subject IN ({','.join('?' * len(chunk))})"
        for r in conn.execute(sql, chunk):
            rec = dict(r)
            try:
                rec["detail"] = json.loads(rec["detail"])
            except ValueError:
                pass
            records[rec["id"]] = rec
    return [records[k] for k in sorted(records)]


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def reconstruct(conn: sqlite3.Connection, task_or_request_id: str) -> Reconstruction | None:
    """The decision path of a task (by task id or request id); None if the store has no such task.

    Its ``steps`` are a ``Timeline``: each step made when first asked for.
    """
    return _reconstruct(conn, task_or_request_id, lazy=True)


def reconstruct_eager(conn: sqlite3.Connection, task_or_request_id: str) -> Reconstruction | None:
    """``reconstruct`` as it was before the lazy timeline: every step made up front (a list), rows re-sorted.

    The reference the lazy one must equal (tests) and the bench's baseline; nothing else should need it.
    """
    return _reconstruct(conn, task_or_request_id, lazy=False)


def _reconstruct(conn: sqlite3.Connection, task_or_request_id: str, *, lazy: bool) -> Reconstruction | None:
    task = queries.find_task(conn, task_or_request_id)
    if task is None:
        # Events may exist for a task whose summary row is missing (e.g. only a partial trace).
        if conn.execute("SELECT 1 FROM events WHERE task_id = ? LIMIT 1", (task_or_request_id,)).fetchone() is None:
            return None
        task_id = task_or_request_id
        task = {}
    else:
        task_id = task["task_id"]
        task = dict(task)
    steps: Sequence[Step]
    if lazy:
        cur = conn.cursor()
        cur.row_factory = None  # plain tuples: a sqlite3.Row a row cost more than the rest of the read
        timeline = Timeline(cur.execute(_EVENTS_SQL, (task_id,)).fetchall())
        steps, gaps, summary_steps = timeline, timeline.gaps, timeline.of_kinds(SUMMARY_KINDS)
    else:
        steps, gaps = build_steps(conn.execute(_EVENTS_SQL, (task_id,)).fetchall())
        summary_steps = steps

    # Only the few steps the summary needs are parsed here; the rest on demand.
    start: dict = {}
    summary: dict = {}
    plan = None
    decisions_seen: dict[str, dict] = {}
    action_steps: dict[int, Step] = {}
    decision_index = first_action = None
    for step in summary_steps:
        kind = step.kind
        if kind == "escalation" or kind == "decision":
            if kind == "decision" and isinstance(step.data, dict):
                decisions_seen[str(step.data.get("escalation_id", ""))] = step.data
            if decision_index is None:
                decision_index = step.index
        elif kind == "action":
            if step.seq is not None:
                action_steps.setdefault(step.seq, step)
            if first_action is None:
                first_action = step.index
        elif kind == "task_start" and not start and isinstance(step.data, dict):
            start = step.data
        elif kind == "plan" and plan is None and isinstance(step.data, dict):
            plan = step.data
        elif kind == "task_end" and isinstance(step.data, dict):
            summary = step.data

    escalations = [
        EscalationRecord(
            r["escalation_id"], r["seq"], r["risk"], r["reason"] or "", r["policy_id"], r["justification"] or "",
            _json_or_text(r["proposed_action"]), r["deadline"], r["status"], r["decided_by"], r["decided_at"],
            r["decision_reason"], r["delivery"], decisions_seen.get(r["escalation_id"]),
        )
        for r in conn.execute("SELECT * FROM escalations WHERE task_id = ? ORDER BY seq", (task_id,))
    ]
    actions = []
    for r in conn.execute("SELECT * FROM actions WHERE task_id = ? ORDER BY seq", (task_id,)):
        action_step = action_steps.get(r["seq"])
        e = action_step.data if action_step is not None and isinstance(action_step.data, dict) else {}
        if e.get("action_id") != r["action_id"]:
            e = {}
        actions.append(ActionRecord(
            r["action_id"], r["seq"], r["ts"], r["system"], r["operation"], e.get("params") or {}, r["amount"],
            r["status"], r["justification"] or "", e.get("before"), e.get("after"), e.get("response"),
            _json_or_text(r["compensation"]) if r["compensation"] else None, r["idempotency_key"],
            r["compensated_at"], r["compensated_by"], r["compensation_status"],
        ))
    console_comps = []
    if _has_table(conn, "compensations"):
        console_comps = [dict(r) for r in conn.execute(
            "SELECT * FROM compensations WHERE task_id = ? ORDER BY id", (task_id,))]

    subjects = [task_id] + ([task["request_id"]] if task.get("request_id") else [])
    subjects += [x.escalation_id for x in escalations] + [a.action_id for a in actions]
    version = start.get("agent_version") or ({"id": task["version"]} if task.get("version") else {})
    return Reconstruction(
        task_id=task_id,
        request_id=start.get("request_id") or task.get("request_id"),
        agent=start.get("agent") or task.get("agent"),
        agent_version=version,
        cohort=start.get("cohort") or task.get("cohort"),
        stage=start.get("stage") or task.get("stage"),
        request=start.get("request") or task.get("request") or "",
        input=start.get("input") or {},
        started=task.get("started"),
        ended=task.get("ended"),
        outcome=task.get("outcome"),
        summary=summary,
        steps=steps,
        gaps=gaps,
        plan=plan,
        escalations=escalations,
        actions=actions,
        console_compensations=console_comps,
        audit=_audit_for(conn, subjects),
        contract=_contract(conn, task_id, start.get("agent") or task.get("agent"), version.get("id")),
        decision_index=decision_index if decision_index is not None else first_action,
    )


def _json_or_text(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value
