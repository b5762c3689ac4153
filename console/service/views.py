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
    from agentdeck.console.service.views_later import (
        CanaryView, CompensationPrompt, EscalationQueue, EscalationView, ReleaseView, ReplayView, SuiteCase,
        SuiteSummary, TaskDetail,
    )

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
    # The views of what comes after the first frame (a task's detail, the other screens): their dataclasses
    # are created when first used (views_later.py).
    **{name: "agentdeck.console.service.views_later" for name in (
        "CanaryView", "CompensationPrompt", "EscalationQueue", "EscalationView", "ReleaseView", "ReplayView",
        "SuiteCase", "SuiteSummary", "TaskDetail")},
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
    "EscalationQueue", "EscalationView", "MetricResult", "Pair", "Plan", "ReleaseView", "ReplayView", "Reconstruction", "Row", "Step", "SuiteCase", "SuiteSummary",
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


def detail_key(task_id: str, task: Row | None, abandoned: bool) -> tuple:
    """A task detail's change key: the task's row (its event count, times, outcome…) and whether it is abandoned."""
    return (task_id, tuple(task) if task is not None else None, abandoned)


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
