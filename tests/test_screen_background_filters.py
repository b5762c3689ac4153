"""A screen's own lines (its background, where no widget covers it) are drawn as Textual draws them, through
the app's line filters: with NO_COLOR set, the background of a coloured theme is grey like everything else."""

from __future__ import annotations

from textual.geometry import Region

from tasks_support import settle

NORD_BACKGROUND = "#2e3440"  # (nord's $background: blue-grey, made grey by Textual's Monochrome filter)


def colours(strips) -> list[tuple]:
    return [(segment.text, segment.style) for strip in strips for segment in strip]


async def test_with_no_color_the_screen_background_is_drawn_without_colour(sample_db, make_app, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")  # (read as the app is made: Textual adds its Monochrome filter)
    app = make_app(sample_db)
    async with app.run_test(size=(80, 24)) as pilot:
        app.theme = "nord"
        await pilot.press("4")  # Replay without a task: the screen's background shows around its text
        await settle(app, pilot)
        assert NORD_BACKGROUND not in app.export_screenshot().lower()
        screen = app.screen
        crop = Region(0, 0, 80, 2)
        screen._styles_cache.clear()
        textual = screen._styles_cache.render_widget(screen, crop)  # (Widget.render_lines when not BLANK)
        assert colours(screen.render_lines(crop)) == colours(textual)
