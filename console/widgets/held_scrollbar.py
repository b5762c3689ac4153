"""A vertical scrollbar that keeps the lines it drew for the last few positions.

Textual (8.2) draws a scrollbar again, every line of it through the widget line pipeline, whenever
its position moves: ~2 ms for the Tasks table's 36-line bar, a fifth of a g or G (oldest/newest
task), and those keys go back and forth between the same two positions. The lines drawn are kept
under everything ``ScrollBar.render`` and the line pipeline read (size, position, the parent's
scrollbar colours, backgrounds, the stylesheet's generation, the app's line filters), so a position drawn before comes
back as the same lines, never stale ones.
"""

from __future__ import annotations

from textual.geometry import Region
from textual.scrollbar import ScrollBar
from textual.strip import Strip
from textual.widget import Widget


class HeldScrollBar(ScrollBar):
    KEPT = 8  # positions kept (g/G, the follow position, a page or two either side)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._held: dict[tuple, list[Strip]] = {}

    def _drawn_from(self, crop: Region) -> tuple:
        parent = self.parent
        assert isinstance(parent, Widget)
        styles = parent.styles
        return (crop, self.size, self.window_size, self.window_virtual_size, self.position, self.thickness,
                self.vertical, self.grabbed, self.mouse_over, self.app._css_update_count, self.app.ansi_color,
                styles.scrollbar_background, styles.scrollbar_color, styles.scrollbar_background_hover,
                styles.scrollbar_color_hover, styles.scrollbar_background_active, styles.scrollbar_color_active,
                parent.background_colors, self.background_colors, self.screen.styles.scrollbar_color,
                self.rich_style, tuple(self.get_line_filters()))  # (the kept lines are filtered already)

    def render_lines(self, crop: Region) -> list[Strip]:
        key = self._drawn_from(crop)
        lines = self._held.get(key)
        if lines is None:
            # Rendered now, for this position. Textual draws from the lines it rendered last unless part of the
            # widget is marked dirty: a bar refreshed while it had no size (no dirty region) and first drawn at a
            # new position after that got blank lines, and kept here they stayed for that position (no thumb at
            # the top of the list after g). Only on a position not drawn yet: the render happens then anyway.
            self._render_content()
            self._styles_cache.clear()
            lines = super().render_lines(crop)
            if len(self._held) >= self.KEPT:
                del self._held[next(iter(self._held))]
            self._held[key] = lines
        return list(lines)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._held.clear()
