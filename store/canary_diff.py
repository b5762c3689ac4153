"""Where a canary differs from its baseline, step by step.

The metrics say *that* a canary is worse; this says *where*: which tools,
tool sequences, policy outcomes, escalation reasons and actions occur in a
different share of the two versions' tasks, largest differences first, each
with an example task of either version to open side by side on Replay.

Each feature is counted once per task that has it (a share of tasks, not of
events), over the latest ``limit`` tasks of each version in the window, so
the cost stays bounded on a large store. The difference comes with a
two-proportion z-test p-value for ranking ties and to mark noise; it is a
description, not a verdict (the verdict is store.canary's).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass

from agentdeck.store import stats

KINDS = ("tool_call", "policy_check", "escalation", "action")
FEATURE_KINDS = ("tool", "sequence", "policy", "escalation reason", "action")
DEFAULT_LIMIT = 2000
MAX_SEQUENCE = 6  # tools shown in a sequence before it is cut with "…"


@dataclass(frozen=True)
class Difference:
    kind: str  # one of FEATURE_KINDS
    feature: str  # e.g. "iam.grant_role", "POL-IAM-7: allow", "lookup → check → grant"
    baseline_share: float
    canary_share: float
    baseline_tasks: int
    canary_tasks: int
    p: float
    baseline_example: str | None  # a baseline task with the feature (else one without)
    canary_example: str | None

    @property
    def delta(self) -> float:
        return self.canary_share - self.baseline_share


@dataclass(frozen=True)
class DiffReport:
    agent: str
    baseline: str
    canary: str
    n_baseline: int
    n_canary: int
    differences: list[Difference]


def _task_ids(conn: sqlite3.Connection, agent: str, version: str, since: float | None, until: float | None,
              limit: int) -> list[str]:
    where = "agent = ? AND version = ?"
    args: list[object] = [agent, version]
    if since is not None:
        where += " AND started >= ? AND started <= ?"
        args += [since, until]
    rows = conn.execute(f"SELECT task_id FROM tasks WHERE {where} ORDER BY started DESC LIMIT ?", [*args, limit])
    return [r[0] for r in rows]


def task_features(conn: sqlite3.Connection, task_ids: list[str]) -> dict[str, set[tuple[str, str]]]:
    """Each task's set of (kind, feature), read from its events with SQLite's JSON functions."""
    out: dict[str, set[tuple[str, str]]] = {t: set() for t in task_ids}
    sequences: dict[str, list[str]] = {t: [] for t in task_ids}
    for start in range(0, len(task_ids), 500):
        chunk = task_ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"""SELECT task_id, kind,
                       json_extract(payload, '$.tool'),
                       json_extract(payload, '$.policy_id'), json_extract(payload, '$.verdict'),
                       json_extract(payload, '$.reason'),
                       json_extract(payload, '$.system'), json_extract(payload, '$.operation'),
                       json_extract(payload, '$.status')
                FROM events
                WHERE task_id IN ({marks}) AND kind IN ({",".join("?" * len(KINDS))})
                ORDER BY task_id, seq""",
            [*chunk, *KINDS],
        )
        for task_id, kind, tool, policy, verdict, reason, system, operation, status in rows:
            features = out[task_id]
            if kind == "tool_call" and tool is not None:
                features.add(("tool", str(tool)))
                sequences[task_id].append(str(tool))
            elif kind == "policy_check" and policy is not None:
                features.add(("policy", f"{policy}: {verdict}"))
            elif kind == "escalation":
                features.add(("escalation reason", str(reason) if reason is not None else "(none given)"))
            elif kind == "action" and system is not None:
                features.add(("action", f"{system}.{operation} {status or 'ok'}"))
    for task_id, tools in sequences.items():
        # Repeats collapse (a retried lookup is the same step); long chains are cut.
        steps = [t for i, t in enumerate(tools) if i == 0 or tools[i - 1] != t]
        text = " → ".join(steps[:MAX_SEQUENCE]) + (" → …" if len(steps) > MAX_SEQUENCE else "")
        out[task_id].add(("sequence", text or "(no tools)"))
    return out


def differences(conn: sqlite3.Connection, agent: str, baseline: str, canary: str, *,
                since: float | None = None, until: float | None = None, limit: int = DEFAULT_LIMIT,
                top: int = 20, min_delta: float = 0.0) -> DiffReport:
    """The features whose share of tasks differs most between the two versions."""
    ids_b = _task_ids(conn, agent, baseline, since, until, limit)
    ids_c = _task_ids(conn, agent, canary, since, until, limit)
    fb, fc = task_features(conn, ids_b), task_features(conn, ids_c)
    count_b: Counter[tuple[str, str]] = Counter(f for fs in fb.values() for f in fs)
    count_c: Counter[tuple[str, str]] = Counter(f for fs in fc.values() for f in fs)
    nb, nc = len(ids_b), len(ids_c)
    if not nb or not nc:
        return DiffReport(agent, baseline, canary, nb, nc, [])
    example_b = _examples(fb)
    example_c = _examples(fc)
    out = []
    for feature in set(count_b) | set(count_c):
        kb, kc = count_b[feature], count_c[feature]
        share_b, share_c = kb / nb, kc / nc
        if abs(share_c - share_b) < min_delta or share_b == share_c:
            continue
        out.append(Difference(
            feature[0], feature[1], share_b, share_c, kb, kc, stats.two_proportion_z(kb, nb, kc, nc).p,
            example_b.get(feature, ids_b[0]), example_c.get(feature, ids_c[0]),
        ))
    out.sort(key=lambda d: (-abs(d.delta), d.p, d.kind, d.feature))
    return DiffReport(agent, baseline, canary, nb, nc, out[:top])


def _examples(features: dict[str, set[tuple[str, str]]]) -> dict[tuple[str, str], str]:
    """The newest task showing each feature (task ids arrive newest first)."""
    out: dict[tuple[str, str], str] = {}
    for task_id, fs in features.items():
        for f in fs:
            out.setdefault(f, task_id)
    return out
