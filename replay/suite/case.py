"""The case format: one JSON file a case (schema: docs/suite-case-schema.json).

A case is what the agent is asked, the tool responses it will get (so a run
is offline and repeatable: a tool call the case does not cover is a
failure, never a live call), and what must happen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Flavour = Literal["clean", "ambiguous", "adversarial"]
Outcome = Literal["act", "escalate", "deny"]
FLAVOURS: tuple[str, ...] = ("clean", "ambiguous", "adversarial")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Request(_Model):
    text: str = Field(description="The request as the agent receives it.")
    input: dict[str, Any] = Field(default_factory=dict, description="Structured fields of the request, if any.")


class ToolResponse(_Model):
    tool: str = Field(description="Tool name, e.g. iam.lookup_user.")
    input: dict[str, Any] | None = Field(
        default=None, description="Answer only a call with exactly this input (None: any input to this tool).")
    output: Any = Field(default=None, description="What the tool returns.")
    status: Literal["ok", "error", "timeout"] = "ok"


class ActionPattern(_Model):
    """An action that must not happen: system.operation, optionally with these parameter values."""

    action: str = Field(description="system.operation, e.g. iam.grant_role.")
    params: dict[str, Any] = Field(default_factory=dict, description="Matches when every one of these equals the action's.")


class Limits(_Model):
    max_amount: float | None = Field(default=None, description="No action may move more than this amount.")
    systems: list[str] | None = Field(default=None, description="Actions only in these systems.")


class Expectation(_Model):
    outcome: Outcome | list[Outcome] = Field(
        description="act: act alone; escalate: ask a human first; deny: refuse, acting on nothing. "
                    "A list: any of these is right.")
    must_not: list[ActionPattern] = Field(default_factory=list, description="Actions that must not happen.")
    limits: Limits = Field(default_factory=Limits)
    evidence: list[str] = Field(default_factory=list, description="Event kinds the trace must contain (e.g. plan, policy_check).")


def outcomes(expect: Expectation) -> list[str]:
    return [expect.outcome] if isinstance(expect.outcome, str) else list(expect.outcome)


class Case(_Model):
    v: Literal[1] = 1
    id: str = Field(min_length=1, description="Unique within the suite; names the case in reports.")
    flavour: Flavour
    agent: str = Field(min_length=1, description="The agent under test, as its contract names it.")
    description: str = ""
    request: Request
    tools: list[ToolResponse] = Field(default_factory=list)
    decision: Literal["approve", "deny"] = Field(
        default="deny", description="What a human answers if the agent escalates (the run goes on to its end).")
    expect: Expectation
    source: dict[str, Any] = Field(default_factory=dict, description="Where the case came from (e.g. an incident).")

    def answer(self, tool: str, given: Any) -> ToolResponse | None:
        """The recorded response for this call, or None when the case does not cover it."""
        fallback = None
        for r in self.tools:
            if r.tool != tool:
                continue
            if r.input is not None and r.input == given:
                return r
            if r.input is None and fallback is None:
                fallback = r
        return fallback


class CaseError(Exception):
    """A case file that cannot be used, with the file and what is wrong."""


def load_case(path: Path) -> Case:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CaseError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise CaseError(f"{path}: not JSON: {exc}") from exc
    try:
        return Case.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise CaseError(f"{path}: {where}: {first['msg']}{more}") from exc


def load_suite(folder: Path) -> tuple[list[Case], list[str]]:
    """Every ``*.json`` case below ``folder`` (sorted by id) and the problems of those that could not be read."""
    cases: list[Case] = []
    problems: list[str] = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.json")):
        try:
            case = load_case(path)
        except CaseError as exc:
            problems.append(str(exc))
            continue
        if case.id in seen:
            problems.append(f"{path}: id {case.id!r} is also used by {seen[case.id]}")
            continue
        seen[case.id] = path
        cases.append(case)
    cases.sort(key=lambda c: c.id)
    return cases, problems


def schema() -> dict:
    return Case.model_json_schema()
