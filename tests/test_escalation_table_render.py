"""The Escalations list draws its own rows (EscalationTable over CachedLines) where it was a DataTable: in every
state a person sees it in (a clock tick, the cursor moved, scrolled sideways at 80 columns, the decided view,
blurred, the mouse over a row), the screen must be the one the DataTable it replaced draws with the same rows,
and a reload that changes nothing must draw nothing again."""

from __future__ import annotations

from hypothesis import example, given, settings, strategies as st
from rich.console import Console
from rich.padding import Padding
from rich.style import Style
from rich.text import Text
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.renderables.styled import Styled
from textual.strip import Strip

from conftest import FIXED_NOW
from agentdeck.console.widgets.escalation_table import EscalationTable, plain_cell
from agentdeck.console.widgets.vim_table import VimTable
from tasks_support import settle
from test_escalations_support import esc_db  # noqa: F401  (fixture)


def lines(strips) -> list[list[tuple[str, Style]]]:
    return [[(segment.text, segment.style) for segment in strip] for strip in strips]


async def as_datatable(app, pilot, table: EscalationTable) -> tuple[str, list]:
    """(the screen, the table's lines) with the DataTable it replaced in its place, holding the same rows."""
    focused = app.focused
    ref = VimTable(cursor_type="row", zebra_stripes=True)
    ref.styles.height = "1fr"  # as #esc-table
    table.display = False
    await table.parent.mount(ref, after=table)
    ref.add_columns(*table.labels)
    for key in table.keys:
        ref.add_row(*table.get_row_at(table.get_row_index(key)), key=key)
    if focused is table:
        ref.focus()
    await pilot.pause()
    ref.move_cursor(row=table.cursor_row, animate=False)
    await pilot.pause()
    ref.scroll_to(table.scroll_x, table.scroll_y, animate=False, force=True)
    if table._show_hover:
        ref._show_hover_cursor = True
        ref.hover_coordinate = Coordinate(table.hover_row, 0)
    await settle(app, pilot)
    assert (ref.scroll_x, ref.scroll_y, ref.cursor_row) == (table.scroll_x, table.scroll_y, table.cursor_row)
    screen = app.export_screenshot()
    drawn = lines(ref.render_lines(Region(0, 0, ref.region.width, ref.region.height)))
    await ref.remove()
    table.display = True
    if focused is not None:
        focused.focus()
    await settle(app, pilot)
    return screen, drawn


async def check_states(app, pilot, now: list[float]) -> int:
    table = app.screen.query_one(EscalationTable)
    checked = 0
    # Shown; the clock moved (ages and time left change in place); cursor down; sideways; the decided view
    # (sideways again, then back), an hour on; blurred (tab to the detail); the mouse over the second row.
    for keys, minutes in (((), 0), ((), 7), (("j",), 0), (("right",), 0), (("h",), 0), (("right", "right"), 0),
                          (("left", "j"), 61), (("tab",), 0), (("hover",), 0)):
        now[0] += minutes * 60
        if minutes:
            app.screen.reload()
        for key in keys:
            if key == "hover":
                await pilot.hover(table, offset=(3, 2))
            else:
                await pilot.press(key)
        await settle(app, pilot)
        now[0] += 1
        app.screen.reload()  # a tick: the age of every row moves by a second (some cells change, most not)
        await settle(app, pilot)
        if "hover" in keys:
            assert table._show_hover and table.hover_row == 1, "the mouse's row is drawn as hovered"
        ours = app.export_screenshot()
        drawn = lines(table.render_lines(Region(0, 0, table.region.width, table.region.height)))
        screen, theirs = await as_datatable(app, pilot, table)
        assert drawn == theirs, keys
        assert ours == screen, keys
        checked += 1
    return checked


async def test_drawn_as_the_datatable_it_replaced_at_80x24(esc_db, make_app):  # noqa: F811
    now = [FIXED_NOW]
    app = make_app(esc_db, clock=lambda: now[0])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        table = app.screen.query_one(EscalationTable)
        assert await check_states(app, pilot, now) == 9
        assert table.scroll_x > 0 or table.max_scroll_x == 0


async def test_drawn_as_the_datatable_it_replaced_wide(esc_db, make_app):  # noqa: F811
    now = [FIXED_NOW]
    app = make_app(esc_db, clock=lambda: now[0])
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        assert await check_states(app, pilot, now) == 9


async def test_a_reload_that_changes_nothing_draws_nothing_again(esc_db, make_app, monkeypatch):  # noqa: F811
    # A store change or a tick reads the queue back whole, usually the same: the cells that did not change keep
    # their Text (the row its strip), and a frame after a reload that changed nothing draws no row again.
    now = [FIXED_NOW]
    app = make_app(esc_db, clock=lambda: now[0])
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        table = app.screen.query_one(EscalationTable)
        full = Region(0, 0, table.region.width, table.region.height)
        table.render_lines(full)
        drawn: list[int] = []
        inner = EscalationTable._strip

        def counting(self, row, *a, **kw):
            drawn.append(row)
            return inner(self, row, *a, **kw)

        monkeypatch.setattr(EscalationTable, "_strip", counting)
        before = {k: table.get_row_at(i) for i, k in enumerate(table.keys)}
        widths = table.widths
        app.screen.reload()
        await settle(app, pilot)
        table.render_lines(full)
        assert drawn == [], "nothing changed: every row's strip is the one drawn before"
        now[0] += 3600
        app.screen.reload()
        await settle(app, pilot)
        after = {k: table.get_row_at(i) for i, k in enumerate(table.keys)}
        assert list(after) == list(before)
        moved = {c for k in after for c, (a, b) in enumerate(zip(after[k], before[k])) if a is not b}
        assert moved and moved < set(range(len(table.labels))), "an hour on, the ages moved, the ids did not"
        assert all(str(after[k][-1]) != str(before[k][-1]) for k in after), "the age moved on"
        table.render_lines(full)
        header = [-1] if table.widths != widths else []  # (a column that widened: "EXPIRED -51m")
        assert sorted(drawn) == header + list(range(table.row_count)), "each row drawn again once"


CELL_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
CELL_STYLE = st.sampled_from(["", "bold magenta", "yellow", "dim italic", "red on blue"])


@settings(max_examples=300, deadline=None)
@given(text=CELL_TEXT, style=CELL_STYLE, justify=st.sampled_from([None, "default", "left", "right", "center"]),
       extra=st.integers(-3, 4), cursor=st.booleans())
@example(text="0 ", style="", justify="right", extra=0, cursor=False)  # Rich drops a right cell's trailing space
@example(text="\U0001f3fb", style="", justify=None, extra=0, cursor=False)  # a modifier alone: Rich draws nothing
def test_a_cell_drawn_without_rich_is_the_cell_rich_draws(text, style, justify, extra, cursor):
    # A plain cell is drawn straight into segments (plain_cell); it must be what DataTable's Rich call makes of
    # it, for any text (controls, wide or zero-width characters, too long: those are left to the Rich call).
    console = Console(width=200)
    cell = Text(text, style=style, justify=justify)
    content = max(0, cell.cell_len + extra)
    pre = Style(bgcolor="grey23") + Style.from_meta({"row": 1, "column": 2})
    post = Style(color="white") if cursor else Style()
    ours = plain_cell(cell, content, pre, post)
    if ours is None:
        assert not (text.isascii() and text.isprintable() and extra >= 0 and justify in (None, "default", "right")), \
            "a plain cell that fits is drawn without Rich"
        return
    options = console.options.update_dimensions(content + 2, 1).update(no_wrap=True)
    rich = console.render_lines(Styled(Padding(cell, (0, 1)), pre_style=pre, post_style=post), options)[0]
    assert lines([Strip(ours).simplify()]) == lines([Strip(rich).simplify()])
