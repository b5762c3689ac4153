"""The Escalations list reuses a cell's rendered lines while the cell is unchanged (EscalationTable._render_cell)
and looks its own style up once a frame (EscalationTable.render_lines):
after any change a person makes or sees (a clock tick moving ages, the cursor, sideways, the decided view,
focus), its lines must be the ones DataTable draws from nothing."""

from __future__ import annotations

from textual.geometry import Region
from textual.widgets import DataTable

from conftest import FIXED_NOW
from agentdeck.console.widgets.escalation_table import EscalationTable
from tasks_support import settle
from test_escalations_support import esc_db  # noqa: F401  (fixture)


def lines(strips) -> list[list[tuple[str, object]]]:
    return [[(segment.text, segment.style) for segment in strip] for strip in strips]


def kept_and_fresh(table: EscalationTable, crop: Region):
    """(the lines drawn with the cells kept, the lines DataTable draws with every cache emptied)."""
    table._styles_cache.clear()
    table._line_cache.clear()
    table._row_render_cache.clear()
    kept = lines(table.render_lines(crop))
    table._clear_caches()  # DataTable's and ours
    table._styles_cache.clear()
    # DataTable's own frame: its style looked up for every line, as without the table's render_lines.
    return kept, lines(DataTable.render_lines(table, crop))


async def check_states(app, pilot, now: list[float]) -> int:
    table = app.screen.query_one(EscalationTable)
    checked = 0
    full = Region(0, 0, table.region.width, table.region.height)
    # Shown; the clock moved (ages and time left change: update_cell); cursor down; sideways; the decided
    # view; blurred (tab to the detail).
    for keys, minutes in (((), 0), ((), 7), (("j",), 0), (("right",), 0), (("h",), 0), (("j",), 61),
                          (("tab",), 0)):
        now[0] += minutes * 60
        if minutes:
            app.screen.reload()
        for key in keys:
            await pilot.press(key)
        await settle(app, pilot)
        table.render_lines(full)  # drawn once in this state: the kept cells are from this or earlier states
        now[0] += 1
        app.screen.reload()  # a tick: the age of every row moves by a second (some cells change, most not)
        await settle(app, pilot)
        kept, fresh = kept_and_fresh(table, full)
        assert kept == fresh, keys
        checked += 1
    return checked


async def test_kept_cells_draw_as_datatable_draws_them_at_80x24(esc_db, make_app):  # noqa: F811
    now = [FIXED_NOW]
    app = make_app(esc_db, clock=lambda: now[0])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        assert await check_states(app, pilot, now) == 7


async def test_kept_cells_draw_as_datatable_draws_them_wide(esc_db, make_app):  # noqa: F811
    now = [FIXED_NOW]
    app = make_app(esc_db, clock=lambda: now[0])
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        assert await check_states(app, pilot, now) == 7


async def test_an_hour_later_only_the_cells_that_moved_are_rendered_again(esc_db, make_app, monkeypatch):  # noqa: F811
    # A clock tick (or a store change) that changes some cells must not render every cell in view through
    # Rich again: an hour on, the age and the time left of each pending escalation change, the rest do not.
    now = [FIXED_NOW]
    app = make_app(esc_db, clock=lambda: now[0])
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        table = app.screen.query_one(EscalationTable)
        rendered: list[tuple[int, int]] = []
        inner = DataTable._render_cell

        def counting(self, row_index, column_index, *a, **kw):
            rendered.append((row_index, column_index))
            return inner(self, row_index, column_index, *a, **kw)

        def cells() -> dict[tuple[int, int], object]:
            return {(r, c): table.get_cell_at((r, c)) for r in range(table.row_count) for c in range(len(table.columns))}

        before = cells()
        monkeypatch.setattr(DataTable, "_render_cell", counting)
        now[0] += 3600
        app.screen.reload()
        await settle(app, pilot)
        after = cells()
        moved = {c for (r, c), value in after.items() if value is not before[(r, c)]}
        assert moved, "an hour on, the ages changed"
        body = [(r, c) for r, c in rendered if r >= 0]
        assert body and {c for _, c in body} <= moved, "only the columns whose cells changed are rendered again"
        assert len(body) <= len(moved) * table.row_count < len(after)
