"""Operating contracts: what each agent may do, and checking its tasks against it.

A contract is a small TOML file per agent (see ``docs/contract.md`` and
``sample_data/contracts/``): the tools and endpoints it may call, the
actions it may take and the thresholds above which it must have a human's
approval first, what it must never do, what "done" means, and the autonomy
stage of each of its versions. ``[canary]`` holds the agent's canary
settings (read by ``store/canary.py``).

``check_task`` is a pure function over one task's events (as decoded JSON
dicts, in ``seq`` order); ``ContractCheck`` runs it as a post-commit hook
and keeps the ``violations`` table and ``tasks.violations`` current.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import operator
import os
import sqlite3
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from collections.abc import Iterable
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentdeck.store.txn import atomic

log = logging.getLogger(__name__)

ENV_CONTRACTS = "AGENTDECK_CONTRACTS"
BUNDLED = Path(__file__).resolve().parents[1] / "sample_data" / "contracts"
BESIDE_TRACES = "contracts"

Stage = Literal["shadow", "assisted", "partial", "bounded"]
Risk = Literal["low", "medium", "high", "critical"]
RISK_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}

# Rule codes, as stored in violations.rule and shown to people.
TOOL_NOT_ALLOWED = "tool_not_allowed"
ACTION_NOT_ALLOWED = "action_not_allowed"
FORBIDDEN = "forbidden"
ENDPOINT_NOT_ALLOWED = "endpoint_not_allowed"
UNAPPROVED_ACTION = "unapproved_action"
SHADOW_ACTION = "shadow_action"
MISSING_EVIDENCE = "missing_evidence"
RULES = (TOOL_NOT_ALLOWED, ACTION_NOT_ALLOWED, FORBIDDEN, ENDPOINT_NOT_ALLOWED,
         UNAPPROVED_ACTION, SHADOW_ACTION, MISSING_EVIDENCE)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActionRule(_Model):
    """One action the agent may take (``[actions."system.operation"]``)."""

    max_amount: float | None = Field(None, description="Above this amount the action needs an approved escalation.")
    risk: Risk = Field("low", description="The action's inherent risk; at or above limits.escalate_at_risk it always needs approval.")
    approval_when: dict[str, list[Any]] = Field(
        default_factory=dict, description="Parameter values that make the action need approval, e.g. role = ['org-admin'].")


class Limits(_Model):
    escalate_at_risk: Risk = "high"


class Allow(_Model):
    allow: list[str] = Field(default_factory=list)


class Never(_Model):
    """What the agent must never do, whatever an approval says."""

    tools: list[str] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list)


Evidence = Literal["justification", "before", "after", "compensation"]


class Done(_Model):
    """What a finished task must carry as evidence."""

    require_events: list[str] = Field(default_factory=lambda: ["plan", "policy_check"])
    action_evidence: list[Evidence] = Field(
        default_factory=lambda: list[Evidence](["justification", "before", "after", "compensation"]))


class MetricSetting(_Model):
    direction: Literal["lower", "higher", "none"] | None = None
    tolerance: float | None = Field(None, ge=0)
    weight: float | None = Field(None, ge=0)
    critical: bool | None = None


# The canary metrics a contract may tune (store/canary.py defines them).
CANARY_METRICS = ("action_error_rate", "violation_rate", "escalation_rate", "retry_rate", "policy_denials",
                  "latency", "tokens", "tool_calls", "cost")


class CanarySettings(_Model):
    min_samples: int = Field(30, ge=2)
    alpha: float = Field(0.05, gt=0, lt=1)
    promote_score: float = Field(90, ge=0, le=100)
    rollback_score: float = Field(60, ge=0, le=100)
    loop_tool_calls: int = Field(8, ge=1, description="A task with more tool calls than this counts as looping.")
    promote_agreement: float | None = Field(
        None, gt=0, le=1, description="Shadow agreement a version needs before promotion: the lower bound of the "
                                      "95% interval of people approving its proposals (e.g. 0.95).")
    agreement_min_decisions: int = Field(100, ge=1, description="Human decisions the agreement rule needs at least.")
    # Promotions and roll backs decided in the Escalations queue (store/release.py, docs/canary.md).
    escalate_hold_after: float | None = Field(
        None, gt=0, description="Seconds a canary may hold (since its first task) before a promotion is put to "
                                "a person anyway; unset: a hold never raises an item.")
    release_risk: Risk = Field("high", description="Risk of a promotion or roll back item: the reason and "
                                                   "approver rules (two-person rule) of that risk apply.")
    release_deadline: float = Field(86400, gt=0, description="Seconds a person has to decide a promotion or roll "
                                                             "back item; past it the item stays (never expired).")
    metrics: dict[str, MetricSetting] = Field(default_factory=dict)

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: dict[str, MetricSetting]) -> dict[str, MetricSetting]:
        unknown = sorted(set(value) - set(CANARY_METRICS))
        if unknown:
            raise ValueError(f"unknown metric {', '.join(unknown)} (known: {', '.join(CANARY_METRICS)})")
        return value


class Contract(_Model):
    agent: str = Field(min_length=1)
    description: str = ""
    versions: dict[str, Stage] = Field(default_factory=dict, description="Autonomy stage of each version.")
    release_hook: str | None = Field(None, description="URL told each change of a version's effective stage "
                                                       "(allowlisted like callbacks; docs/autonomy.md).")
    tools: Allow = Field(default_factory=Allow)
    endpoints: Allow = Field(default_factory=Allow)
    actions: dict[str, ActionRule] = Field(default_factory=dict)
    limits: Limits = Field(default_factory=Limits)
    never: Never = Field(default_factory=Never)
    done: Done = Field(default_factory=Done)
    canary: CanarySettings = Field(default_factory=CanarySettings)  # type: ignore[arg-type]  # mypy without the pydantic plugin
    # Where it was read from (set by load_contract, not by the file).
    path: str = ""


class ContractError(Exception):
    """A contract file that cannot be used, with a one-line reason."""


def load_contract(path: Path) -> Contract:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ContractError(f"{path}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ContractError(f"{path}: bad TOML: {exc}") from None
    except RecursionError:  # (tomllib recurses per nesting level: unnamed, it took every other file down with it)
        raise ContractError(f"{path}: bad TOML: arrays or tables nested too deeply") from None
    data.pop("path", None)
    try:
        return Contract(**data, path=str(path))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first.get("loc", ())) or "file"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ContractError(f"{path}: {loc}: {first.get('msg')}{more}") from None


@dataclass
class ContractBook:
    """The contracts in force, one per agent, and the files that could not be used."""

    contracts: dict[str, Contract] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def get(self, agent: str | None) -> Contract | None:
        return self.contracts.get(agent) if agent else None


def contract_dirs(cli: Iterable[str | Path] | None = None, trace_paths: Iterable[str | Path] = ()) -> list[Path]:
    """Folders to read contracts from, first match wins.

    1. ``--contracts`` folders, else ``$AGENTDECK_CONTRACTS`` (os.pathsep-separated);
    2. ``contracts/`` inside each trace folder (for a trace file: its folder);
    3. the bundled ``sample_data/contracts`` (the sample agents' contracts).
    """
    dirs: list[Path] = [Path(p) for p in (cli or [])]
    if not dirs:
        dirs = [Path(p) for p in os.environ.get(ENV_CONTRACTS, "").split(os.pathsep) if p]
    for t in trace_paths:
        t = Path(t)
        folder = t if t.is_dir() else t.parent
        dirs.append(folder / BESIDE_TRACES)
    dirs.append(BUNDLED)
    return list(dict.fromkeys(dirs))  # each once, first place kept (a list's `in`: 30 ms for 500 trace folders)


def _toml_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.suffix == ".toml" and p.is_file())
    except OSError:
        return []


def load_book(dirs: Iterable[Path]) -> ContractBook:
    book = ContractBook()
    for folder in dirs:
        for path in _toml_files(folder):
            try:
                c = load_contract(path)
            except ContractError as exc:
                book.problems.append(str(exc))
                continue
            book.contracts.setdefault(c.agent, c)
    return book


def _signature(dirs: Iterable[Path]) -> tuple:
    sig = []
    for folder in dirs:
        for path in _toml_files(folder):
            try:
                st = path.stat()
            except OSError:
                continue
            sig.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(sig)


# -- checking ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Violation:
    seq: int
    rule: str
    detail: str


def _host(url: Any) -> str | None:
    if not isinstance(url, str):
        return None
    return _host_of(url)


@functools.lru_cache(maxsize=4096)
def _host_of(url: str) -> str:
    # Agents call back the same few URLs: a bulk import asks for the same host thousands of times.
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "(unparseable url)"


def _endpoint_allowed(host: str, allow: list[str]) -> bool:
    allowed = {a.lower() for a in allow}
    return host in allowed or host.split(":")[0] in allowed


def _finite(value: Any) -> float | None:
    """``value`` as a finite number, or None when it is not one (a string, NaN, Infinity, 10**400, a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _needs_approval(rule: ActionRule, contract: Contract, event: dict) -> str | None:
    """Why this action (an event as decoded JSON) needs an approved escalation, or None."""
    return _approval_reason(rule, contract, event.get("amount"), event.get("params") or {})


def _approval_reason(rule: ActionRule, contract: Contract, amount: Any, params: Any) -> str | None:
    """Why an action with this amount and these params needs an approved escalation, or None.

    The amount is judged strictly: one that is not a finite number (ingestion
    rejects those, but a store written by an older version may hold one)
    needs approval like one above the limit, never slips past it.
    """
    if rule.max_amount is not None and amount is not None:
        number = _finite(amount)
        if number is None:
            return f"amount {str(amount)[:40]!r} is not a finite number"
        if number > rule.max_amount:
            return f"amount {number:g} above {rule.max_amount:g}"
    if RISK_RANK[rule.risk] >= RISK_RANK[contract.limits.escalate_at_risk]:
        return f"risk {rule.risk} needs approval"
    if isinstance(params, dict):
        for name, values in rule.approval_when.items():
            if name in params and params[name] in values:
                return f"{name}={params[name]} needs approval"
    return None


def effective_stage(contract: Contract | None, version: str | None, task_stage: str | None) -> str | None:
    """The stage the contract gives the version, else the one the task declared."""
    if contract is not None and version in contract.versions:
        return contract.versions[version]
    return task_stage


# -- facts: what the rules read of an event ---------------------------------------
#
# The rules look into five kinds of event, and only at a few fields; the other
# kinds count by kind alone. A *fact* is such an event reduced to a tuple:
#
#   ("tool_call", seq, tool)
#   ("decision", seq, decision, escalation_id)
#   ("escalation", seq, escalation_id, system, operation, amount, callback_url)
#   ("action", seq, system, operation, amount, params, status, http_compensation_url, missing_evidence)
#   ("task_end", seq)
#
# Ingestion builds facts from the validated events it already holds
# (``fact_of_event``), so checking a task that arrived whole needs no read
# back; a task that grew over several batches is read back from its stored
# payloads (``fact_of_dict``). Both must give the same tuple for one event.

FACT_KINDS = frozenset(("tool_call", "decision", "escalation", "action", "task_end"))
EVIDENCE = ("justification", "before", "after", "compensation")


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value == "")


def fact_of_event(e: Any) -> tuple:
    """The fact of a validated event (``store.events``) of one of ``FACT_KINDS``."""
    kind = e.kind
    if kind == "tool_call":
        return (kind, e.seq, e.tool)
    if kind == "decision":
        return (kind, e.seq, e.decision, e.escalation_id)
    if kind == "escalation":
        pa = e.proposed_action
        return (kind, e.seq, e.escalation_id, pa.system, pa.operation, pa.amount, e.callback_url)
    if kind == "action":
        comp = e.compensation
        missing = tuple(n for n, v in zip(EVIDENCE, (e.justification, e.before, e.after, comp)) if _absent(v))
        url = comp.url if comp is not None and comp.type == "http" else None
        return (kind, e.seq, e.system, e.operation, e.amount, e.params, e.status, url, missing)
    return (kind, e.seq)


def fact_of_dict(e: dict) -> tuple:
    """The fact of an event as decoded JSON (a stored payload, or ``check_task``'s input)."""
    kind = e.get("kind")
    try:
        seq = int(e.get("seq", -1))
    except (TypeError, ValueError, OverflowError):
        seq = -1
    if kind == "tool_call":
        return (kind, seq, str(e.get("tool")))
    if kind == "decision":
        return (kind, seq, e.get("decision"), e.get("escalation_id"))
    if kind == "escalation":
        pa = e.get("proposed_action")
        pa = pa if isinstance(pa, dict) else {}
        return (kind, seq, e.get("escalation_id"), pa.get("system"), pa.get("operation"), pa.get("amount"),
                e.get("callback_url"))
    if kind == "action":
        comp = e.get("compensation")
        missing = tuple(n for n in EVIDENCE if _absent(e.get(n)))
        url = comp.get("url") if isinstance(comp, dict) and comp.get("type") == "http" else None
        return (kind, seq, e.get("system"), e.get("operation"), e.get("amount"), e.get("params") or {},
                e.get("status"), url, missing)
    return (kind, seq)


def check_task(
    contract: Contract,
    events: list[dict],
    *,
    version: str | None = None,
    stage: str | None = None,
    approved: Iterable[str] = (),
) -> list[Violation]:
    """Every way this task broke its agent's contract, at the step (seq) that broke it.

    ``events`` are the task's events as decoded JSON, ordered by seq.
    ``approved`` holds escalation ids a human approved in the console; the
    agent's own ``decision`` events count for the steps after them. An action in shadow mode is
    a violation if either the contract or the task says the stage is shadow.
    """
    kinds = {e.get("kind") for e in events}
    facts = [fact_of_dict(e) for e in events if e.get("kind") in FACT_KINDS]
    return check_facts(contract, kinds, facts, version=version, stage=stage, approved=approved)


_SETS: dict[int, tuple[Contract, tuple]] = {}


def _sets(contract: Contract) -> tuple[set, set, set, set]:
    """The contract's lists as sets, built once per contract (a bulk import checks thousands of tasks against it)."""
    hit = _SETS.get(id(contract))
    if hit is None or hit[0] is not contract:
        if len(_SETS) > 256:
            _SETS.clear()
        sets = (set(contract.tools.allow), set(contract.never.tools), set(contract.never.actions),
                {a.lower() for a in contract.endpoints.allow})
        hit = _SETS[id(contract)] = (contract, sets)
    return hit[1]  # type: ignore[return-value]


def check_facts(
    contract: Contract,
    kinds: set,
    facts: list[tuple],
    *,
    version: str | None = None,
    stage: str | None = None,
    approved: Iterable[str] = (),
) -> list[Violation]:
    """``check_task`` over a task's kinds and facts (in seq order)."""
    out: list[Violation] = []
    tools, never_tools, never_actions, allowed_hosts = _sets(contract)
    # The agent's own decision events count from their step on (acting
    # before the approval arrived is acting without it); approvals given in
    # the console carry no step and count throughout.
    approvals = set(approved)
    contract_stage = contract.versions.get(version) if version is not None else None
    shadow = "shadow" in (contract_stage, stage)
    escalations: list[tuple] = []
    end_seq: int | None = None

    def endpoint(seq: int, url: Any, what: str) -> None:
        host = _host(url)
        if host is not None and host not in allowed_hosts and host.split(":")[0] not in allowed_hosts:
            out.append(Violation(seq, ENDPOINT_NOT_ALLOWED, f"{what} calls {host}, not in endpoints.allow"))

    for f in facts:
        kind, seq = f[0], f[1]
        if kind == "tool_call":
            tool = f[2]
            if tool in never_tools:
                out.append(Violation(seq, FORBIDDEN, f"called tool {tool}, which the contract forbids"))
            elif tool not in tools:
                out.append(Violation(seq, TOOL_NOT_ALLOWED, f"called tool {tool}, not in tools.allow"))
        elif kind == "decision":
            if f[2] == "approve":
                approvals.add(f[3])
        elif kind == "escalation":
            escalations.append(f)
            endpoint(seq, f[6], "escalation callback")
        elif kind == "action":
            _, _, system, operation, amount, params, status, comp_url, missing = f
            name = f"{system}.{operation}"
            if name in never_actions:
                out.append(Violation(seq, FORBIDDEN, f"action {name}, which the contract forbids"))
            elif name not in contract.actions:
                out.append(Violation(seq, ACTION_NOT_ALLOWED, f"action {name}, not among the contract's actions"))
            else:
                why = _approval_reason(contract.actions[name], contract, amount, params)
                if why is not None and not _approved_before(amount, name, escalations, approvals):
                    out.append(Violation(seq, UNAPPROVED_ACTION, f"{name} without an approved escalation ({why})"))
            if shadow:
                out.append(Violation(seq, SHADOW_ACTION, f"{name} executed in shadow mode"))
            if comp_url is not None:
                endpoint(seq, comp_url, "compensation")
            lacking = [n for n in contract.done.action_evidence
                       if n in missing and not (n == "compensation" and status != "ok")]  # nothing to undo for a failed action
            if lacking:
                out.append(Violation(seq, MISSING_EVIDENCE, f"{name} without {', '.join(lacking)}"))
        elif kind == "task_end":
            end_seq = seq
    if end_seq is not None:
        absent = [k for k in contract.done.require_events if k not in kinds]
        if absent:
            out.append(Violation(end_seq, MISSING_EVIDENCE, f"ended without {', '.join(absent)} events"))
    out.sort(key=lambda v: (v.seq, v.rule))
    return out


def _approved_before(amount: Any, name: str, escalations: list[tuple], approvals: set) -> bool:
    """An escalation for this action, raised before it, approved, covering its amount.

    Strict like ``_needs_approval``: an amount that is not a finite number is
    covered by no approval, and an approval for an amount that is not one
    covers no amount.
    """
    number = None if amount is None else _finite(amount)
    if amount is not None and number is None:
        return False
    for _, _, esc_id, system, operation, approved_amount, _ in escalations:
        if f"{system}.{operation}" != name or esc_id not in approvals:
            continue
        if number is not None and approved_amount is not None:
            cap = _finite(approved_amount)
            if cap is None or number > cap:
                continue  # approved for less than was done
        return True
    return False


# -- keeping the violations table current ------------------------------------------


class ContractCheck:
    """Keeps the ``violations`` table and ``tasks.violations`` current.

    Violations are derived rows, exactly-once like the events: ingestion
    calls ``derive`` inside the transaction that commits a batch (the
    Tailer lifts a ContractCheck given as a post-commit hook into that
    transaction), and a batch committed without one (an OTLP request, a
    check that failed) leaves its tasks in ``contract_pending``, committed
    with the events; ``drain`` finishes them, also after a crash or restart.
    Called as a post-commit hook it drains.

    Idempotent: a task's rows are replaced, never appended. Contract folders
    are ``contract_dirs(cli, trace folders)``; the trace folders are the
    ``sources`` table's, so the hook needs no configuration beyond the
    environment. Contract files are re-read when they change.
    """

    def __init__(self, dirs: list[Path] | None = None, *, cli: Iterable[str | Path] | None = None) -> None:
        self._fixed_dirs = dirs
        self._cli = list(cli or [])
        self._sig: tuple | None = None
        self._book = ContractBook()
        self._reloads = 0
        # Names the book in force, for verdicts reached elsewhere (parse
        # processes): plain ints, so it survives pickling.
        self.token: tuple[int, int] = (id(self), 0)
        # Seconds a book is used before its folders are looked at again (0:
        # every call). A bulk import asks for the book for every chunk it
        # submits and every batch it commits: listing the contract folders
        # and reading `sources` each time cost ~1 ms a call, ~1 us an event
        # of the committing process (store/tailer.py sets this while it reads
        # a backlog; a contract changed meanwhile is used within that time,
        # and parse processes and the committing process still agree on the
        # book by its token).
        self.recheck_every = 0.0
        self._checked_at = 0.0
        # The folders of the store's trace files, and the `sources` rows they were read from (count, newest id
        # and its path).
        self._folders: set[str] = set()
        self._sources_read: tuple[int, int, str] = (0, 0, "")

    def dirs(self, conn: sqlite3.Connection) -> list[Path]:
        if self._fixed_dirs is not None:
            return self._fixed_dirs
        return contract_dirs(self._cli, sorted(self._trace_folders(conn)))

    def _trace_folders(self, conn: sqlite3.Connection) -> set[str]:
        """The folders of the store's trace files: only the ``sources`` rows added since the last call are read.

        A file's row is never changed or removed once inserted (store/tailer.py), so the folders only grow. Every
        path read and parsed on each call cost ~35 us a trace file: 1.7 s a call for a store of 50,000 files, on
        the console's 1-second health check and on every batch an ingest process commits.
        """
        count = conn.execute("SELECT count(*) FROM sources").fetchone()[0]  # (counts an index's pages)
        folders = self._folders
        read, last, last_path = self._sources_read
        if last:
            row = conn.execute("SELECT path FROM sources WHERE id = ?", (last,)).fetchone()
            if count < read or row is None or row[0] != last_path:  # another store at this path (a restore)
                folders, read, last, last_path = set(), 0, 0, ""
        added = conn.execute("SELECT id, path FROM sources WHERE id > ? ORDER BY id", (last,)).fetchall()
        if added:
            folders = set(folders)  # (a new set: one handed out before is never changed under its reader)
            folders.update(str(Path(path).parent) for _, path in added)
            read, last, last_path = read + len(added), added[-1][0], added[-1][1]
        self._folders, self._sources_read = folders, (read, last, last_path)
        return folders

    def book(self, conn: sqlite3.Connection) -> ContractBook:
        now = time.monotonic()
        if self.recheck_every and self._sig is not None and now - self._checked_at < self.recheck_every:
            return self._book
        self._checked_at = now
        dirs = self.dirs(conn)
        sig = (tuple(dirs), _signature(dirs))
        if sig != self._sig:
            self._book = load_book(dirs)
            self._sig = sig
            self._reloads += 1
            self.token = (id(self), self._reloads)
            for problem in self._book.problems:
                log.warning("contract not used: %s", problem)
        return self._book

    def __call__(self, conn: sqlite3.Connection, result=None) -> None:
        # A batch committed without ``derive`` queued its tasks: finish them (and any a crash left).
        self.drain(conn)

    def derive(self, conn: sqlite3.Connection, prepared) -> None:
        """Inside a batch's transaction, after its rows: its tasks' violations.

        Incremental: a task whose events all came in this batch is checked
        on the facts ingestion built (``prepared.facts``); only a task that
        already had events is read back from the store.
        """
        tasks = prepared.tasks
        if not tasks:
            return
        book = self.book(conn)
        info = _task_info(conn, list(tasks))
        token_ok = prepared.book_token is not None and tuple(prepared.book_token) == self.token
        whole: dict[str, tuple[set, list]] = {}
        found: dict[str, list[Violation]] = {}
        grown: list[str] = []
        for task_id in tasks:
            row = info.get(task_id)
            if row is None or (book.get(row[1]) is None and not row[4]):
                continue  # no contract and nothing to clear
            f = prepared.facts.get(task_id)
            if f is not None:  # checked here, on the facts ingestion built
                if row[5] > f[2]:
                    grown.append(task_id)
                else:
                    whole[task_id] = (f[0], sorted(f[1], key=_seq) if len(f[1]) > 1 else f[1])
                continue
            verdict = prepared.checked.get(task_id) if token_ok else None
            if verdict is not None and verdict[0] == row[1] and row[5] == prepared.counts.get(task_id):
                vs = verdict[1] or []
                if any(v.rule == UNAPPROVED_ACTION for v in vs):
                    grown.append(task_id)  # an approval given in the console may cover it: checked here
                else:
                    found[task_id] = vs  # checked by a parse process, on all the task's events
            else:
                grown.append(task_id)
        if grown:
            whole.update(_load_facts(conn, grown))
        found.update(_judge(conn, book, info, whole))
        _store(conn, book, info, found)

    def drain(self, conn: sqlite3.Connection, also: Iterable[str] = ()) -> int:
        """Check the queued tasks (and ``also``); returns how many were checked.

        A task whose check fails (not the store: that raises at once) stays
        queued and the others go on; ContractError then says which.
        """
        from agentdeck.store.ingest import describe_error, is_store_error

        book = self.book(conn)
        failed: list[str] = []

        def check(ids: list[str]) -> None:
            try:
                recheck(conn, book, ids)
            except Exception as exc:
                if is_store_error(exc):
                    raise
                if len(ids) == 1:
                    failed.append(f"{ids[0]}: {describe_error(exc)}")
                    return
                for task_id in ids:
                    check([task_id])

        done = 0
        ids = sorted(set(also))
        for i in range(0, len(ids), 500):
            check(ids[i:i + 500])
            done += len(ids[i:i + 500])
        after = ""
        while True:
            ids = [t for (t,) in conn.execute(
                "SELECT task_id FROM contract_pending WHERE task_id > ? ORDER BY task_id LIMIT 500", (after,))]
            if not ids:
                break
            after = ids[-1]
            check(ids)
            done += len(ids)
        if failed:
            raise ContractError(f"{len(failed)} contract check(s) failed and stay queued; first: {failed[0]}")
        return done


_seq = operator.itemgetter(1)


def _task_info(conn: sqlite3.Connection, task_ids: list[str]) -> dict[str, tuple]:
    """task_id -> (task_id, agent, version, stage, violations, events)."""
    return {r[0]: tuple(r) for r in conn.execute(
        """SELECT task_id, agent, version, stage, violations, events FROM tasks
           WHERE task_id IN (SELECT value FROM json_each(?))""", (json.dumps(task_ids),))}


# Only these kinds' payloads are read; for the rest the kind is enough
# (tool results and reasoning carry the big payloads). Of tool calls and
# decisions the rules read one or two fields: SQLite extracts them, which
# costs less than decoding those payloads in Python.
_CHECKED_KINDS = ("escalation", "action")


def _load_facts(conn: sqlite3.Connection, task_ids: list[str]) -> dict[str, tuple[set, list]]:
    """The kinds and facts of these tasks, from their stored events, in seq order."""
    out: dict[str, tuple[set, list]] = {t: (set(), []) for t in task_ids}
    kinds_sql = ",".join(f"'{k}'" for k in _CHECKED_KINDS)
    for task_id, seq, kind, first, second, payload in conn.execute(
        f"""SELECT task_id, seq, kind,
                   CASE WHEN kind IN ('tool_call', 'decision') AND json_valid(payload)
                        THEN json_extract(payload, CASE kind WHEN 'tool_call' THEN '$.tool' ELSE '$.decision' END) END,
                   CASE WHEN kind = 'decision' AND json_valid(payload) THEN json_extract(payload, '$.escalation_id') END,
                   CASE WHEN kind IN ({kinds_sql}) THEN payload END
            FROM events WHERE task_id IN (SELECT value FROM json_each(?)) ORDER BY task_id, seq, id""",
        (json.dumps(task_ids),),
    ):
        kinds, facts = out[task_id]
        if payload is not None:
            try:
                e = json.loads(payload)
            except ValueError:
                continue  # not a valid event (ingestion never stores one): skipped
            if not isinstance(e, dict):
                continue
            kinds.add(kind)
            facts.append(fact_of_dict(e))
        elif kind == "tool_call" or kind == "decision":
            if first is None:
                continue
            kinds.add(kind)
            facts.append((kind, seq, str(first)) if kind == "tool_call" else (kind, seq, first, second))
        else:
            kinds.add(kind)
            if kind == "task_end":
                facts.append((kind, seq))
    return out


def _judge(conn: sqlite3.Connection, book: ContractBook, info: dict[str, tuple],
           facts: dict[str, tuple[set, list]]) -> dict[str, list[Violation]]:
    """Each task's violations. Approvals given in the console are looked up only where they could matter."""
    found: dict[str, list[Violation]] = {}
    unapproved: list[str] = []
    for task_id, (kinds, task_facts) in facts.items():
        _, agent, version, stage, _, _ = info[task_id]
        contract = book.get(agent)
        vs = [] if contract is None else check_facts(contract, kinds, task_facts, version=version, stage=stage)
        found[task_id] = vs
        if any(v.rule == UNAPPROVED_ACTION for v in vs):
            unapproved.append(task_id)
    if unapproved:
        # Approvals only ever clear unapproved actions, so only those tasks
        # are looked up. "+status": by task_id, not by walking every
        # approved escalation in the store.
        approved: dict[str, set[str]] = {}
        for task_id, esc_id in conn.execute(
            """SELECT task_id, escalation_id FROM escalations
               WHERE +status = 'approved' AND task_id IN (SELECT value FROM json_each(?))""",
            (json.dumps(unapproved),),
        ):
            approved.setdefault(task_id, set()).add(esc_id)
        for task_id in approved:
            kinds, task_facts = facts[task_id]
            _, agent, version, stage, _, _ = info[task_id]
            found[task_id] = check_facts(book.contracts[agent], kinds, task_facts, version=version, stage=stage,
                                         approved=approved[task_id])
    return found


def _store(conn: sqlite3.Connection, book: ContractBook, info: dict[str, tuple],
           found: dict[str, list[Violation]]) -> None:
    """Replace these tasks' violations (inside the caller's transaction)."""
    rows: list[tuple] = []
    changed: list[tuple[int, str, int]] = []
    for task_id, vs in found.items():
        _, agent, version, _, before, _ = info[task_id]
        if vs or before:
            changed.append((len(vs), task_id, before))
            path = _path(book, agent)
            rows.extend((task_id, v.seq, v.rule, v.detail, agent, version, path) for v in vs)
    if not changed:
        return
    conn.executemany("DELETE FROM violations WHERE task_id = ?", [(t,) for _, t, before in changed if before])
    if rows:
        conn.executemany(
            "INSERT INTO violations (task_id, seq, rule, detail, agent, version, contract) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    conn.executemany("UPDATE tasks SET violations = ? WHERE task_id = ?", [(n, t) for n, t, _ in changed])


def recheck(conn: sqlite3.Connection, book: ContractBook, task_ids: list[str]) -> dict[str, list[Violation]]:
    """Recompute and store the violations of these tasks from their stored events; unqueue them.

    One transaction, read and write: a batch ingested meanwhile by another
    process cannot be overwritten with violations computed before it.
    """
    found: dict[str, list[Violation]] = {t: [] for t in task_ids}
    with atomic(conn):
        info = _task_info(conn, task_ids)
        checked = [t for t in task_ids if t in info and (book.get(info[t][1]) is not None or info[t][4])]
        if checked:
            found.update(_judge(conn, book, info, _load_facts(conn, checked)))
            _store(conn, book, info, {t: found[t] for t in checked})
        conn.execute("DELETE FROM contract_pending WHERE task_id IN (SELECT value FROM json_each(?))",
                     (json.dumps(task_ids),))
    return found


def _path(book: ContractBook, agent: str | None) -> str:
    c = book.get(agent)
    return c.path if c is not None else ""


def book_for_store(conn: sqlite3.Connection, cli: Iterable[str | Path] | None = None) -> ContractBook:
    """The contracts ingestion uses for this store (its trace folders' and the defaults)."""
    return ContractCheck(cli=cli).book(conn)


def task_violations(conn: sqlite3.Connection, task_id: str) -> list[sqlite3.Row]:
    """A task's violations in step order (for the Tasks and Replay screens)."""
    return conn.execute(
        "SELECT task_id, seq, rule, detail, agent, version, contract FROM violations WHERE task_id = ? ORDER BY seq, rule",
        (task_id,),
    ).fetchall()
