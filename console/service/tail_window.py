"""The Tasks window while following, refreshed from its newest rows only.

Following a busy fleet, the Tasks screen re-reads its window (the newest 200
tasks) many times a second, and what changes between two reads is almost
always among the newest few dozen: new tasks come in at the bottom, and the
running tasks that get events are the recent ones. ``merge_tail`` makes the
window from the newest ``tail`` tasks just read and the older rows of the
window shown before, so a refresh reads (and the table compares) a fraction
of the rows. The screen re-reads the whole window at least once a second
(``TasksScreen.FULL_EVERY``): a change to an older row — a late event of a
long task, a task pruned, a new task that started before the newest rows — is
then on screen within that second, and the
rows in view are always within the tail (it is at least twice the rows in
view), so they are never older than the last refresh.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentdeck.console.service.views import Row, TaskPage

_TYPE_RANK = {type(None): 0, int: 1, float: 1, str: 2, bytes: 3}


def order_key(row: Row) -> tuple:
    """A row's place in the list as SQLite orders it (``ORDER BY seen, task_id``; NULL first, then numbers,
    then text)."""
    seen = row["seen"]
    return (_TYPE_RANK.get(type(seen), 4), seen if seen is not None else 0, row["task_id"])


def merge_tail(held: TaskPage, fresh: Sequence[Row], tail: int, limit: int) -> TaskPage | None:
    """The newest ``limit`` tasks: ``fresh`` (the newest ``tail`` just read, oldest first) and, before them,
    the rows of ``held`` (the window shown, read before) older than the first of ``fresh``; None when they do
    not meet (read the whole window instead).

    Fewer than ``tail`` fresh rows are every matching task: the window is them alone. They meet when the first
    fresh task is in ``held`` at the same place: more new tasks than ``tail`` since ``held`` was read (a burst)
    would otherwise leave a gap between the two. A task in ``fresh`` is never taken from ``held`` as well (its
    place in the list may have moved).
    """
    if len(fresh) < tail:
        return TaskPage(tuple(fresh), False, 0, None)
    first = fresh[0]
    boundary, first_id = order_key(first), first["task_id"]
    # Where the first fresh task is in ``held`` (rows in list order: the ones before it are older than it).
    at = next((i for i in range(len(held.rows) - 1, -1, -1) if held.rows[i]["task_id"] == first_id), None)
    if at is None or order_key(held.rows[at]) != boundary:
        return None
    ids = {row["task_id"] for row in fresh}
    if any(row["task_id"] not in ids for row in held.rows[at:]):
        return None  # a task at or after the boundary left the newest rows: moved back (a late start), or gone
    older = [row for row in held.rows[:at] if row["task_id"] not in ids]
    rows = older + list(fresh)
    if len(rows) > limit:
        return TaskPage(tuple(rows[-limit:]), True, 0, None)
    # Nothing cut: the tasks before the window are the ones the last read saw (the full re-read corrects it).
    return TaskPage(tuple(rows), held.older, 0, None)
