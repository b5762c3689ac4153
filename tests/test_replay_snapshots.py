"""SVG snapshots of the Replay screen and the compensation confirmation (fixed size, clock and data)."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Button

from agentdeck.console.widgets.compensation_dialog import CompensationDialog
from agentdeck.store.db import connect
from agentdeck.store.tailer import Tailer

SIZE = (140, 40)
NARROW, WIDE = (80, 24), (160, 45)  # on-call over SSH, and a big terminal
TO_ACTION = ("right_square_bracket", "right_square_bracket", "right_square_bracket")


def opened(task: str, *keys: str):
    async def run_before(pilot) -> None:
        app = pilot.app
        app.open_replay(task)
        for _ in range(3):
            await pilot.pause()
            await app.settled()
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
            await app.settled()
        await pilot.pause()

    return run_before


def test_replay_at_the_action_of_an_escalated_refund(sample_db, make_app, snap_compare):
    app = make_app(sample_db)
    assert snap_compare(app, terminal_size=SIZE, run_before=opened("req-0001", "right_square_bracket", "right_square_bracket", "right_square_bracket"))


def test_compensation_confirmation_shows_exactly_what_will_run(sample_db, make_app, snap_compare):
    app = make_app(sample_db, allow_hosts=frozenset({"127.0.0.1:8765"}))
    assert snap_compare(app, terminal_size=SIZE, run_before=opened("task-0001", "right_square_bracket", "right_square_bracket", "right_square_bracket", "c"))


def test_compensation_refused_for_a_host_off_the_allowlist(sample_db, make_app, snap_compare):
    app = make_app(sample_db, allow_hosts=frozenset())
    assert snap_compare(app, terminal_size=SIZE, run_before=opened("task-0001", "right_square_bracket", "right_square_bracket", "right_square_bracket", "c"))


def test_hostile_task_with_a_gap_is_shown_literally(tmp_path, make_app, snap_compare):
    hostile = "[@click=app.quit]boom[/] [bold red]x\x1b[31m"
    lines = [
        {"v": 1, "kind": "task_start", "ts": "2026-11-24T10:00:00Z", "task_id": "t-hostile", "seq": 0,
         "request_id": "r-h", "agent": "a[b]", "agent_version": {"id": "v[1]"}, "request": hostile},
        {"v": 1, "kind": "plan", "ts": "2026-11-24T10:00:01Z", "task_id": "t-hostile", "seq": 1, "summary": hostile},
        {"v": 1, "kind": "tool_result", "ts": "2026-11-24T10:00:03Z", "task_id": "t-hostile", "seq": 4, "call_id": "c",
         "tool": "x", "output": {"[red]k": hostile, "big": "y" * 50_000, "list": list(range(100))}},
    ]
    folder = tmp_path / "tr"
    folder.mkdir()
    (folder / "h.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    conn = connect(tmp_path / "h.db")
    Tailer(conn, [folder]).poll()
    conn.close()
    app = make_app(tmp_path / "h.db")
    assert snap_compare(app, terminal_size=SIZE, run_before=opened("t-hostile", "G"))


@pytest.mark.parametrize("size", [NARROW, WIDE], ids=["80x24", "160x45"])
def test_compensation_dialog_fits_the_terminal(sample_db, make_app, snap_compare, size):
    app = make_app(sample_db, allow_hosts=frozenset({"127.0.0.1:8765"}))
    assert snap_compare(app, terminal_size=size, run_before=opened("task-0001", *TO_ACTION, "c"))


@pytest.mark.parametrize("size", [NARROW, WIDE], ids=["80x24", "160x45"])
def test_refused_compensation_dialog_fits_the_terminal(sample_db, make_app, snap_compare, size):
    app = make_app(sample_db, allow_hosts=frozenset())
    assert snap_compare(app, terminal_size=size, run_before=opened("task-0001", *TO_ACTION, "c"))


@pytest.mark.parametrize("size", [NARROW, WIDE], ids=["80x24", "160x45"])
def test_compensation_dialog_asking_for_its_reason(sample_db, make_app, snap_compare, size):
    # Enter with no reason on a high-risk undo: nothing runs, the hint under the reason box says why.
    app = make_app(sample_db, allow_hosts=frozenset({"127.0.0.1:8765"}))
    assert snap_compare(app, terminal_size=size, run_before=opened("task-0001", *TO_ACTION, "c", "enter"))


async def _compensation_dialog(app, pilot) -> CompensationDialog:
    """On Replay, task-0001's refund, c: the dialog it opens."""
    await opened("task-0001", *TO_ACTION, "c")(pilot)
    dialog = app.screen
    assert isinstance(dialog, CompensationDialog)
    return dialog


@pytest.mark.parametrize("allow, buttons", [
    (frozenset({"127.0.0.1:8765"}), ("cancel", "confirm")),  # a plan: Cancel and Compensate
    (frozenset(), ("cancel",)),                              # refused: Close
])
async def test_dialog_buttons_and_border_are_on_screen_at_80x24(sample_db, make_app, allow, buttons):
    app = make_app(sample_db, allow_hosts=allow)
    async with app.run_test(size=NARROW) as pilot:
        dialog = await _compensation_dialog(app, pilot)
        screen = dialog.region
        frame = dialog.query_one("Vertical").region
        assert screen.contains_region(frame), (frame, screen)  # the border, all four sides
        for bid in buttons:
            button = dialog.query_one(f"#{bid}", Button)
            assert button.display and screen.contains_region(button.region), (bid, button.region, screen)
            assert frame.contains_region(button.region)
        if buttons == ("cancel",):
            assert str(dialog.query_one("#cancel", Button).label) == "Close"


@pytest.mark.parametrize("size", [NARROW, WIDE], ids=["80x24", "160x45"])
@pytest.mark.parametrize("allow", [frozenset({"127.0.0.1:8765"}), frozenset()], ids=["plan", "refused"])
async def test_compensation_dialog_leaves_the_header_and_footer_in_view(sample_db, make_app, size, allow):
    # The header says which screen and how ingest and the queue stand; the footer which keys work.
    from agentdeck.console.widgets.chrome import FOOTER_ROWS, HEADER_ROWS

    app = make_app(sample_db, allow_hosts=allow)
    async with app.run_test(size=size) as pilot:
        dialog = await _compensation_dialog(app, pilot)
        frame = dialog.query_one("#comp-frame").region
        assert frame.y >= HEADER_ROWS and frame.bottom <= size[1] - FOOTER_ROWS, frame
        base = app.screen_stack[-2]
        assert base.query_one("DeckHeader").region.height == HEADER_ROWS
        for bid in ("cancel", "confirm") if allow else ("cancel",):
            assert frame.contains_region(dialog.query_one(f"#{bid}", Button).region), bid


async def test_footer_shows_next_decision_and_compensate_whole_at_80x24(sample_db, make_app):
    # The README's way to undo an action: ] to it, then c. Both keys must be readable in the footer.
    from tasks_support import screen_lines

    app = make_app(sample_db)
    async with app.run_test(size=NARROW) as pilot:
        await opened("task-0001", *TO_ACTION)(pilot)
        footer = screen_lines(app)[-1]
        assert "] Next decision" in footer and "c Compensate" in footer, footer
        assert "? Help" in footer and "q Quit" in footer
