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
from textual.geometry import Size
from textual.content import Content
from textual.strip import Strip
from textual.style import Style
from textual.visual import Visual
from textual.widget import Widget


class TextBlock(Widget):
    """Lines of text as tall as they wrap to (``height: auto``, as a Static)."""

    DEFAULT_CSS = "TextBlock { height: auto; }"

    def __init__(self, text: Text | None = None, **kw) -> None:
        super().__init__(**kw)
        self.text = text if text is not None else Text()
        self._lines: tuple[int, list[Text | Strip]] | None = None  # (width, the text's lines at that width)
        self._strips: dict[int, Strip] = {}  # line -> strip, for the width and styles in _strips_for
        self._strips_for: tuple | None = None
        self._styles_cache_: dict[tuple, RichStyle] = {}

    def update(self, text: Text) -> None:
        """Show ``text`` (a rich Text: shown literally)."""
        if text.plain == self.text.plain and text.spans == self.text.spans and text.style == self.text.style:
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
        for line in self.text.split("\n", allow_blank=True):
            if "\t" in line.plain:
                out.extend(Visual.to_strips(self, Content.from_rich_text(line, self.app.console), width, None,
                                            self.visual_style, apply_selection=False))
                continue
            if line.cell_len <= width or width <= 0:
                out.append(line)
                continue
            # As Content._wrap_and_format: cut at word ends (long words folded); a line's end spaces dropped.
            # The Text's own style is set aside while cutting and given back to each part (line_strip lays it
            # under the spans as Content does).
            under, line.style = line.style, ""
            for last, part in loop_last(line.divide(divide_line(line.plain, width, fold=True))):
                if not last:
                    part.rstrip()
                part.truncate(width)
                part.rstrip_end(width)
                part.style = under
                out.append(part)
        self._lines = (width, out)
        self._strips.clear()
        return out

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.lines(width))

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips_for = None  # (a theme change: the styles laid over the widget's change)

    def _style(self, under: str | RichStyle, style: RichStyle | None, base: Style) -> RichStyle:
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
            cached = self._styles_cache_[key] = over.rich_style
        return cached

    def render_line(self, y: int) -> Strip:
        return self.line_strip(y, self.size.width)

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
        segments = [Segment(segment.text, self._style(line.style, segment.style, base))
                    for segment in bare.render(console, end="") if segment.text]
        strip = self._strips[y] = Strip(segments).crop(0, width)
        return strip
