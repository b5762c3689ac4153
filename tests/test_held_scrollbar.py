"""The Tasks table's scrollbar keeps the lines it drew (HeldScrollBar): what it shows must always be what
Textual's ScrollBar draws for where the list is now, after g, G and j/k and after a change of theme."""

from __future__ import annotations

from textual.geometry import Region
from textual.scrollbar import ScrollBar

from agentdeck.console.widgets.held_scrollbar import HeldScrollBar
from agentdeck.console.widgets.task_table import TaskTable
from tasks_support import settle


def drawn(strips) -> list[list[tuple[str, object]]]:
    return [[(segment.text, segment.style) for segment in strip] for strip in strips]


def both_ways(bar: ScrollBar) -> tuple[list, list]:
    """(the lines Textual draws now, the bar's own) for the whole bar."""
    crop = Region(0, 0, bar.size.width, bar.size.height)
    bar._styles_cache.clear()
    textual = ScrollBar.render_lines(bar, crop)
    return drawn(textual), drawn(bar.render_lines(crop))


async def test_scrollbar_shows_where_the_list_is_after_each_key(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=(80, 12)) as pilot:  # (short: the sample's tasks are more than a page)
        await settle(app, pilot)
        table = app.screen.query_one(TaskTable)
        bar = table.vertical_scrollbar
        assert isinstance(bar, HeldScrollBar)
        assert table.row_count > table._page_rows() and bar.display
        seen = []
        for key in ("g", "G", "g", "k", "G", "j", "g", "ctrl+d", "G"):
            await pilot.press(key)
            await settle(app, pilot)
            textual, ours = both_ways(bar)
            assert ours == textual, key
            seen.append(str(ours))
        assert seen[0] != seen[1]  # (the thumb did move: top and bottom are drawn differently)
        assert seen[0] == seen[2] and seen[1] == seen[4]  # (and g, G came back to the same lines)

        app.theme = "textual-light" if app.theme != "textual-light" else "nord"
        await settle(app, pilot)
        textual, ours = both_ways(bar)
        assert ours == textual  # (no lines kept from the theme before)
        assert str(ours) != seen[-1]


async def test_a_position_first_drawn_before_textual_rendered_the_bar_is_not_kept_blank(sample_db, make_app):
    # Textual draws a widget's lines from the ones it rendered last unless part of it was marked dirty. A bar
    # whose last refresh came while it had no size (no dirty region) and was first drawn at a new position
    # after that got blank lines from Textual, and kept for that position they stayed: no thumb at the top of
    # the list after g, on a loaded machine (test_scrollbar_shows_where_the_list_is_after_each_key, 1 in 6).
    from textual.widget import _RenderCache
    from textual.geometry import NULL_SIZE

    app = make_app(sample_db)
    async with app.run_test(size=(80, 12)) as pilot:
        await settle(app, pilot)
        bar = app.screen.query_one(TaskTable).vertical_scrollbar
        assert isinstance(bar, HeldScrollBar)
        crop = Region(0, 0, bar.size.width, bar.size.height)
        bar._held.clear()  # a position not drawn yet
        bar._render_cache = _RenderCache(NULL_SIZE, [])  # (Textual's state then: nothing rendered, nothing dirty)
        bar._dirty_regions.clear()
        bar._styles_cache.clear()
        ours = drawn(bar.render_lines(crop))
        textual, again = both_ways(bar)
        assert ours == textual == again, "the bar kept lines that are not what Textual draws for this position"
        assert any("grab" in str(line) for line in ours)  # (the thumb is drawn)
