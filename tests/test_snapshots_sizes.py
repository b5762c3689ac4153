"""Every screen and dialog at 80x24 (on call over SSH) and 160x45 (a big terminal), as SVG snapshots.

Fixed clock (conftest.FIXED_NOW), fixed data (the bundled sample data, plus
the escalation tests' pending queue where a screen needs one), no tailing.
The Canary screen's snapshots live with its own tests (tests/test_canary_screen.py,
tests/test_suite_console.py); the compensation dialog's, Problems' and the
suite failures' are in their own files too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import FIXED_NOW
from agentdeck.console.service.delivery import DeliverySettings, deliver_one
from agentdeck.store import decisions
from agentdeck.store.db import connect
from tasks_support import settle
from test_escalations_support import esc_db  # noqa: F401  (fixture)

SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=["80x24", "160x45"])
TO_ACTION = ("right_square_bracket", "right_square_bracket", "right_square_bracket")


def keys(*pressed: str, replay: str | None = None, task: str | None = None):
    """run_before: settle, optionally open a task (detail) or a replay, then press ``pressed`` one by one."""

    async def run_before(pilot) -> None:
        app = pilot.app
        await settle(app, pilot)
        if task is not None:
            app.open_task(task)
            await settle(app, pilot)
        if replay is not None:
            app.open_replay(replay)
            await settle(app, pilot)
        for key in pressed:
            await pilot.press(key)
            await settle(app, pilot)

    return run_before


# --- Tasks ------------------------------------------------------------------------------


@SIZES
def test_tasks_list_at_both_sizes(snap_compare, sample_db, make_app, size):
    # 80x24: time and task pinned, then outcome, latency, cost, viol; "→" says more columns are to the right.
    assert snap_compare(make_app(sample_db), terminal_size=size, run_before=keys())


@SIZES
def test_tasks_list_scrolled_right_at_both_sizes(snap_compare, sample_db, make_app, size):
    # 80x24: two columns along, "←" after the task column; 160x45: everything fits, → changes nothing.
    assert snap_compare(make_app(sample_db), terminal_size=size, run_before=keys("right", "right"))


@SIZES
def test_task_filter_input_at_both_sizes(snap_compare, sample_db, make_app, size):
    assert snap_compare(make_app(sample_db), terminal_size=size,
                        run_before=keys("slash", *"outcome:failed cohort:canary"))


@SIZES
def test_task_detail_at_both_sizes(snap_compare, sample_db, make_app, size):
    # 80x24: the events full width, the payload below them.
    assert snap_compare(make_app(sample_db), terminal_size=size, run_before=keys("j", "j", "j", task="task-0007"))


# --- Escalations --------------------------------------------------------------------------


@SIZES
def test_reason_dialog_at_both_sizes(snap_compare, esc_db, make_app, size):  # noqa: F811
    assert snap_compare(make_app(esc_db), terminal_size=size, run_before=keys("2", "down", "d"))


@SIZES
def test_decided_list_at_both_sizes_scrolled_right(snap_compare, esc_db, make_app, tmp_path, size):  # noqa: F811
    conn = connect(esc_db)
    decisions.decide(conn, "esc-t-low", "approve", by="alice", reason="small refund", now=FIXED_NOW - 60)
    decisions.expire_due(conn, now=FIXED_NOW, policy="deny")
    assert deliver_one(conn, "esc-t-low", DeliverySettings(tmp_path / "box.jsonl", frozenset())) == "delivered"
    conn.close()
    # → once: at 80 columns the list moves one column along (who decided comes into view).
    assert snap_compare(make_app(esc_db), terminal_size=size, run_before=keys("2", "h", "right"))


# --- Replay -------------------------------------------------------------------------------


@SIZES
def test_replay_without_a_task_at_both_sizes(snap_compare, sample_db, make_app, size):
    # What a newcomer sees on 4 first: how to choose a task, and the id box.
    assert snap_compare(make_app(sample_db), terminal_size=size, run_before=keys("4"))


@SIZES
def test_replay_at_an_action_at_both_sizes(snap_compare, sample_db, make_app, size):
    # 80x24: the timeline full width, the step below it.
    assert snap_compare(make_app(sample_db), terminal_size=size, run_before=keys(*TO_ACTION, replay="task-0001"))


@SIZES
def test_evidence_export_result_at_both_sizes(snap_compare, sample_db, make_app, size, monkeypatch):
    # The whole path and digest must be readable at 80 columns (the status line wraps).
    # The path is on screen, so it is fixed (not $TMPDIR, which differs between machines),
    # one per size (xdist may run both at once), and emptied first (a second export in the
    # same second would get another name).
    folder = Path("/tmp") / f"agentdeck-snapshot-evidence-{size[0]}x{size[1]}"
    shutil.rmtree(folder, ignore_errors=True)
    # The packet names its contract's file, so the digest on screen depends on where the
    # contracts lie: read them from a fixed folder, not from wherever this checkout is.
    from agentdeck.store.contract import BUNDLED, ENV_CONTRACTS

    contracts = Path("/tmp") / f"agentdeck-snapshot-contracts-{size[0]}x{size[1]}"
    shutil.rmtree(contracts, ignore_errors=True)
    shutil.copytree(BUNDLED, contracts)
    monkeypatch.setenv(ENV_CONTRACTS, str(contracts))
    app = make_app(sample_db, evidence_dir=str(folder))
    try:
        assert snap_compare(app, terminal_size=size, run_before=keys("e", replay="task-0001"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(contracts, ignore_errors=True)


# --- everywhere -------------------------------------------------------------------------------


@SIZES
def test_key_panel_at_both_sizes(snap_compare, sample_db, make_app, size):
    assert snap_compare(make_app(sample_db), terminal_size=size, run_before=keys("question_mark"))


@SIZES
async def test_command_palette_fits_at_both_sizes(sample_db, make_app, size):
    # It opens inside the screen, lists commands, and a search works (its snapshots, in a fixed
    # order, are in test_console_palette.py).
    from tasks_support import screen_text, wait_until
    from textual.command import CommandPalette

    app = make_app(sample_db)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"failed")
        await wait_until(pilot, lambda: "Filter tasks: failed tasks" in screen_text(app))
        palette = app.screen
        assert palette.region.contains_region(palette.query_one("CommandInput").region)
        await pilot.press("enter")
        await settle(app, pilot)
        assert "outcome:failed" in screen_text(app), "the chosen command ran: Tasks filtered"


async def test_text_fields_keep_a_steady_cursor(sample_db, make_app):
    """Typing in a field leaves its cursor drawn: it does not blink (over SSH, each blink is a redraw)."""
    from textual.widgets import Input

    app = make_app(sample_db)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.settled()
        for keys in (("slash",), ("ctrl+p",)):
            await pilot.press(*keys, "x")
            await pilot.pause()
            field = app.focused
            assert isinstance(field, Input) and not field.cursor_blink and field._cursor_visible
            await pilot.press("escape")
            await pilot.pause()
