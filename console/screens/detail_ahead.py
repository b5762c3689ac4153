"""The detail of the task under the Tasks cursor, read while the cursor rests there: enter then needs no read.

Opening a task read it on a worker first and pushed the detail with it: under load the hop to the worker and
back (a thread started, the interpreter shared with the fleet's ingest and the frame) was a third of an enter.
Here the Tasks screen asks for the row under a paused cursor once the frame that put the cursor there is on
screen, and enter shows what was read (``AgentDeck.show_task``), or waits for the read in flight.

What is shown is never older than the list beside it: a read-ahead counts for enter only while the list row it
was asked for is still the row the list shows (the list re-reads while paused; a changed row asks again). A
store change heard after the read began (another task's, mostly, with a fleet writing) is checked behind the
first frame by the detail screen, by the task's row alone (``DeckService.task_detail_if_changed``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (views_later: imported when first used, not on the way to the first frame)
    from agentdeck.console.service.views import TaskDetail

log = logging.getLogger(__name__)


@dataclass
class Ahead:
    """One read-ahead: the task, the list row it was asked for, and its answer when it came."""

    task_id: str
    row: tuple | None  # the list's values of the task's row when asked (TaskTable.row_values)
    heard: int  # store changes the screen had heard when the read began (DeckScreen._changes_heard)
    detail: TaskDetail | None = None
    failed: bool = False
    # Enter pressed while the read was in flight: called with the answer (or None if it failed).
    then: list[Callable[[TaskDetail | None], None]] = field(default_factory=list)
    asked_at: float = 0.0  # time.monotonic() when asked, and when answered (0: not yet)
    answered_at: float = 0.0
    clock_at: float = 0.0  # the console's clock when asked (the service's: abandonment is computed from it)

    # The service computes "abandoned" from its clock when it reads: a task read ahead while running may be
    # abandoned now with no store change to say so (a quiet fleet, the cursor resting for minutes).
    CLOCK_RECHECK_S = 5.0  # (a rest shorter than this is never rechecked for time alone)

    def recheck(self, heard: int, now: float) -> bool:
        """Whether what was read may be older than the store now: a change heard since it was asked, or time."""
        return self.heard < heard or now - self.clock_at >= self.CLOCK_RECHECK_S

    @property
    def answered(self) -> bool:
        return self.detail is not None or self.failed


class DetailAhead:
    """The latest read-ahead of a screen; ``read`` runs a job on a thread worker and hands its answer back."""

    def __init__(self, start: Callable[[Callable[[], TaskDetail], Callable[[TaskDetail | None], None]], None]) -> None:
        # start(job, done): runs job off the UI thread, then done(result) on it (None: the job failed).
        self._start = start
        self.current: Ahead | None = None

    # The same task read again for a changed row (a running task the fleet keeps writing: each list re-read
    # changes its row) no sooner than this many times its last read's time after it answered, and never while
    # that read is in flight. A long task's read (bench-big, 2,000 events masked: ~0.3 s) began again after
    # every list re-read, in parallel once reads took longer than changes came, while nobody asked to see it.
    # Until the new read answers, enter reads the task itself (``usable``: the row differs).
    AGAIN_AFTER = 3.0
    IN_FLIGHT_POLL_S = 0.1

    def ask(self, task_id: str, row: tuple | None, heard: int, job: Callable[[], TaskDetail], *,
            now: float = 0.0) -> float:
        """Read ``task_id``'s detail ahead unless the read for this same row is held or in flight.

        Returns 0, or the seconds after which to ask again (the task's last read is too recent or in flight).
        """
        held = self.current
        if held is not None and held.task_id == task_id and not held.failed:
            if held.row == row:
                return 0.0
            if not held.answered:
                return self.IN_FLIGHT_POLL_S
            wait = held.answered_at + self.AGAIN_AFTER * (held.answered_at - held.asked_at) - time.monotonic()
            if wait > 0:
                return wait
        ahead = self.current = Ahead(task_id, row, heard, asked_at=time.monotonic(), clock_at=now)

        def done(detail: TaskDetail | None) -> None:
            ahead.detail, ahead.failed = detail, detail is None
            ahead.answered_at = time.monotonic()
            waiting, ahead.then = ahead.then, []
            for then in waiting:
                then(detail)

        self._start(job, done)
        return 0.0

    def usable(self, task_id: str, row: tuple | None) -> Ahead | None:
        """The read-ahead enter may show for ``task_id`` whose list row is ``row`` now (answered or in flight)."""
        held = self.current
        if held is None or held.task_id != task_id or held.row != row or held.failed:
            return None
        return held
