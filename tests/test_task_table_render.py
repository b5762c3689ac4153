"""The Tasks table draws its rows itself (TaskTable._render_plain) instead of through Textual's styles cache:
the lines must be the ones Textual would have made, in every state a person sees them in."""

from __future__ import annotations

from textual.geometry import Region

from agentdeck.console.widgets.line_table import plain_box
from agentdeck.console.widgets.task_table import TaskTable
from textual.widget import Widget
from tasks_support import settle


def lines(strips) -> list[list[tuple[str, object]]]:
    return [[(segment.text, segment.style) for segment in strip] for strip in strips]


def both_ways(table: TaskTable, crop: Region):
    """(Textual's lines, the table's own) for ``crop``."""
    table._styles_cache.clear()
    textual = Widget.render_lines(table, crop)
    ours = table.render_lines(crop)
    return lines(textual), lines(ours)


async def check_states(app, pilot) -> int:
    table = app.screen.query_one(TaskTable)
    assert plain_box(table)  # the fast path is the one taken with the table's CSS
    checked = 0
    full = Region(0, 0, table.region.width, table.region.height)
    # Followed, then the cursor moved (paused), scrolled to the top, columns scrolled sideways, blurred.
    for keys in ((), ("k", "k", "k"), ("g",), ("right", "right"), ("tab",)):
        for key in keys:
            await pilot.press(key)
        await settle(app, pilot)
        for crop in (full, Region(0, 3, table.region.width, 5), Region(4, 0, 20, table.region.height)):
            textual, ours = both_ways(table, crop)
            assert ours == textual, keys
            checked += 1
    return checked


async def test_rows_drawn_as_textual_draws_them_at_80x24(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert await check_states(app, pilot) == 15


async def test_rows_drawn_as_textual_draws_them_wide(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(app, pilot)
        assert await check_states(app, pilot) == 15


async def check_event_table(app, pilot) -> int:
    from agentdeck.console.widgets.task_events import EventTable

    table = app.screen.query_one(EventTable)
    assert plain_box(table)  # focused too: its tint is a background tint, not a line filter
    checked = 0
    full = Region(0, 0, table.region.width, table.region.height)
    # Opened (focused, cursor on the first event), moved down, scrolled sideways, blurred (tab to the payload).
    for keys in ((), ("j", "j"), ("right",), ("tab",)):
        for key in keys:
            await pilot.press(key)
        await settle(app, pilot)
        for crop in (full, Region(0, 1, table.region.width, 3), Region(3, 0, 15, table.region.height)):
            textual, ours = both_ways(table, crop)
            assert ours == textual, keys
            checked += 1
    return checked


async def test_a_tasks_events_drawn_as_textual_draws_them(sample_db, make_app):
    from agentdeck.console.screens.task_detail import TaskDetailScreen

    app = make_app(sample_db)
    for size in ((80, 24), (160, 45)):
        async with app.run_test(size=size) as pilot:
            await settle(app, pilot)
            await pilot.press("enter")
            await settle(app, pilot)
            assert isinstance(app.screen, TaskDetailScreen) and app.screen.events
            assert await check_event_table(app, pilot) == 12
        app = make_app(sample_db)


async def test_past_midnight_an_unchanged_row_reads_its_date_not_a_time_of_day(sample_db):
    # Rows kept from the last refresh keep their drawn cells; the first column's "14:22:05" is only true on
    # the day it was drawn. The same rows shown again the next day must read "Nov 19", not yesterday's time.
    import time

    from textual.app import App

    from agentdeck.store import queries
    from agentdeck.store.db import connect

    conn = connect(sample_db, readonly=True)
    rows = queries.tasks_newest(conn, queries.TaskFilter(), 20, listed=True)
    conn.close()
    seen = max(r["seen"] for r in rows)
    newest = next(r for r in rows if r["seen"] == seen)

    class One(App):
        def compose(self):
            yield TaskTable()

    def first_column(table: TaskTable) -> str:
        index = table.shown.keys.index(newest["task_id"]) + 1  # (line 0 is the header)
        strip = table.render_lines(Region(0, index, table.region.width, 1))[0]
        return strip.text.strip().split()[0:2]

    app = One()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(TaskTable)
        table.show_rows(rows, seen + 1)
        await pilot.pause()
        today = first_column(table)
        assert today[0] == time.strftime("%H:%M:%S", time.gmtime(seen))
        table.show_rows(list(rows), seen + 86_400)  # the same rows, a day later
        await pilot.pause()
        assert first_column(table) == time.strftime("%b %d", time.gmtime(seen)).split()
