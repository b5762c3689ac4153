"""Backtest a contract change against the tasks already in the store.

Before anyone adopts a new contract, ``agentdeck check --store --contracts
NEW_DIR --diff`` replays every stored task through both the contracts in
force and the new ones, and lists the tasks whose violations or whose
required escalations would change. Nothing is written: the store's recorded
violations stay as they are until the new contract is adopted.

A *required escalation* is an action the contract says may not run without
an approved escalation (an amount above ``max_amount``, a risk at or above
``escalate_at_risk``, an ``approval_when`` parameter): the change that
matters most to the people who will approve, and to the agent's autonomy.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field

from agentdeck.store import contract as ct

BATCH = 500


@dataclass(frozen=True)
class Change:
    task_id: str
    agent: str | None
    version: str | None
    added: list[ct.Violation] = field(default_factory=list)  # violations only under the new contract
    removed: list[ct.Violation] = field(default_factory=list)  # violations only under the old one
    newly_gated: list[tuple[int, str, str]] = field(default_factory=list)  # (seq, action, why) needing approval now
    no_longer_gated: list[tuple[int, str, str]] = field(default_factory=list)


@dataclass
class Backtest:
    tasks: int = 0  # tasks replayed (their agent has a contract on either side)
    skipped: int = 0  # tasks whose agent has a contract on neither side
    changes: list[Change] = field(default_factory=list)
    agents_changed: set[str] = field(default_factory=set)  # agents whose contract differs


def _task_batches(conn: sqlite3.Connection) -> Iterator[list[sqlite3.Row]]:
    last = ""
    while True:
        rows = conn.execute(
            "SELECT task_id, agent, version, stage FROM tasks WHERE task_id > ? ORDER BY task_id LIMIT ?",
            (last, BATCH)).fetchall()
        if not rows:
            return
        yield rows
        last = rows[-1]["task_id"]


def _events(conn: sqlite3.Connection, task_ids: list[str]) -> dict[str, list[dict]]:
    marks = ",".join("?" * len(task_ids))
    out: dict[str, list[dict]] = {t: [] for t in task_ids}
    for task_id, payload in conn.execute(
            f"SELECT task_id, payload FROM events WHERE task_id IN ({marks}) ORDER BY task_id, seq, id", task_ids):
        try:
            event = json.loads(payload)
        except ValueError:
            continue  # ingestion stores only valid events; a damaged row is skipped, as the live check does
        if isinstance(event, dict):
            out[task_id].append(event)
    return out


def _approved(conn: sqlite3.Connection, task_ids: list[str]) -> dict[str, set[str]]:
    marks = ",".join("?" * len(task_ids))
    out: dict[str, set[str]] = {}
    for task_id, esc in conn.execute(
            f"SELECT task_id, escalation_id FROM escalations WHERE +status = 'approved' AND task_id IN ({marks})",
            task_ids):
        out.setdefault(task_id, set()).add(esc)
    return out


def _gated(contract: ct.Contract | None, events: list[dict]) -> set[tuple[int, str, str]]:
    """The task's actions this contract lets run only after an approved escalation: (seq, action, why)."""
    if contract is None:
        return set()
    out = set()
    for e in events:
        if e.get("kind") != "action":
            continue
        name = f"{e.get('system')}.{e.get('operation')}"
        rule = contract.actions.get(name)
        why = ct._needs_approval(rule, contract, e) if rule is not None else None
        if why is not None:
            out.add((int(e.get("seq", -1)), name, why))
    return out


def _key(v: ct.Violation) -> tuple[int, str]:
    return (v.seq, v.rule)


def backtest(conn: sqlite3.Connection, old: ct.ContractBook, new: ct.ContractBook) -> Backtest:
    """Replay every stored task through ``old`` and ``new``; what would change."""
    result = Backtest()
    agents = set(old.contracts) | set(new.contracts)
    result.agents_changed = {a for a in agents if old.get(a) is None or new.get(a) is None
                             or _same(old.contracts[a]) != _same(new.contracts[a])}
    for rows in _task_batches(conn):
        relevant = [r for r in rows if r["agent"] in result.agents_changed]
        result.skipped += sum(1 for r in rows if old.get(r["agent"]) is None and new.get(r["agent"]) is None)
        result.tasks += sum(1 for r in rows if old.get(r["agent"]) is not None or new.get(r["agent"]) is not None)
        if not relevant:
            continue  # an agent whose contract did not change cannot change
        ids = [r["task_id"] for r in relevant]
        events, approved = _events(conn, ids), _approved(conn, ids)
        for r in relevant:
            task_events, task_approved = events[r["task_id"]], approved.get(r["task_id"], set())
            before = _check(old.get(r["agent"]), task_events, r, task_approved)
            after = _check(new.get(r["agent"]), task_events, r, task_approved)
            gated_before = _gated(old.get(r["agent"]), task_events)
            gated_after = _gated(new.get(r["agent"]), task_events)
            keys_before, keys_after = {_key(v) for v in before}, {_key(v) for v in after}
            change = Change(
                r["task_id"], r["agent"], r["version"],
                added=[v for v in after if _key(v) not in keys_before],
                removed=[v for v in before if _key(v) not in keys_after],
                newly_gated=sorted(g for g in gated_after if (g[0], g[1]) not in _by_action(gated_before)),
                no_longer_gated=sorted(g for g in gated_before if (g[0], g[1]) not in _by_action(gated_after)),
            )
            if change.added or change.removed or change.newly_gated or change.no_longer_gated:
                result.changes.append(change)
    return result


def _check(contract: ct.Contract | None, events: list[dict], task: sqlite3.Row, approved: set[str]) -> list[ct.Violation]:
    if contract is None:
        return []
    return ct.check_task(contract, events, version=task["version"], stage=task["stage"], approved=approved)


def _by_action(gated: set[tuple[int, str, str]]) -> set[tuple[int, str]]:
    return {(seq, name) for seq, name, _ in gated}


def _same(c: ct.Contract) -> str:
    """A contract's content, without where it was read from."""
    return c.model_dump_json(exclude={"path", "description"})
