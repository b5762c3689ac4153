"""The Escalations list as a person watches it: a reload that changes nothing moves nothing,
and →/← step whole columns (the view always starts at a column's left edge)."""

from __future__ import annotations

from conftest import FIXED_NOW
from agentdeck.console.widgets.escalation_table import DECIDED_COLUMNS, EscalationTable
from agentdeck.store import decisions
from agentdeck.store.db import connect
from tasks_support import screen_lines, settle
from test_escalations_support import esc_db  # noqa: F401  (fixture)

NARROW = (80, 24)


def _decide_some(db) -> None:
    conn = connect(db)
    decisions.decide(conn, "esc-t-low", "approve", by="alice", reason="small refund", now=FIXED_NOW - 60)
    decisions.expire_due(conn, now=FIXED_NOW, policy="deny")  # decided by "expiry-policy": a wider list
    conn.close()


def _header(app) -> str:
    return screen_lines(app)[3]


def _starts_at_a_column(header: str) -> bool:
    return header.startswith(" ") and any(header[1:].startswith(label) for label in DECIDED_COLUMNS)


async def test_right_steps_whole_columns_to_the_last_and_left_back_to_the_first(esc_db, make_app):  # noqa: F811
    _decide_some(esc_db)
    app = make_app(esc_db)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "h")
        await settle(app, pilot)
        headers = [_header(app)]
        assert headers[0].split()[0] == "decided"
        for _ in range(len(DECIDED_COLUMNS) + 2):  # more presses than columns: the last ones change nothing
            await pilot.press("right")
            await pilot.pause()
            headers.append(_header(app))
        assert all(_starts_at_a_column(h) for h in headers), headers
        assert headers[-1] == headers[-2], "→ at the end stays put"
        assert headers[-1].rstrip().endswith("escalation"), "the last column is in view, whole"
        assert "decided" not in headers[-1]
        assert headers[1].split()[0] == "status", "one column along, not one character"
        for _ in range(len(DECIDED_COLUMNS) + 2):
            await pilot.press("left")
            await pilot.pause()
            assert _starts_at_a_column(_header(app)), _header(app)
        assert _header(app) == headers[0]


async def test_a_reload_that_changes_nothing_keeps_the_sideways_scroll_and_cursor(esc_db, make_app):  # noqa: F811
    _decide_some(esc_db)
    app = make_app(esc_db)
    async with app.run_test(size=NARROW) as pilot:
        # The decided list first, then the moves on it: a move typed while the list h asked for is on its way is
        # made on the pending list, and the decided list, new, starts at its top (on a loaded machine, once h's
        # read outlasted the next key).
        await pilot.press("2", "h")
        await settle(app, pilot)
        await pilot.press("down", "right")
        await settle(app, pilot)
        table = app.screen.query_one(EscalationTable)
        before, row, x = screen_lines(app), table.cursor_row, table.scroll_x
        assert x > 0 and row == 1
        app.screen.reload()
        await settle(app, pilot)
        assert (table.scroll_x, table.cursor_row) == (x, row)
        assert screen_lines(app) == before


async def test_a_reload_redraws_the_cells_that_changed_in_place(esc_db, make_app):  # noqa: F811
    now = [FIXED_NOW]
    app = make_app(esc_db, clock=lambda: now[0])
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        table = app.screen.query_one(EscalationTable)
        keys = [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]
        ages = [str(table.get_row_at(i)[-1]) for i in range(table.row_count)]
        now[0] += 3600
        app.screen.reload()
        await settle(app, pilot)
        assert [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)] == keys
        assert all(str(table.get_row_at(i)[-1]) != age for i, age in enumerate(ages)), "the age moved on"


async def test_reason_dialog_leaves_the_header_and_footer_in_view_at_80x24(esc_db, make_app):  # noqa: F811
    # A deny of a high-risk orphan: a two-line summary and a two-line sentence on where the
    # decision goes (nowhere). Reason box, buttons and border all show between header and footer.
    from textual.widgets import Button, Input

    from agentdeck.console.widgets.chrome import FOOTER_ROWS, HEADER_ROWS
    from agentdeck.console.widgets.reason_dialog import ReasonDialog

    app = make_app(esc_db)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "down", "d")
        await settle(app, pilot)
        dialog = app.screen
        assert isinstance(dialog, ReasonDialog)
        frame = dialog.query_one("#reason-frame").region
        assert frame.y >= HEADER_ROWS and frame.bottom <= NARROW[1] - FOOTER_ROWS, frame
        for part in (dialog.query_one("#reason", Input), dialog.query_one("#confirm", Button),
                     dialog.query_one("#cancel", Button)):
            assert frame.contains_region(part.region), part
        lines = screen_lines(app)
        assert "Escalations" in lines[0] and "Quit" in lines[-1]
        assert "is only" in "\n".join(lines), "where the decision goes is on screen"


async def test_reason_dialog_text_that_does_not_fit_scrolls_with_the_page_keys_at_80x24(esc_db, make_app):  # noqa: F811
    # The reason box keeps the cursor; PgDn/PgUp bring the rest of what the decision is about into view.
    from textual.containers import VerticalScroll
    from textual.widgets import Static

    from agentdeck.console.widgets.reason_dialog import ReasonDialog

    app = make_app(esc_db)
    async with app.run_test(size=(80, 16)) as pilot:  # short enough that the text cannot all show
        await pilot.press("2", "down", "d")
        await settle(app, pilot)
        dialog = app.screen
        assert isinstance(dialog, ReasonDialog)
        about = dialog.query_one("#reason-about", VerticalScroll)
        assert about.max_scroll_y > 0
        assert "PgUp/PgDn" in str(dialog.query_one("#reason-hint", Static).render())
        await pilot.press("pagedown")
        await pilot.pause()
        assert about.scroll_y > 0
        await pilot.press("pageup")
        await pilot.pause()
        assert about.scroll_y == 0
        await pilot.press(*"why")  # typing still goes to the reason box
        assert dialog.query_one("#reason").value == "why"
