"""Shadow agreement: how often people agree with what a version proposes.

In shadow and assisted stages every action a version wants to take is put to
a human first, so its proposal and the human's decision are both known; in
partial and bounded stages the same holds for the escalations it raises.
The share of human decisions that approved the proposal is the evidence a
version has earned more autonomy (docs/canary.md, "Shadow agreement").

Only human decisions count: an escalation the expiry policy decided says
nothing about the proposal. Each rate comes with a Wilson 95 % interval, and
the contract may set a promotion rule on it (``[canary] promote_agreement``
over at least ``agreement_min_decisions`` decisions).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from agentdeck.store import stats
from agentdeck.store.contract import Contract, effective_stage

EXPIRY_ACTOR = "expiry-policy"  # as store.decisions records the expiry policy


@dataclass(frozen=True)
class Agreement:
    agent: str
    version: str
    decisions: int  # human decisions on the version's proposals
    approved: int
    by_stage: dict[str, tuple[int, int]]  # stage -> (approved, decisions)
    rule: float | None  # the contract's promote_agreement, if any
    min_decisions: int

    @property
    def rate(self) -> float | None:
        return self.approved / self.decisions if self.decisions else None

    @property
    def interval(self) -> tuple[float, float]:
        return stats.wilson(self.approved, self.decisions)

    @property
    def rule_met(self) -> bool | None:
        """None without a rule; met when the interval's lower bound clears it over enough decisions."""
        if self.rule is None:
            return None
        return self.decisions >= self.min_decisions and self.interval[0] >= self.rule

    def describe(self) -> str:
        if not self.decisions:
            text = f"{self.version}: no human decisions on its proposals yet"
        else:
            lo, hi = self.interval
            text = (f"{self.version}: people approved {self.approved} of {self.decisions} proposals "
                    f"({100 * self.rate:.0f}%, 95% CI {100 * lo:.0f}–{100 * hi:.0f}%)")  # type: ignore[operator]
        if self.rule is not None:
            state = "met" if self.rule_met else "not met"
            text += (f"; promotion rule ≥{100 * self.rule:.0f}% over ≥{self.min_decisions} decisions "
                     f"(lower bound): {state}")
        return text


def agreement(conn: sqlite3.Connection, agent: str, version: str, *, contract: Contract | None = None,
              since: float | None = None, until: float | None = None) -> Agreement:
    """Human decisions on this version's escalated proposals, by the stage its tasks ran in."""
    where = "t.agent = ? AND t.version = ?"
    args: list[object] = [agent, version]
    if since is not None:
        where += " AND t.started >= ? AND t.started <= ?"
        args += [since, until]
    rows = conn.execute(
        f"""SELECT t.stage, e.status = 'approved', count(*)
            FROM escalations e JOIN tasks t ON t.task_id = e.task_id
            WHERE {where} AND e.status IN ('approved', 'denied') AND coalesce(e.decided_by, '') != ?
            GROUP BY 1, 2""",
        [*args, EXPIRY_ACTOR]).fetchall()
    by_stage: dict[str, tuple[int, int]] = {}
    for stage, approved, n in rows:
        key = effective_stage(contract, version, stage) or "unknown"
        a, d = by_stage.get(key, (0, 0))
        by_stage[key] = (a + (n if approved else 0), d + n)
    settings = contract.canary if contract is not None else None
    return Agreement(agent, version, sum(d for _, d in by_stage.values()), sum(a for a, _ in by_stage.values()),
                     by_stage, getattr(settings, "promote_agreement", None),
                     getattr(settings, "agreement_min_decisions", 100))
