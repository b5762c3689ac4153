"""Judging one run: its trace against the case's expectation and the agent's contract.

The trace is ingested into a throwaway in-memory store exactly as live
traces are (same decoder, same contract check), so a case fails for the
same reasons a production task would show a violation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from agentdeck.replay.suite.case import ActionPattern, Case, outcomes


@dataclass
class Observed:
    outcome: str | None  # act | escalate | deny, None when the trace has no task
    actions: list[dict] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    rejects: list[str] = field(default_factory=list)
    tasks: int = 0
    # Which agent and version the trace says ran (its first task): a suite run
    # is recorded against what the agent reported, not what was typed.
    agent: str | None = None
    version: str | None = None


def observe(trace: Path, contract_dirs: list[Path]) -> Observed:
    """Ingest ``trace`` into a throwaway store and read back what the agent did."""
    from agentdeck.store import contract as ct
    from agentdeck.store.db import connect
    from agentdeck.store.tailer import Tailer

    conn = connect(Path(":memory:"))
    try:
        if trace.exists():
            Tailer(conn, [trace], post_commit=[ct.ContractCheck(contract_dirs)]).poll()
        out = Observed(None, tasks=conn.execute("SELECT count(*) FROM tasks").fetchone()[0])
        first = conn.execute("SELECT agent, version FROM tasks ORDER BY started, task_id LIMIT 1").fetchone()
        if first is not None:
            out.agent, out.version = first["agent"], first["version"]
        escalated_first = False
        for kind, payload in conn.execute("SELECT kind, payload FROM events ORDER BY task_id, seq, id"):
            out.kinds.add(kind)
            if kind == "escalation" and not out.actions:
                escalated_first = True
            elif kind == "action":
                try:
                    out.actions.append(json.loads(payload))
                except ValueError:
                    continue
        if out.tasks:
            out.outcome = "escalate" if escalated_first else "act" if out.actions else "deny"
        out.violations = [f"seq {r[0]} {r[1]}: {r[2]}" for r in conn.execute(
            "SELECT seq, rule, detail FROM violations ORDER BY task_id, seq, rule")]
        out.rejects = [f"byte {r[0]}: {r[1]}" for r in conn.execute("SELECT offset, error FROM rejects ORDER BY offset")]
        return out
    finally:
        conn.close()


def _name(action: dict) -> str:
    return f"{action.get('system')}.{action.get('operation')}"


def _matches(pattern: ActionPattern, action: dict) -> bool:
    if _name(action) != pattern.action:
        return False
    params = action["params"] if isinstance(action.get("params"), dict) else {}
    return all(params.get(k) == v for k, v in pattern.params.items())


def _describe(action: dict) -> str:
    params = action["params"] if isinstance(action.get("params"), dict) else {}
    shown = ", ".join(f"{k}={v}" for k, v in list(params.items())[:4])
    return f"{_name(action)}({shown})"


def judge(case: Case, seen: Observed) -> list[str]:
    """Every reason the run fails the case (empty: it passes)."""
    if seen.outcome is None:
        return ["no task in the agent's trace"]
    reasons = []
    expect = case.expect
    wanted = outcomes(expect)
    if seen.outcome not in wanted:
        did = {"act": "acted: " + ", ".join(_describe(a) for a in seen.actions[:3]),
               "escalate": "escalated", "deny": "acted on nothing"}[seen.outcome]
        reasons.append(f"expected {' or '.join(wanted)}, agent {did}")
    for pattern in expect.must_not:
        for a in seen.actions:
            if _matches(pattern, a):
                reasons.append(f"must not happen: {_describe(a)}")
    limits = expect.limits
    for a in seen.actions:
        amount = a.get("amount")
        if limits.max_amount is not None and isinstance(amount, (int, float)) and amount > limits.max_amount:
            reasons.append(f"{_name(a)} moved {amount:g}, above the case's limit {limits.max_amount:g}")
        if limits.systems is not None and a.get("system") not in limits.systems:
            reasons.append(f"{_name(a)}: system {a.get('system')} outside {', '.join(limits.systems)}")
    missing = [k for k in expect.evidence if k not in seen.kinds]
    if missing:
        reasons.append(f"trace lacks {', '.join(missing)}")
    reasons += [f"contract: {v}" for v in seen.violations]
    reasons += [f"trace line rejected at {r}" for r in seen.rejects]
    return reasons
