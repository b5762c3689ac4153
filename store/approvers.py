"""Who may approve what: approver rules and the two-person rule.

Rules come from the config file's ``[approvers]`` table (``docs/notify.md``)::

    [approvers]
    two_person = ["critical"]          # risks that need two different approvers
    match = "user"                     # rules name --user names ("user") or OS accounts ("os_user")

    [[approvers.rules]]
    name = "payments on-call"
    users = ["alice", "bob"]
    risks = ["low", "medium", "high"]
    systems = ["payments", "crm*"]     # the proposed action's system; shell-style patterns

With no rules, everyone may approve everything (the default, and what
``decisions.decide`` assumes when it is given no rules). With rules, an
approval needs a rule that names the user and covers the escalation's risk
and system. A deny is never restricted: saying no is always safe.
"""

from __future__ import annotations

import fnmatch
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agentdeck.store.origin import Origin

Risk = Literal["low", "medium", "high", "critical"]
RISKS: tuple[Risk, ...] = ("low", "medium", "high", "critical")
ANYONE = "*"


class ApproverRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    users: list[str] = Field(min_length=1)  # "*": anyone
    risks: list[Risk] = Field(default_factory=lambda: list(RISKS))
    systems: list[str] = Field(default_factory=lambda: [ANYONE])  # shell-style patterns

    def covers_user(self, user: str) -> bool:
        return ANYONE in self.users or user in self.users

    def covers(self, risk: str, system: str) -> bool:
        return risk in self.risks and any(fnmatch.fnmatchcase(system, p) for p in self.systems)


class ApproverRules(BaseModel):
    """The ``[approvers]`` table. The defaults let everyone approve everything, once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[ApproverRule] = Field(default_factory=list)
    two_person: list[Risk] = Field(default_factory=list)
    # Which name the rules (and the two-person rule's "different") look at:
    # "user" is --user / $AGENTDECK_USER; "os_user" the OS account, which an
    # operator cannot pick for themselves.
    match: Literal["user", "os_user"] = "user"

    def who(self, by: str, origin: Origin) -> str:
        if self.match == "os_user":
            return origin.os_user or "(unknown OS user)"
        return by

    def refusal(self, user: str, risk: str, system: str) -> str | None:
        """None if ``user`` may approve ``risk`` on ``system``; otherwise why not, naming the rule."""
        if not self.rules:
            return None
        theirs = [(i, r) for i, r in enumerate(self.rules, 1) if r.covers_user(user)]
        if any(r.covers(risk, system) for _, r in theirs):
            return None
        what = f"{user} may not approve {risk} risk on {system or '(no system)'}"
        if not theirs:
            return f"{what}: no approver rule names {user}"
        parts = [f"{_name(i, r)} allows {', '.join(r.risks)} risk on {', '.join(r.systems)}" for i, r in theirs]
        return f"{what}: {'; '.join(parts)}"

    def needs_two(self, risk: str) -> bool:
        return risk in self.two_person


def _name(index: int, rule: ApproverRule) -> str:
    return f"rule {rule.name!r}" if rule.name else f"approver rule {index}"


OPEN = ApproverRules()
