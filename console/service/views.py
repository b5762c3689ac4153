"""What the screens render: small, immutable view objects built by the service.

Screens keep only what is on screen; they get these from ``DeckService`` (on
a worker thread) and never see a connection. Row objects (``Row``) are the
store's read-only records, accessed by column name. The names the screens
need from the store's vocabulary (filters, keys, canary report and its
formatting) are re-exported here so no screen or widget imports ``store/``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentdeck.store.queries import OUTCOMES, Counters, TaskFilter, TaskKey, task_key

if TYPE_CHECKING:
    from agentdeck.replay.compensate import Plan
    from agentdeck.replay.reconstruct import DECISION_KINDS, Reconstruction, Step
    from agentdeck.store.canary import (
        DEFAULT_METRICS, HOLD, INFO, METRICS_BY_KEY, PROMOTE, ROLLBACK, TASKS_PAGE, CanaryReport, MetricResult, Pair,
        fmt_delta, fmt_p, fmt_value,
    )
    from agentdeck.store.decisions import reason_required

Row = Mapping[str, Any]  # one record from the store (sqlite3.Row: by column name, immutable)

# Names imported on first use: the canary statistics, the replay model and
# the compensation plan cost a good part of a second to import, and the
# first screen (Tasks) needs none of them.
_LAZY = {
    "DECISION_KINDS": "agentdeck.replay.reconstruct", "Reconstruction": "agentdeck.replay.reconstruct",
    "Step": "agentdeck.replay.reconstruct", "Plan": "agentdeck.replay.compensate",
    "reason_required": "agentdeck.store.decisions",
    **{name: "agentdeck.store.canary" for name in (
        "DEFAULT_METRICS", "HOLD", "INFO", "METRICS_BY_KEY", "PROMOTE", "ROLLBACK", "TASKS_PAGE", "CanaryReport",
        "MetricResult", "Pair", "fmt_delta", "fmt_p", "fmt_value")},
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def redact(value: Any) -> tuple[Any, int]:
    from agentdeck.replay.redact import redact as _redact

    return _redact(value)

__all__ = [
    "DECISION_KINDS", "DEFAULT_METRICS", "HOLD", "INFO", "METRICS_BY_KEY", "OUTCOMES", "PROMOTE", "ROLLBACK",
    "TASKS_PAGE", "ActionResult", "CanaryReport", "CanaryView", "CompensationPrompt", "Counters",
    "EscalationQueue", "EscalationView", "MetricResult", "Pair", "ReplayView", "Reconstruction", "Row", "Step", "SuiteCase", "SuiteSummary",
    "TaskDetail", "TaskFilter", "TaskKey", "TaskPage", "Window", "fmt_delta", "fmt_p", "fmt_value", "mask", "reason_required", "task_key",
]


def mask(value: Any) -> Any:
    """``value`` with secrets replaced (``replay.redact``): for trace text a view shows beside its payload."""
    return redact(value)[0]


@dataclass(frozen=True)
class Window:
    """Which window of the Tasks list to read.

    ``follow``: the newest; ``at``: from ``key`` on; ``before``: a window
    reaching ``steps`` tasks before ``key``; ``oldest``: from the first task.
    """

    kind: str = "follow"
    key: TaskKey | None = None
    steps: int = 0


@dataclass(frozen=True)
class TaskPage:
    """One window of the Tasks list and what lies beyond it."""

    rows: Sequence[Row]
    older: bool  # matching tasks exist before the first row
    newer: int  # matching tasks after the last row (counted up to a cap)
    anchor: TaskKey | None = None  # the window's first key when not following


EMPTY_PAGE = TaskPage((), False, 0)


@dataclass(frozen=True)
class TaskDetail:
    """One task and its first events; ``payloads`` are the events' payloads with secrets masked."""

    task_id: str
    task: Row | None
    events: Sequence[Row]
    payloads: Sequence[str]  # redacted JSON text, one per event (same order)
    redactions: int = 0
    abandoned: bool = False  # no task_end and silent past the abandon-after setting (computed when read)
    key: tuple = ()  # what it was read for (detail_key): unchanged while the task's row is


def detail_key(task_id: str, task: Row | None, abandoned: bool) -> tuple:
    """A task detail's change key: the task's row (its event count, times, outcome…) and whether it is abandoned."""
    return (task_id, tuple(task) if task is not None else None, abandoned)


@dataclass(frozen=True)
class EscalationQueue:
    rows: Sequence[Row]
    history: bool
    total: int
    # Pending only: where each escalation's decision would go, by escalation id
    # (console.service.reach); orphaned ones are listed after those whose agent waits.
    reach: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EscalationView:
    """One escalation with its task and the task's steps so far."""

    row: Row
    task: Row | None
    steps: Sequence[tuple[int, str, str]] = ()  # (seq, kind, summary)
    more_steps: int = 0
    callback_problem: str | None = None  # why the callback URL may not be called (None: allowed or no URL)
    reach: Any = None  # console.service.reach.Reach: where a decision goes (pending only)
    release: ReleaseView | None = None  # a promotion or roll back item (store/release.py): its evidence


@dataclass(frozen=True)
class ReleaseView:
    """What a promotion or roll back item shows besides the decision: the evidence and what it did."""

    item: Row  # the release_items row
    verdict: dict[str, Any]  # store.release.verdict_summary, as it was when the item was raised
    suite: dict[str, Any] | None  # store.release.suite_summary (None: no suite run recorded)
    stage_now: str  # store.release.Effective.describe() of the version now
    changes: tuple[Row, ...] = ()  # the stage changes it made (demotion, promotion...), with the hook's answers
    release_hook: str | None = None  # the contract's hook URL
    hook_problem: str | None = None  # why the hook may not be called (None: allowed, or no hook)


@dataclass(frozen=True)
class ReplayView:
    """One task's reconstruction, as the Replay screen shows it.

    ``key`` changes whenever the task, its audit or its compensations do:
    the screen asks again with the key it has and gets None when nothing did.
    Step payloads are parsed lazily (a 10,000-step task shows fast); what the
    JSON tree shows comes from ``shown_data``, secrets masked.
    """

    wanted: str
    key: tuple
    rec: Reconstruction | None
    _masked: dict[int, tuple[Any, int]] = field(default_factory=dict, compare=False, repr=False)
    # The trace file this was rebuilt from in a throwaway store (a suite run), None for the live store:
    # nothing in it can be compensated or exported from the live store.
    source: str | None = None
    abandoned: bool = False  # no task_end and silent past the abandon-after setting (computed when read)

    def shown_data(self, step: Step) -> tuple[Any, int]:
        """The step's data with secrets replaced, and how many were (cached per step)."""
        cached = self._masked.get(step.index)
        if cached is None:
            cached = self._masked[step.index] = redact(step.data)
        return cached


@dataclass(frozen=True)
class CanaryView:
    pairs: Sequence[Pair]
    agent: str | None
    report: CanaryReport | None
    tasks: Sequence[Row]
    seconds: float = 0.0  # how long the analysis took (the screen recomputes no more often than a few times that)
    differences: Any = None  # store.canary_diff.DiffReport: where the versions differ (features by share of tasks)
    computed_at: float | None = None  # the clock the report was computed for (its age is shown)
    computed_here: bool = False  # computed by this call (no current stored report), not read from the store
    analyst: bool = False  # the ingest process's analyst keeps the stored reports current
    suites: Mapping[str, SuiteSummary | None] = field(default_factory=dict)  # version -> its latest suite run
    first_violations: Sequence[Row] = ()  # the first listed task's violations (shown without another read)
    analyst_error: str | None = None  # why the ingest process's canary analyst failed its last round


@dataclass(frozen=True)
class SuiteCase:
    """One case of a recorded suite run (its text came from the agent's trace: untrusted)."""

    case_id: str
    flavour: str
    reason: str
    trace: str | None  # the trace file of its first failing attempt
    flaky: bool = False
    passes: int = 0
    runs: int = 1


@dataclass(frozen=True)
class SuiteSummary:
    """The latest recorded regression-suite run of one agent version (``agentdeck suite run``)."""

    run_id: int
    agent: str
    version: str
    passed: int  # cases that passed every attempt
    cases: int
    by_flavour: Mapping[str, tuple[int, int]]  # flavour -> (runs passed, runs)
    finished: float
    command: str
    failing: Sequence[SuiteCase] = ()


@dataclass(frozen=True)
class CompensationPrompt:
    """What the confirmation dialog shows before anything runs (secrets masked on screen only)."""

    action_id: str
    plan: Plan | None
    refusal: str | None
    headers: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    args: Any = None
    masked: int = 0


@dataclass(frozen=True)
class ActionResult:
    """The one answer to an action (decide, retry, compensate, export) a key started.

    ``severity`` is information, warning or error; ``message`` is plain text
    (it quotes trace text: show it literally). ``changed``: the store was written.
    ``detail`` carries what the screen shows beyond the message (e.g. the
    queue after the decision, a compensation's response body).
    """

    ok: bool
    message: str
    severity: str = "information"
    changed: bool = False
    detail: Mapping[str, Any] = field(default_factory=dict)
