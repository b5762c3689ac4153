"""The Tasks table draws its rows itself (TaskTable._render_plain) instead of through Textual's styles cache:
the lines must be the ones Textual would have made, in every state a person sees them in."""

from __future__ import annotations

from textual.geometry import Region

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
    assert table._plain_box()  # the fast path is the one taken with the table's CSS
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
