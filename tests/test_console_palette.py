"""The command palette: switch screens, filter presets, open or replay a task by id."""

from __future__ import annotations

import asyncio

import pytest

from agentdeck.console.screens.task_detail import TaskDetailScreen
from agentdeck.console.screens.tasks import TasksScreen
from agentdeck.console.widgets.task_table import TaskTable
from agentdeck.store.db import connect
from tasks_support import settle

SIZE = (140, 40)


async def run_command(app, pilot, text: str) -> None:
    await pilot.press("ctrl+p", *text)
    await settle(app, pilot)
    await pilot.press("enter")
    await settle(app, pilot)


async def test_switch_screen_from_the_palette(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await run_command(app, pilot, "Escalations screen")
        assert app.current_mode == "escalations"


async def test_filter_presets_apply_and_clear(sample_db, make_app):
    conn = connect(sample_db)
    canary = {r[0] for r in conn.execute("SELECT task_id FROM tasks WHERE cohort = 'canary'")}
    conn.close()
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2")  # presets work from any screen
        await run_command(app, pilot, "canary only")
        assert app.current_mode == "tasks"
        table = app.screen.query_one(TaskTable)
        assert table.shown.keys and set(table.shown.keys) <= canary
        assert app.screen.filt.cohort == "canary"
        await run_command(app, pilot, "Clear task filter")
        assert app.screen.filt.empty


async def test_open_and_replay_a_task_by_id(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await run_command(app, pilot, "task-0042")
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == "task-0042"
        await run_command(app, pilot, "Replay task task-0042")
        assert app.current_mode == "replay" and app.replay_task == "task-0042"
        # And by request id.
        await pilot.press("1")
        await run_command(app, pilot, "req-0043")
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == "task-0043"
        await pilot.press("escape")
        await settle(app, pilot)
        assert isinstance(app.screen, TasksScreen)


# --- what ctrl+p lists, waited for (the palette searches its providers asynchronously) ---------

SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=["80x24", "160x45"])


async def palette_settled(app, pilot, timeout: float = 10.0) -> None:
    """Wait until the palette's search (its gather worker) has finished and the list is drawn."""
    from textual.command import CommandPalette
    from textual.worker import WorkerState

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette), app.screen
        searching = [w for w in app.workers if w.group == CommandPalette._GATHER_COMMANDS_GROUP
                     and w.state in (WorkerState.PENDING, WorkerState.RUNNING)]
        if not searching:
            break
        assert loop.time() < deadline, "the palette is still searching"
        await pilot.pause(0.05)
    await pilot.pause()


def palette_prompts(app) -> list[str]:
    from textual.command import CommandList

    options = app.screen.query_one(CommandList)
    return [str(options.get_option_at_index(i).prompt).split("\n")[0] for i in range(options.option_count)]


async def test_empty_palette_lists_screens_presets_then_textuals_commands_in_a_fixed_order(sample_db, make_app):
    from agentdeck.console.widgets.chrome import SCREENS
    from agentdeck.console.widgets.task_filter import PRESETS

    seen = []
    for _ in range(2):  # two runs list the same commands in the same order
        app = make_app(sample_db)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            await pilot.press("ctrl+p")
            await palette_settled(app, pilot)
            seen.append(palette_prompts(app))
    assert seen[0] == seen[1]
    ours = [f"{label.split(' ', 1)[1]} screen" for _, label in SCREENS] + \
        [f"Filter tasks: {name}" for name in PRESETS] + ["Clear task filter"]
    assert seen[0][:len(ours)] == ours
    rest = seen[0][len(ours):]
    assert "Quit" in rest and rest == sorted(rest), rest  # Textual's own, still there, by name


@SIZES
def test_palette_open_at_both_sizes(snap_compare, sample_db, make_app, size):
    async def run_before(pilot) -> None:
        await settle(pilot.app, pilot)
        await pilot.press("ctrl+p")
        await palette_settled(pilot.app, pilot)

    assert snap_compare(make_app(sample_db), terminal_size=size, run_before=run_before)


@SIZES
def test_palette_finding_a_task_at_both_sizes(snap_compare, sample_db, make_app, size):
    # The task lookup runs on a thread: the list is whole only once the search has finished.
    async def run_before(pilot) -> None:
        await settle(pilot.app, pilot)
        await pilot.press("ctrl+p", *"task-004")
        await palette_settled(pilot.app, pilot)

    assert snap_compare(make_app(sample_db), terminal_size=size, run_before=run_before)
