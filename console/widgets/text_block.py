"""Text from a trace, wrapped to the widget's width and drawn a line at a time: a light stand-in for Static.

``Static`` draws a rich ``Text`` through Textual's ``Content``: converted, wrapped and rendered whole on every
update, about 0.15 ms a line. A task's summary and its event's payload are new on every enter, and drawing them
that way was the largest part of the frame that opens a task's detail (issue 9). Here the text is split at its
newlines, only a line wider than the widget is wrapped (rich's word wrap, as Textual's), and a line becomes a
strip only when it is drawn, its styles laid over the widget's as Textual lays them (a colour over the
background, ANSI colours through the theme). tests/test_text_block.py checks it draws what a Static draws.

The text is shown as it is: a ``rich.text.Text`` is never parsed as markup (``console.safe.plain`` makes it).
"""

from __future__ import annotations

from rich._wrap import divide_line
from rich.segment import Segment
from rich.style import Style as RichStyle
from rich.text import Text
from textual._loop import loop_last
from textual.geometry import Region, Size
from textual.selection import Selection
from textual.content import Content
from textual.strip import Strip
from textual.style import Style
from textual.visual import Visual
from textual.widget import Widget

from agentdeck.console.safe import same_text
from agentdeck.console.widgets.line_table import plain_box


class TextBlock(Widget):
    """Lines of text as tall as they wrap to (``height: auto``, as a Static)."""

    DEFAULT_CSS = "TextBlock { height: auto; }"

    def __init__(self, text: Text | None = None, **kw) -> None:
        super().__init__(**kw)
        self.text = text if text is not None else Text()
        self._lines: tuple[int, list[Text | Strip]] | None = None  # (width, the text's lines at that width)
        # Where each of those lines starts in the text: (character, line of the text), as the offsets Textual's
        # mouse selection reads from each segment's meta (a Static's Content gives them the same way).
        self._origins: list[tuple[int, int]] = []
        self._strips: dict[int, Strip] = {}  # line -> strip, for the width and styles in _strips_for
        self._strips_for: tuple | None = None
        self._styles_cache_: dict[tuple, Style] = {}
        # line -> (the strip line_strip made, it padded to the width and filtered): render_lines, plain box only.
        self._padded: dict[int, tuple[Strip | None, Strip]] = {}
        self._padded_for: tuple | None = None

    def update(self, text: Text) -> None:
        """Show ``text`` (a rich Text: shown literally)."""
        if same_text(text, self.text):
            return
        self.text = text
        self._lines = None
        self._strips.clear()
        self.refresh(layout=True)  # (its height follows its lines)

    def lines(self, width: int) -> list[Text | Strip]:
        """The text's lines at ``width`` cells: its own lines, the wider ones wrapped as Textual wraps them.

        A line with a tab is drawn by Textual itself (a strip per wrapped line): how Content expands tabs
        depends on the line's styles and on cached cell lengths, and payloads seldom have any.
        """
        if self._lines is not None and self._lines[0] == width:
            return self._lines[1]
        out: list[Text | Strip] = []
        origins: list[tuple[int, int]] = []
        for y, line in enumerate(self.text.split("\n", allow_blank=True)):
            if "\t" in line.plain:
                content = Content.from_rich_text(line, self.app.console)
                selected = self.text_selection.get_span(y) if self.text_selection is not None else None
                if selected is not None:  # (as Content draws a selection: over the line, before its tabs expand)
                    start, end = selected
                    content = content.stylize(self._selection_style(), start, len(line.plain) if end == -1 else end)
                strips = Visual.to_strips(self, content, width, None, self.visual_style, apply_selection=False)
                out.extend(_on_line(strip, y) for strip in strips)
                origins.extend((0, y) for _ in strips)
                continue
            if line.cell_len <= width or width <= 0:
                if len(line.plain) > width > 0 and line.plain[-1:].isspace():
                    # Content drops end spaces beyond the width counted in characters, not cells (a line with
                    # combining characters): as it does, or those spaces are drawn in the line's styles.
                    line = line.copy()
                    line.rstrip_end(width)
                out.append(line)
                origins.append((0, y))
                continue
            # As Content._wrap_and_format: cut at word ends (long words folded); a line's end spaces dropped.
            # The Text's own style is set aside while cutting and given back to each part (line_strip lays it
            # under the spans as Content does).
            under, line.style = line.style, ""
            cuts = divide_line(line.plain, width, fold=True)
            for (last, part), x in zip(loop_last(line.divide(cuts)), [0, *cuts]):
                if not last:
                    part.rstrip()
                part.truncate(width)
                part.rstrip_end(width)
                part.style = under
                out.append(part)
                origins.append((x, y))
        self._lines = (width, out)
        self._origins = origins
        self._strips.clear()
        return out

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.lines(width))

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips_for = None  # (a theme change: the styles laid over the widget's change)

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        """The text under the mouse selection (what the screen's copy puts on the clipboard), as a Static's."""
        return selection.extract(self.text.plain), "\n"

    def selection_updated(self, selection: Selection | None) -> None:
        self._strips.clear()  # (the lines in the selection are drawn in its style)
        if self._lines is not None and any(isinstance(line, Strip) for line in self._lines[1]):
            self._lines = None  # (a line with a tab is drawn with the selection when made)
        super().selection_updated(selection)

    def _selection_style(self) -> Style:
        return Style.from_styles(self.screen.get_component_styles("screen--selection"))

    def _style(self, under: str | RichStyle, style: RichStyle | None, base: Style) -> Style:
        """A span's style over the Text's own (``under``) over the widget's, as Textual's Content renders it.

        (Content keeps a Text's own style as given: a string is parsed as Textual parses styles, so "red" is
        #ff0000, where a span's "red" is the terminal's ANSI red.)"""
        key = (under, style)
        cached = self._styles_cache_.get(key)
        if cached is None:
            over = base
            if under:
                over += self._get_style(under) if isinstance(under, str) else \
                    Style.from_rich_style(under, self.app.ansi_theme)
            if style:
                over += Style.from_rich_style(style, self.app.ansi_theme)
            cached = self._styles_cache_[key] = over
        return cached

    def render_line(self, y: int) -> Strip:
        return self.line_strip(y, self.size.width)

    def render_lines(self, crop: Region) -> list[Strip]:
        """Textual's lines for ``crop``; for a plain box (the payload's block: no padding, border, tint…) made here.

        Textual's styles cache pads each line to the width and runs the line filters on a new strip every time
        the widget is drawn: on enter every line of a new payload, a third of what drawing it cost. Here the
        padded, filtered line is kept with the strip it was made from (``_strips``, cleared when the text, the
        width or the styles change). tests/test_text_block.py checks the lines are Textual's.
        """
        if not plain_box(self):
            return super().render_lines(crop)
        width = self.size.width
        base_background, background = self.background_colors
        inner = Style(background=base_background + background).rich_style
        filters = self.get_line_filters()
        key = (width, inner, tuple(filters), background)
        if self._padded_for != key:
            self._padded_for = key
            self._padded.clear()
        height = self.size.height  # (as Textual: lines past the text but in the widget are line_strip's blanks)
        strips = []
        for y in crop.line_range:
            made = self.line_strip(y, width) if y < height else None
            held = self._padded.get(y)
            if held is not None and held[0] is made:
                strips.append(held[1])
                continue
            strip = made.adjust_cell_length(width, inner) if made is not None else Strip.blank(width, inner)
            for line_filter in filters:
                strip = strip.apply_filter(line_filter, background)
            self._padded[y] = (made, strip)
            strips.append(strip)
        x1, x2 = crop.column_span
        if (x1, x2) != (0, width):
            strips = [strip.crop(x1, x2) for strip in strips]
        return strips

    def line_strip(self, y: int, width: int) -> Strip:
        """Line ``y`` at ``width`` cells as the widget draws it, as a Static's content (the widget's styles
        pad it to its width, then add its padding and border)."""
        base = self.visual_style
        key = (width, base, self.app.ansi_theme)
        if self._strips_for != key:
            self._strips_for = key
            self._strips.clear()
            self._styles_cache_.clear()
            if self._lines is not None and any(isinstance(line, Strip) for line in self._lines[1]):
                self._lines = None  # (a line with a tab was drawn in the former styles)
        strip = self._strips.get(y)
        if strip is not None:
            return strip
        lines = self.lines(width)
        if not 0 <= y < len(lines):
            return Strip.blank(width, base.rich_style)
        line = lines[y]
        if isinstance(line, Strip):
            return line
        console = self.app.console
        # The Text's own style is laid under its spans by _style, as Content does (rich's render would mix it
        # into the spans' styles, parsed rich's way).
        bare = Text(line.plain, spans=line.spans) if line.style else line
        x, source = self._origins[y]
        selected = self.text_selection.get_span(source) if self.text_selection is not None else None
        if selected is not None:  # drawn over, as Content draws a selection: in the screen's selection style
            start, end = selected
            bare = bare.copy()
            bare.stylize(_SELECTED, max(start - x, 0), len(bare.plain) if end == -1 else max(end - x, 0))
            selection = self._selection_style()
        if not bare.spans and selected is None:
            # One style for the whole line (most of a payload's pretty JSON): what rich's render gives, one segment.
            segments = [Segment(bare.plain, self._style(line.style, None, base).rich_style_with_offset(x, source))] \
                if bare.plain else []
            strip = self._strips[y] = Strip(segments).crop(0, width)
            return strip
        segments = []
        for segment in bare.render(console, end=""):
            if not segment.text:
                continue
            style = segment.style
            if selected is not None and style is not None and _SELECTED_META in style.meta:
                over = self._style(line.style, style.clear_meta_and_links(), base) + selection
            else:
                over = self._style(line.style, style, base)
            segments.append(Segment(segment.text, over.rich_style_with_offset(x, source)))
            x += len(segment.text)
        strip = self._strips[y] = Strip(segments).crop(0, width)
        return strip


_SELECTED_META = "text_block_selected"
_SELECTED = RichStyle.from_meta({_SELECTED_META: True})


def _on_line(strip: Strip, y: int) -> Strip:
    """A strip drawn by Textual for one line of the text alone, its selection offsets moved to line ``y``."""
    segments = []
    for segment in strip:
        style = segment.style
        offset = style.meta.get("offset") if style is not None else None
        if style is not None and offset is not None:
            style = style + RichStyle.from_meta({"offset": (offset[0], y)})
        segments.append(Segment(segment.text, style, segment.control))
    return Strip(segments, strip.cell_length)
