"""The views the console's first frame does not need: a task's detail, escalations, releases, replays, canary
reports, suite runs, compensation prompts.

Imported when first used (``views.__getattr__``), as their screens and the actions after the first frame use
them: creating a frozen dataclass compiles its methods, ~1 ms of CPU each on the way to the first frame. Import
them from ``views`` as before; they live here only to be imported later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentdeck.console.service.views import Row, redact

if TYPE_CHECKING:
    from agentdeck.replay.compensate import Plan
    from agentdeck.replay.reconstruct import Reconstruction, Step
    from agentdeck.store.canary import CanaryReport, Pair


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
