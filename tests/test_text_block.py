"""TextBlock (console/widgets/text_block.py) draws what a Static draws for the same text, a line at a time:
the task detail's summary and payload moved to it must look the same, whatever a trace puts in them."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.text import Text
from textual.app import App, ComposeResult
from textual.strip import Strip
from textual.visual import Visual, visualize
from textual.widgets import Static

from agentdeck.console.safe import plain
from agentdeck.console.widgets.text_block import TextBlock

CSS = "Static, TextBlock { padding: 0 1; background: $boost; color: $foreground; }"
STYLES = ["bold", "dim", "bold red", "yellow", "magenta", "italic", "underline", "bold cyan", "on blue", "reverse"]
# Words, spaces and newlines, wide and combining characters, tabs, long unbroken runs, hostile markup and escapes.
PIECES = st.sampled_from(["word", "a", " ", "  ", "\n", "\t", "漢字", "é", "e\u0301", "x" * 30, "[bold]x[/]",
                          "\x1b[31m", "[@click=app.quit]", "{", "}", '"key": ', "-", "…", "⏎", "😀"])


class Pair(App):
    CSS = CSS

    def compose(self) -> ComposeResult:
        yield Static(id="static")
        yield TextBlock(id="block")


def cells(strip: Strip) -> list[tuple[str, str]]:
    """A line as characters and the style each is drawn in (a style's meta, Textual's mouse offsets, left out)."""
    return [(char, str(segment.style)) for segment in strip for char in segment.text]


@st.composite
def styled_texts(draw) -> Text:
    # A style of the whole Text under its spans, as the payload's head gives the payload below it.
    text = plain("".join(draw(st.lists(PIECES, max_size=40))), style=draw(st.sampled_from(["", *STYLES])))
    for _ in range(draw(st.integers(0, 5))):
        if not text.plain:
            break
        start = draw(st.integers(0, len(text.plain) - 1))
        end = draw(st.integers(start + 1, len(text.plain)))
        text.stylize(draw(st.sampled_from(STYLES)), start, end)
    if draw(st.booleans()):
        text.stylize(draw(st.sampled_from(STYLES)))  # the whole text (Text.style-like)
    return text


async def test_a_text_block_draws_the_lines_a_static_draws():
    app = Pair()
    async with app.run_test(size=(100, 20)):
        static, block = app.query_one(Static), app.query_one(TextBlock)

        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(text=styled_texts(), width=st.integers(8, 60))  # (the detail never draws them narrower)
        def same(text: Text, width: int) -> None:
            block.update(text)
            visual = visualize(static, text, markup=False)
            base = static.visual_style
            expected = Visual.to_strips(static, visual, width, None, base)
            got = [block.line_strip(y, width) for y in range(len(block.lines(width)))]
            assert [s.text for s in got] == [s.text for s in expected]
            assert [cells(s) for s in got] == [cells(s) for s in expected]
            if "\t" not in text.plain:  # (Textual measures a line with tabs before expanding them: a line more)
                assert block.get_content_height(app.size, app.size, width) == visual.get_height(static.styles, width)  # type: ignore[arg-type]

        same()


async def test_a_text_block_is_as_tall_as_its_lines_and_shows_markup_literally():
    app = Pair()
    async with app.run_test(size=(40, 20)) as pilot:
        block = app.query_one(TextBlock)
        block.update(plain("[bold]not bold[/bold]\n" + "word " * 20))
        await pilot.pause()
        assert block.size.height == 4  # its own line, then 100 characters wrapped at 38 columns
        assert block.line_strip(0, 38).text.startswith("[bold]not bold[/bold]")
        block.update(Text("one line"))
        await pilot.pause()
        assert block.size.height == 1


async def test_text_selected_with_the_mouse_is_the_text_a_static_gives_and_is_drawn_selected():
    """A drag over the text selects it (highlighted, and the screen's copy takes it) as over a Static: with
    TextBlock the copy was its CSS name ("TextBlock#block") and nothing was highlighted."""
    app = Pair()
    app.CSS = CSS + " Static, TextBlock { height: 6; width: 24; }"
    async with app.run_test(size=(60, 20)) as pilot:
        text = plain("first line\n" + "wrapped words " * 4 + "\n漢字 and\ttab " + "tail " * 5)
        got = {}
        for widget in (app.query_one(Static), app.query_one(TextBlock)):
            widget.update(text)
            await pilot.pause()
            await pilot.mouse_down(widget, offset=(4, 0))
            await pilot.hover(widget, offset=(9, 4))
            await pilot.mouse_up(widget, offset=(9, 4))
            await pilot.pause()
            got[type(widget).__name__] = (app.screen.get_selected_text(), [
                cells(strip) for strip in widget.render_lines(widget.region.reset_offset)])
            app.screen.clear_selection()
            await pilot.pause()
        assert got["TextBlock"][0] == got["Static"][0]
        assert got["TextBlock"][0].startswith("st line\nwrapped words")
        assert got["TextBlock"][1] == got["Static"][1]


async def test_end_spaces_of_a_line_with_combining_characters_are_dropped_as_a_static_drops_them():
    """'e' + a combining accent is one cell and two characters: Content drops a line's end spaces beyond the width
    counted in characters, so a Static draws no reversed cell after such a line; TextBlock drew one (found by
    test_a_text_block_draws_the_lines_a_static_draws on a later run: 'wordaaaaé ' at width 10)."""
    app = Pair()
    async with app.run_test(size=(100, 20)):
        static, block = app.query_one(Static), app.query_one(TextBlock)
        text = plain("worde\u0301 caf\u00e9e\u0301  ")
        text.stylize("reverse")
        for width in (10, 12, 13, 14, 20):
            block.update(text)
            expected = Visual.to_strips(static, visualize(static, text, markup=False), width, None, static.visual_style)
            assert [cells(block.line_strip(y, width)) for y in range(len(block.lines(width)))] == \
                [cells(s) for s in expected], width


class PlainPair(App):
    """A TextBlock as the task detail's payload is: no padding or border of its own, in a box that has them."""

    CSS = "#box { background: $boost; padding: 0 1; border-left: vkey $primary; } TextBlock { color: $foreground; }"

    def compose(self) -> ComposeResult:
        from textual.containers import VerticalScroll

        with VerticalScroll(id="box"):
            yield TextBlock(id="block")


async def test_a_plain_text_block_draws_the_lines_textual_draws_for_it():
    # TextBlock.render_lines makes a plain box's lines itself (padded, filtered, kept): Textual's styles cache
    # must have made the same, for any text, in part or whole, and again after the text changes.
    from textual.geometry import Region
    from textual.widget import Widget

    from agentdeck.console.widgets.line_table import plain_box

    app = PlainPair()
    async with app.run_test(size=(70, 30)) as pilot:
        block = app.query_one(TextBlock)
        assert plain_box(block)

        def both(crop: Region):
            block._styles_cache.clear()
            return ([cells(s) for s in Widget.render_lines(block, crop)], [cells(s) for s in block.render_lines(crop)])

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(texts=st.lists(styled_texts(), min_size=1, max_size=3))
        def same(texts: list[Text]) -> None:
            for text in texts:
                block.update(text)
                block.styles.height = max(1, len(block.lines(block.size.width)))
                app.screen._refresh_layout()  # (its size for this text, as the next frame would lay it out)
                width, height = block.size
                for crop in (Region(0, 0, width, height), Region(2, 0, max(1, width - 5), min(height, 2))):
                    textual, ours = both(crop)
                    assert ours == textual

        same()
        await pilot.pause()
