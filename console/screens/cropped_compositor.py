"""A compositor that, for a partial update, draws only what lies in the part of the screen being updated.

Textual's compositor (8.2) asks every widget whose *clip* (its container's region) meets the updated area
to draw all of its lines: a new task on the Tasks list drew the header, the status line, the footer and the
screen's own 40 lines of background on every frame, and a cursor move drew every line of the table, to keep
only the lines that changed. Profiled following a fleet at 200 events/s, those were a fifth of a frame's CPU.

Here a widget is drawn only when its visible part meets the update's area, and only its lines in that area
(at their full visible width). The frame is the same: ``Compositor._render_chops`` takes from each widget only
the lines and cuts inside the updated spans, which lie inside that area. A full update (``crop`` None, or the whole screen) is unchanged.
``tests/test_cropped_compositor.py`` compares the two on every screen's partial updates.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual._compositor import Compositor
from textual.geometry import Region
from textual.strip import Strip


class CroppedCompositor(Compositor):
    def _get_renders(self, crop: Region | None = None) -> Iterable[tuple[Region, Region, list[Strip]]]:
        if not crop:
            yield from super()._get_renders(crop)
            return
        top, bottom = crop.y, crop.bottom
        for widget, (region, clip) in list(self.visible_widgets.items()):
            visible = region.intersection(clip)
            if not visible.overlaps(crop):
                continue  # (nothing of it in the update)
            # Its lines in the update, at their full visible width: a chop starts where a widget does
            # (``Compositor.cuts``), and the update's left edge need not be such a place on every line.
            y0, y1 = max(visible.y, top), min(visible.bottom, bottom)
            lines = Region(visible.x, y0, visible.width, y1 - y0)
            # ``lines`` in the place of the clip: _render_chops lays the strips out over region ∩ clip.
            yield region, lines, widget.render_lines(lines.translate(-region.offset))
