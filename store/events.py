"""The agentdeck trace format, version 1: one JSON object a line.

Every line is an *event*. All events share an envelope (``v``, ``kind``,
``ts``, ``task_id``, ``seq``) and add the fields of their kind. The models
here are the single source of truth: the JSON Schema in
``docs/trace-schema.json`` is generated from them (``agentdeck schema``) and
``docs/trace-format.md`` describes them for people.

Events of one task are ordered by ``seq`` (0, 1, 2, ...), not by arrival:
a task's events may be split over several files and arrive out of order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

FORMAT_VERSION = 1

Cohort = Literal["baseline", "canary"]
Stage = Literal["shadow", "assisted", "partial", "bounded"]
Risk = Literal["low", "medium", "high", "critical"]
Verdict = Literal["allow", "deny", "escalate"]
Outcome = Literal["success", "failed", "denied", "escalated", "aborted", "timeout"]

# Identifiers are short printable strings; bounding them keeps a hostile
# trace from bloating indexes or the screen.
Ident = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=20_000)]

# Numbers that reach the store's columns and the contract checks (amounts,
# costs, token counts, latencies) must be JSON numbers, finite and in range.
# A string such as "100000", NaN, Infinity or an integer beyond SQLite's
# 64 bits is rejected with a reason: never coerced to a value a contract
# check would then skip, and never left to crash the commit of a whole batch.
MAX_COUNT = 10**12  # a trillion tokens: beyond any model call, far inside 64 bits even summed per batch
MAX_MONEY = 1e12  # dollars: summed per task, so bounded to stay finite
Amount = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_COUNT)]
Money = Annotated[float, Field(strict=True, ge=0, le=MAX_MONEY, allow_inf_nan=False)]
Millis = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentVersion(_Model):
    """What makes up one behaviour version of an agent."""

    id: Ident = Field(description="Version label, e.g. 'v1' or '2026-11-20.canary'.")
    prompt: Ident | None = Field(None, description="Prompt version.")
    model: Ident | None = Field(None, description="Model name and version.")
    policy: Ident | None = Field(None, description="Policy bundle version.")
    tool_schema: Ident | None = Field(None, description="Tool schema version.")


class HttpCompensation(_Model):
    """Undo an action with an HTTP request. The idempotency key makes a retry safe."""

    type: Literal["http"] = "http"
    method: Literal["POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: Annotated[str, Field(max_length=2000)]
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    idempotency_key: Ident


class HandlerCompensation(_Model):
    """Undo an action with a named handler the operator registered."""

    type: Literal["handler"] = "handler"
    handler: Ident
    args: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: Ident


Compensation = Annotated[HttpCompensation | HandlerCompensation, Field(discriminator="type")]


class ProposedAction(_Model):
    system: Ident = Field(description="Target system, e.g. 'iam' or 'payments'.")
    operation: Ident = Field(description="What would be done, e.g. 'grant_role'.")
    params: dict[str, Any] = Field(default_factory=dict)
    amount: Amount | None = Field(None, description="Money or quantity at stake, if any (a finite JSON number).")


class DownstreamResponse(_Model):
    status: int | None = None
    body: Any = None


class _Event(_Model):
    v: Literal[1] = Field(1, description="Trace format version.")
    ts: datetime = Field(description="When the event happened (RFC 3339, UTC recommended).")
    task_id: Ident
    seq: Annotated[int, Field(ge=0, lt=10_000_000)] = Field(
        description="Position of the event in its task, from 0."
    )


class TaskStart(_Event):
    """A task begins: who is acting, with which version, on which request."""

    kind: Literal["task_start"] = "task_start"
    request_id: Ident
    agent: Ident
    agent_version: AgentVersion
    cohort: Cohort = "baseline"
    stage: Stage = "bounded"
    request: Text = Field("", description="The request in plain language.")
    input: dict[str, Any] = Field(default_factory=dict, description="Structured request fields.")


class Plan(_Event):
    """The agent's intent in plain language, and the steps it means to take."""

    kind: Literal["plan"] = "plan"
    summary: Text
    steps: list[Text] = Field(default_factory=list)


class Reasoning(_Event):
    """A model call: what the agent thought, with the tokens it used."""

    kind: Literal["reasoning"] = "reasoning"
    model: Ident | None = None
    summary: Text = ""
    tokens_in: Count = 0
    tokens_out: Count = 0
    status: Literal["ok", "error"] = "ok"


class ToolCall(_Event):
    kind: Literal["tool_call"] = "tool_call"
    call_id: Ident
    tool: Ident
    input: Any = None


class ToolResult(_Event):
    kind: Literal["tool_result"] = "tool_result"
    call_id: Ident
    tool: Ident
    output: Any = None
    status: Literal["ok", "error", "timeout"] = "ok"
    latency_ms: Millis = 0
    retry: Count = Field(0, description="0 for the first attempt, 1.. for retries.")


class PolicyCheck(_Event):
    kind: Literal["policy_check"] = "policy_check"
    policy_id: Ident
    policy_version: Ident
    verdict: Verdict
    reason: Text = ""
    subject: Ident | None = Field(None, description="The action or tool call the check was about.")


class Escalation(_Event):
    """The agent may not act alone: it asks a human and waits."""

    kind: Literal["escalation"] = "escalation"
    escalation_id: Ident
    proposed_action: ProposedAction
    risk: Risk
    reason: Text
    deadline: datetime
    policy_id: Ident | None = None
    justification: Text = ""
    callback_url: Annotated[str, Field(max_length=2000)] | None = Field(
        None, description="Where the decision is POSTed, if the operator allows the host."
    )


class Decision(_Event):
    """A human decision on an escalation, as the agent received it."""

    kind: Literal["decision"] = "decision"
    escalation_id: Ident
    decision: Literal["approve", "deny", "expire"]
    decided_by: Ident
    reason: Text = ""


class Action(_Event):
    """The agent changed something in a real system."""

    kind: Literal["action"] = "action"
    action_id: Ident
    system: Ident
    operation: Ident
    params: dict[str, Any] = Field(default_factory=dict)
    amount: Amount | None = Field(None, description="Money or quantity at stake, if any (a finite JSON number).")
    before: Any = None
    after: Any = None
    response: DownstreamResponse = Field(default_factory=DownstreamResponse)
    status: Literal["ok", "failed"] = "ok"
    justification: Text = ""
    compensation: Compensation | None = None


class CompensationDone(_Event):
    """A compensation (business undo) ran for an earlier action."""

    kind: Literal["compensation"] = "compensation"
    action_id: Ident
    status: Literal["ok", "failed"]
    by: Ident = "agent"
    response: DownstreamResponse = Field(default_factory=DownstreamResponse)


class TaskEnd(_Event):
    kind: Literal["task_end"] = "task_end"
    outcome: Outcome
    tokens_in: Count = 0
    tokens_out: Count = 0
    cost_usd: Money = 0
    latency_ms: Millis = 0
    summary: Text = ""


Event = Annotated[
    TaskStart | Plan | Reasoning | ToolCall | ToolResult | PolicyCheck | Escalation | Decision | Action | CompensationDone | TaskEnd,
    Field(discriminator="kind"),
]

EVENT_KINDS: tuple[str, ...] = (
    "task_start",
    "plan",
    "reasoning",
    "tool_call",
    "tool_result",
    "policy_check",
    "escalation",
    "decision",
    "action",
    "compensation",
    "task_end",
)

event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(line: bytes | str) -> Event:
    """Parse and validate one trace line. Raises ``pydantic.ValidationError``."""
    return event_adapter.validate_json(line)


def json_schema() -> dict[str, Any]:
    schema = event_adapter.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"agentdeck trace event, format v{FORMAT_VERSION}"
    return schema
