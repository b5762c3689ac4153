"""The first screen is styled once on the way to the console's first frame, and styled right.

Textual composes a mode's first screen before it styles the app node; it then re-parsed every stylesheet
source and restyled every node before the first frame (~10 ms of CPU that a bare Textual app does not pay).
The console styles the app node first and skips that pass (AgentDeck._style_before_first_screen): these
tests check the pass is gone and that nothing on screen is styled differently without it (the header's text
drawn in its own background colour, invisible, is what skipping it alone did).
"""

from __future__ import annotations

from textual.css.stylesheet import Stylesheet


async def test_the_first_frame_needs_no_second_stylesheet_pass(sample_db, make_app, monkeypatch):
    reparses: list[int] = []
    reparse = Stylesheet.reparse

    def counted(self: Stylesheet) -> None:
        reparses.append(1)
        reparse(self)

    monkeypatch.setattr(Stylesheet, "reparse", counted)
    app = make_app(sample_db)
    at_first_frame: list[int] = []
    display = app._display

    def first_frame(screen, renderable) -> None:
        display(screen, renderable)
        if renderable is not None and not at_first_frame:
            at_first_frame.append(len(reparses))

    app._display = first_frame  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await app.settled()
        await pilot.pause()
    assert at_first_frame == [0]


async def test_the_first_screen_is_drawn_as_after_a_full_restyle(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.settled()
        await pilot.pause()
        shown = app.export_screenshot()
        assert "on #" in str(app.rich_style)  # the app node has its background (the theme's)
        # What Textual did before the first frame (every source re-parsed, every node restyled), then every
        # widget drawn again from its styles: the screen must not change.
        app.refresh_css(animate=False)
        for widget in app.screen.walk_children(with_self=True):
            widget.refresh()
        await pilot.pause()
        assert app.export_screenshot() == shown
