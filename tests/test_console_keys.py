"""One key map for the whole console, as an operator presses it: `?` toggles the key panel."""

from __future__ import annotations

from tasks_support import screen_lines, settle

WIDE = (160, 45)


def help_open(app) -> bool:
    return bool(app.screen.query("HelpPanel"))


async def test_question_mark_toggles_the_key_panel(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=WIDE) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        assert help_open(app)
        await pilot.press("question_mark")
        assert not help_open(app)


async def test_escape_closes_the_key_panel_then_means_what_it_means_on_the_screen(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=WIDE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"outcome:failed", "enter")
        await settle(app, pilot)
        assert not app.screen.filt.empty
        await pilot.press("question_mark")
        await pilot.press("escape")
        assert not help_open(app)
        assert not app.screen.filt.empty, "the first Esc closes the panel only"
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.screen.filt.empty


async def test_the_header_stays_on_one_line_with_the_key_panel_open(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=WIDE) as pilot:
        await settle(app, pilot)
        before = screen_lines(app)[:2]
        await pilot.press("question_mark")
        await pilot.pause()
        assert screen_lines(app)[:2] == before, "the panel must not squeeze the header"
        assert "events" in before[0]
