"""SVG snapshots of the Tasks screen and a task's detail (fixed size, clock and data)."""

from __future__ import annotations

from tasks_support import settle

SIZE = (140, 40)


async def _settled(pilot) -> None:
    await settle(pilot.app, pilot)


def test_tasks_following(snap_compare, sample_db, make_app):
    assert snap_compare(make_app(sample_db), terminal_size=SIZE, run_before=_settled)


def test_tasks_paused_and_filtered(snap_compare, sample_db, make_app):
    async def filtered(pilot) -> None:
        await _settled(pilot)
        await pilot.press("slash", *"outcome:failed cohort:canary", "enter")
        await _settled(pilot)
        await pilot.press("k", "k")
        await _settled(pilot)

    assert snap_compare(make_app(sample_db), terminal_size=SIZE, run_before=filtered)


def test_task_detail(snap_compare, sample_db, make_app):
    async def detail(pilot) -> None:
        await _settled(pilot)
        pilot.app.open_task("task-0007")
        await _settled(pilot)
        await pilot.press("j", "j", "j")
        await _settled(pilot)

    assert snap_compare(make_app(sample_db), terminal_size=SIZE, run_before=detail)
