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


class _DirtyRegions(set):
    """The compositor's dirty regions; notes a clear made other than by a render (the frame kept is then stale)."""

    rendering = False
    dropped = False

    def clear(self) -> None:
        if not self.rendering and len(self):
            self.dropped = True  # (Textual hands a background screen's changes to the screen on top)
        super().clear()


class FrameKeepingCompositor(CroppedCompositor):
    """Keeps the screen's frame as last written (its chops), so a switch back to it draws only what changed.

    A screen switched to must be written whole (the terminal shows another screen), and Textual renders every
    line of every widget for that: profiled under load, most of a switch's time between the data being read and
    the frame being written. Here every full update is kept, and every partial one patched into it, so that the
    whole frame of a switch (``whole_from_frame``) is the kept frame with only the regions changed since
    (Textual's dirty regions: widgets refreshed while away, geometry changed by the layout) rendered again. Any
    doubt (another size or cuts, changes cleared without being drawn, no frame yet) draws it all, as Textual does.
    """

    def __init__(self) -> None:
        super().__init__()
        self._dirty_regions: _DirtyRegions = _DirtyRegions()
        self._frame: list[dict[int, Strip | None]] | None = None
        self._frame_cuts: list[list[int]] | None = None
        self.whole_from_frame = False  # the next update is a whole frame: from the kept one where it can be

    def _forget_frame(self) -> None:
        self._frame = self._frame_cuts = None

    def _frame_usable(self) -> bool:
        """Whether the kept frame is the screen as last written, divided at the current cuts (re-divided if not)."""
        frame, cuts = self._frame, self.cuts
        if frame is None or self._dirty_regions.dropped or len(frame) != self.size.height or len(cuts) != len(frame):
            return False
        if self._frame_css != self._css_generation():
            return False  # (the theme or stylesheet changed since: the screen's own background too)
        if self._frame_cuts != cuts:
            # Widgets moved or were resized (rows added, a pane shown): the lines written are the same, cut
            # elsewhere. What the move changed is among the dirty regions (Compositor.reflow marks it).
            width = self.size.width
            for y, (line, line_cuts) in enumerate(zip(frame, cuts)):
                if None in line.values():
                    return False
                whole = Strip.join(line.values())
                if whole.cell_length != width:
                    return False
                frame[y] = dict(zip(line_cuts[:-1], whole.divide(line_cuts[1:])))
            self._frame_cuts = [list(line_cuts) for line_cuts in cuts]
        return True

    def render_update(self, full: bool = False, screen_stack=None, simplify: bool = False):
        whole, self.whole_from_frame = self.whole_from_frame, False
        if whole:
            # Every widget's pending repaint, also one whose update message the screen has not handled yet (a
            # widget refreshed while its screen was away, just before the switch): all of it is drawn again.
            self.update_widgets(set(self.visible_widgets))
        if whole and not full and not simplify and self.size.region not in self._dirty_regions and self._frame_usable():
            from textual._compositor import LayoutUpdate

            self.render_partial_update()  # patches the kept frame with what changed (if anything did)
            assert self._frame is not None
            return LayoutUpdate([list(chop.values()) for chop in self._frame], self.size.region)  # type: ignore[arg-type]
        if whole:
            full = True
        return super().render_update(full=full, screen_stack=screen_stack, simplify=simplify)

    def render_full_update(self, simplify: bool = False):
        dirty = self._dirty_regions
        dirty.rendering = True
        try:
            update = super().render_full_update(simplify=simplify)
        finally:
            dirty.rendering = False
        dirty.dropped = False
        if simplify:
            self._forget_frame()  # (an export: the strips were joined)
        else:
            self._frame = [dict(zip(cuts[:-1], line)) for cuts, line in zip(self.cuts, update.strips)]
            self._frame_cuts = [list(cuts) for cuts in self.cuts]
            self._frame_css = self._css_generation()
        return update

    _frame_css: object = None

    def _css_generation(self) -> object:
        try:
            return self.root.app._css_update_count  # type: ignore[union-attr]
        except Exception:  # (no screen laid out yet, or no app running): never matches a kept frame
            return object()

    def render_partial_update(self):
        dirty = self._dirty_regions
        usable = self._frame_usable()
        regions = list(dirty)
        dirty.rendering = True
        try:
            update = super().render_partial_update()
        finally:
            dirty.rendering = False
        if update is None:
            return update
        if not usable:
            self._forget_frame()
            return update
        self._patch(update.chops, regions)
        return update

    def _patch(self, chops, regions: list[Region]) -> None:
        """Write a partial update's chops into the kept frame: only within its spans, as the terminal gets them."""
        frame, cuts = self._frame, self._frame_cuts
        assert frame is not None and cuts is not None
        for y, x1, x2 in self._regions_to_spans(regions):
            if not 0 <= y < len(frame):
                continue
            line, new, ends = frame[y], chops[y], cuts[y][1:]
            for cut, end in zip(cuts[y][:-1], ends):
                if end <= x1 or cut >= x2:
                    continue  # (this chop is outside the span)
                strip = new.get(cut)
                if strip is None:
                    continue
                if x1 <= cut and end <= x2:
                    line[cut] = strip  # the whole chop was drawn
                    continue
                old = line.get(cut)
                if old is None:
                    self._forget_frame()
                    return
                a, b = max(x1, cut) - cut, min(x2, end) - cut
                line[cut] = Strip.join([old.crop(0, a), strip.crop(a, b), old.crop(b, end - cut)])
