"""A model of the terminal for console tests: every update the app writes, applied to a grid of cells, so a
test can compare what the operator sees with what Textual would draw for the screen as it is now."""

from __future__ import annotations

from rich.cells import cell_len
from textual._compositor import ChopsUpdate, Compositor, LayoutUpdate
from textual._context import visible_screen_stack
from textual.app import App
from textual.strip import Strip

Cell = tuple[str, str]


def strip_cells(strip: Strip) -> list[Cell]:
    out: list[Cell] = []
    for segment in strip:
        style = str(segment.style or "")
        for char in segment.text:
            width = cell_len(char)
            if width == 0 and out:
                out[-1] = (out[-1][0] + char, out[-1][1])  # (a combining character joins the one before)
                continue
            out.append((char, style))
            out.extend(("", style) for _ in range(width - 1))
    return out


class Terminal:
    """What the terminal shows: the app's written updates applied in order (as App._display writes them)."""

    def __init__(self, app) -> None:
        self.app = app
        self.grid: list[list[Cell]] = []
        self.writes = 0
        inner = app._display

        def display(screen, renderable) -> None:
            if renderable is not None and not app._batch_count:
                self.apply(renderable)
            inner(screen, renderable)

        app._display = display

    def _put(self, x: int, y: int, cells: list[Cell]) -> None:
        width, height = self.app.size
        while len(self.grid) < height:
            self.grid.append([(" ", "")] * width)
        del self.grid[height:]
        if not 0 <= y < height:
            return
        row = self.grid[y]
        if len(row) != width:
            row = self.grid[y] = (row + [(" ", "")] * width)[:width]
        for i, cell in enumerate(cells):
            if 0 <= x + i < width:
                row[x + i] = cell

    def apply(self, update) -> None:
        self.writes += 1
        if isinstance(update, LayoutUpdate):
            region = update.region
            for dy, line in enumerate(update.strips):
                self._put(region.x, region.y + dy, strip_cells(Strip.join(line)))
        elif isinstance(update, ChopsUpdate):
            for y, x1, x2 in update.spans:
                for end, (x, strip) in zip(update.chop_ends[y], update.chops[y].items()):
                    if strip is None or x > x2 or end <= x1:
                        continue
                    if not (x2 > x >= x1 and end <= x2):
                        strip = strip.crop(0, min(end, x2) - x)
                    self._put(x, y, strip_cells(strip))
        else:
            raise AssertionError(f"unexpected update {update!r}")

    def text(self) -> list[str]:
        return ["".join(c for c, _ in row) for row in self.grid]


def textual_frame(app) -> list[list[Cell]]:
    """Every line of the screen as Textual's own compositor renders it now (every widget drawn again)."""
    screen = app.screen
    compositor = screen._compositor
    cls, compositor.__class__ = compositor.__class__, Compositor
    try:
        # Textual's own idea of what shows through (not AgentDeck's override)
        visible_screen_stack.set(App._background_screens.fget(app))  # type: ignore[attr-defined]
        chops = compositor._render_chops(compositor.size.region, lambda y: True)
    finally:
        compositor.__class__ = cls
    return [strip_cells(Strip.join([s for s in line.values() if s is not None])) for line in chops]


def differences(app, terminal: Terminal) -> list[str]:
    """The lines where the terminal differs from Textual's render of the screen now (empty: the same)."""
    expected = textual_frame(app)
    shown = terminal.grid
    out = []
    for y, line in enumerate(expected):
        got = shown[y] if y < len(shown) else []
        if got != line:
            out.append(f"line {y}: shown {''.join(c for c, _ in got)!r}\n   Textual {''.join(c for c, _ in line)!r}")
            if "".join(c for c, _ in got) == "".join(c for c, _ in line):
                diffs = [(x, a, b) for x, (a, b) in enumerate(zip(got, line)) if a != b][:3]
                out.append(f"   (styles differ: {diffs})")
    return out
