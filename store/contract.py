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
import os
import sqlite3
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from collections.abc import Iterable
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


class Done(_Model):
    """What a finished task must carry as evidence."""

    require_events: list[str] = Field(default_factory=lambda: ["plan", "policy_check"])
    action_evidence: list[Literal["justification", "before", "after", "compensation"]] = Field(
        default_factory=lambda: ["justification", "before", "after", "compensation"])


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
    tools: Allow = Field(default_factory=Allow)
    endpoints: Allow = Field(default_factory=Allow)
    actions: dict[str, ActionRule] = Field(default_factory=dict)
    limits: Limits = Field(default_factory=Limits)
    never: Never = Field(default_factory=Never)
    done: Done = Field(default_factory=Done)
    canary: CanarySettings = Field(default_factory=CanarySettings)
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
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


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


def _needs_approval(rule: ActionRule, contract: Contract, event: dict) -> str | None:
    """Why this action needs an approved escalation, or None."""
    amount = event.get("amount")
    if rule.max_amount is not None and isinstance(amount, (int, float)) and amount > rule.max_amount:
        return f"amount {amount:g} above {rule.max_amount:g}"
    if RISK_RANK[rule.risk] >= RISK_RANK[contract.limits.escalate_at_risk]:
        return f"risk {rule.risk} needs approval"
    params = event.get("params") or {}
    for name, values in rule.approval_when.items():
        if name in params and params[name] in values:
            return f"{name}={params[name]} needs approval"
    return None


def effective_stage(contract: Contract | None, version: str | None, task_stage: str | None) -> str | None:
    """The stage the contract gives the version, else the one the task declared."""
    if contract is not None and version in contract.versions:
        return contract.versions[version]
    return task_stage


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
    out: list[Violation] = []
    tools = set(contract.tools.allow)
    never_tools = set(contract.never.tools)
    never_actions = set(contract.never.actions)
    # The agent's own decision events count from their step on (acting
    # before the approval arrived is acting without it); approvals given in
    # the console carry no step and count throughout.
    approvals = set(approved)
    contract_stage = contract.versions.get(version) if version is not None else None
    shadow = "shadow" in (contract_stage, stage)
    escalations: list[dict] = []
    kinds: set[str] = set()
    end_seq: int | None = None

    def endpoint(seq: int, url: Any, what: str) -> None:
        host = _host(url)
        if host is not None and not _endpoint_allowed(host, contract.endpoints.allow):
            out.append(Violation(seq, ENDPOINT_NOT_ALLOWED, f"{what} calls {host}, not in endpoints.allow"))

    for e in events:
        kind = e.get("kind")
        seq = int(e.get("seq", -1))
        kinds.add(kind)
        if kind == "tool_call":
            tool = str(e.get("tool"))
            if tool in never_tools:
                out.append(Violation(seq, FORBIDDEN, f"called tool {tool}, which the contract forbids"))
            elif tool not in tools:
                out.append(Violation(seq, TOOL_NOT_ALLOWED, f"called tool {tool}, not in tools.allow"))
        elif kind == "decision":
            if e.get("decision") == "approve":
                approvals.add(e.get("escalation_id"))
        elif kind == "escalation":
            escalations.append(e)
            endpoint(seq, e.get("callback_url"), "escalation callback")
        elif kind == "action":
            name = f"{e.get('system')}.{e.get('operation')}"
            if name in never_actions:
                out.append(Violation(seq, FORBIDDEN, f"action {name}, which the contract forbids"))
            elif name not in contract.actions:
                out.append(Violation(seq, ACTION_NOT_ALLOWED, f"action {name}, not among the contract's actions"))
            else:
                why = _needs_approval(contract.actions[name], contract, e)
                if why is not None and not _approved_before(e, name, escalations, approvals):
                    out.append(Violation(seq, UNAPPROVED_ACTION, f"{name} without an approved escalation ({why})"))
            if shadow:
                out.append(Violation(seq, SHADOW_ACTION, f"{name} executed in shadow mode"))
            comp = e.get("compensation")
            if isinstance(comp, dict) and comp.get("type") == "http":
                endpoint(seq, comp.get("url"), "compensation")
            missing = _missing_action_evidence(contract, e)
            if missing:
                out.append(Violation(seq, MISSING_EVIDENCE, f"{name} without {', '.join(missing)}"))
        elif kind == "task_end":
            end_seq = seq
    if end_seq is not None:
        missing = [k for k in contract.done.require_events if k not in kinds]
        if missing:
            out.append(Violation(end_seq, MISSING_EVIDENCE, f"ended without {', '.join(missing)} events"))
    out.sort(key=lambda v: (v.seq, v.rule))
    return out


def _approved_before(action: dict, name: str, escalations: list[dict], approvals: set) -> bool:
    """An escalation for this action, raised before it, approved, covering its amount."""
    amount = action.get("amount")
    for esc in escalations:
        proposed = esc.get("proposed_action") or {}
        if f"{proposed.get('system')}.{proposed.get('operation')}" != name:
            continue
        if esc.get("escalation_id") not in approvals:
            continue
        approved_amount = proposed.get("amount")
        if isinstance(amount, (int, float)) and isinstance(approved_amount, (int, float)) and amount > approved_amount:
            continue  # approved for less than was done
        return True
    return False


def _missing_action_evidence(contract: Contract, e: dict) -> list[str]:
    missing = []
    for name in contract.done.action_evidence:
        if name == "compensation" and e.get("status") != "ok":
            continue  # nothing to undo for a failed action
        value = e.get(name)
        if value is None or value == "":
            missing.append(name)
    return missing


# -- the post-commit hook ------------------------------------------------------


class ContractCheck:
    """Post-commit hook: recompute touched tasks' violations from their events.

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

    def dirs(self, conn: sqlite3.Connection) -> list[Path]:
        if self._fixed_dirs is not None:
            return self._fixed_dirs
        folders = sorted({str(Path(p).parent) for (p,) in conn.execute("SELECT DISTINCT path FROM sources")})
        return contract_dirs(self._cli, folders)

    def book(self, conn: sqlite3.Connection) -> ContractBook:
        dirs = self.dirs(conn)
        sig = (tuple(dirs), _signature(dirs))
        if sig != self._sig:
            self._book = load_book(dirs)
            self._sig = sig
            for problem in self._book.problems:
                log.warning("contract not used: %s", problem)
        return self._book

    def __call__(self, conn: sqlite3.Connection, result) -> None:
        tasks = sorted(result.tasks)
        if not tasks:
            return
        book = self.book(conn)
        for i in range(0, len(tasks), 500):
            recheck(conn, book, tasks[i:i + 500])


# Only these kinds' payloads are read; for the rest the kind is enough
# (tool results and reasoning carry the big payloads). Of tool calls and
# decisions the rules read one or two fields: SQLite extracts them, which
# costs less than decoding those payloads in Python (decoding was about a
# third of a bulk import's check).
_CHECKED_KINDS = ("escalation", "action")


def recheck(conn: sqlite3.Connection, book: ContractBook, task_ids: list[str]) -> dict[str, list[Violation]]:
    """Recompute and store the violations of these tasks (one transaction, only if anything changes)."""
    marks = ",".join("?" * len(task_ids))
    info = {r[0]: r for r in conn.execute(
        f"SELECT task_id, agent, version, stage, violations FROM tasks WHERE task_id IN ({marks})", task_ids)}
    checked = [t for t in task_ids if t in info and (book.get(info[t][1]) is not None or info[t][4])]
    found: dict[str, list[Violation]] = {t: [] for t in task_ids}
    if not checked:
        return found
    marks = ",".join("?" * len(checked))
    events: dict[str, list[dict]] = {t: [] for t in checked}
    kinds = ",".join(f"'{k}'" for k in _CHECKED_KINDS)
    for task_id, seq, kind, first, second, payload in conn.execute(
        f"""SELECT task_id, seq, kind,
                   CASE WHEN kind IN ('tool_call', 'decision') AND json_valid(payload)
                        THEN json_extract(payload, CASE kind WHEN 'tool_call' THEN '$.tool' ELSE '$.decision' END) END,
                   CASE WHEN kind = 'decision' AND json_valid(payload) THEN json_extract(payload, '$.escalation_id') END,
                   CASE WHEN kind IN ({kinds}) THEN payload END
            FROM events WHERE task_id IN ({marks}) ORDER BY task_id, seq, id""", checked
    ):
        if payload is None:
            if kind == "tool_call" or kind == "decision":
                if first is None:
                    continue  # not a valid event (ingestion never stores one): skipped, like an undecodable payload
                events[task_id].append({"kind": kind, "seq": seq, "tool": first} if kind == "tool_call" else
                                       {"kind": kind, "seq": seq, "decision": first, "escalation_id": second})
            else:
                events[task_id].append({"kind": kind, "seq": seq})
            continue
        try:
            events[task_id].append(json.loads(payload))
        except ValueError:
            continue
    approved: dict[str, set[str]] = {}
    # "+status": look the tasks up by task_id. On status, SQLite would walk
    # every approved escalation in the store for each call (40 ms a call at
    # 1M events, about a third of a bulk import's check).
    for task_id, esc_id in conn.execute(
        f"SELECT task_id, escalation_id FROM escalations WHERE +status = 'approved' AND task_id IN ({marks})", checked
    ):
        approved.setdefault(task_id, set()).add(esc_id)
    rows = []
    changed = []
    for task_id in checked:
        _, agent, version, stage, before = info[task_id]
        contract = book.get(agent)
        vs = [] if contract is None else check_task(
            contract, events[task_id], version=version, stage=stage, approved=approved.get(task_id, ()))
        found[task_id] = vs
        if vs or before:
            changed.append((task_id, len(vs)))
            rows.extend((task_id, v.seq, v.rule, v.detail, agent, version, contract.path) for v in vs)
    if not changed:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("DELETE FROM violations WHERE task_id = ?", [(t,) for t, _ in changed])
        if rows:
            conn.executemany(
                "INSERT INTO violations (task_id, seq, rule, detail, agent, version, contract) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        conn.executemany("UPDATE tasks SET violations = ? WHERE task_id = ?", [(n, t) for t, n in changed])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


def book_for_store(conn: sqlite3.Connection, cli: Iterable[str | Path] | None = None) -> ContractBook:
    """The contracts ingestion uses for this store (its trace folders' and the defaults)."""
    return ContractCheck(cli=cli).book(conn)


def task_violations(conn: sqlite3.Connection, task_id: str) -> list[sqlite3.Row]:
    """A task's violations in step order (for the Tasks and Replay screens)."""
    return conn.execute(
        "SELECT task_id, seq, rule, detail, agent, version, contract FROM violations WHERE task_id = ? ORDER BY seq, rule",
        (task_id,),
    ).fetchall()
