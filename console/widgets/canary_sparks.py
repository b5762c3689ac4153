"""Each metric's trend for both cohorts: two sparklines side by side, one line a metric, in one widget.

It was a title and a pair of Textual Sparkline widgets per metric (28
widgets): on the Canary screen's first show each was styled, laid out and
rendered on its own, a good part of the UI thread's work (bench/canary_screen.py).
Here one line-API widget draws the title and each metric's line, with the
same bars and colours (Textual's sparkline renderable, its colours blended
over the background as the Sparkline widget does); a line is rendered again
only when its series change.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.color import Color
from rich.segment import Segment
from rich.text import Text
from textual.renderables.sparkline import Sparkline as SparklineRenderable
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

SPARK_WIDTH = 22  # cells per cohort's sparkline


class TrendPanel(Widget):
    """A title line, then per metric key its baseline and canary series over the window (bucket rates or means).

    Each line is scaled on its own (as Sparkline): it shows the trend's shape; the levels are in the metrics
    table.
    """

    COMPONENT_CLASSES = {"trend--baseline-max", "trend--baseline-min", "trend--canary-max", "trend--canary-min"}
    DEFAULT_CSS = """
    TrendPanel { height: auto; }
    TrendPanel > .trend--baseline-max { color: $primary; }
    TrendPanel > .trend--baseline-min { color: $primary 30%; }
    TrendPanel > .trend--canary-max { color: $warning; }
    TrendPanel > .trend--canary-min { color: $warning 30%; }
    """

    def __init__(self, keys: Sequence[str], **kw) -> None:
        super().__init__(**kw)
        self.keys = list(keys)
        self.title = Text()
        self.data: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in self.keys}
        self._lines: dict[int, Strip] = {}  # y -> strip, until the data, the width or the styles change
        self._width = -1
        self._palette: dict[str, tuple[Color, Color]] = {}

    def series(self, key: str) -> tuple[list[float], list[float]]:
        """The baseline and canary series shown for this metric."""
        return self.data[key]

    def show(self, title: Text, series: dict[str, tuple[list[float], list[float]]]) -> None:
        """The title and each metric's two series; only the lines that changed are drawn again."""
        if title != self.title:
            self.title = title
            self._lines.pop(0, None)
            self._refresh_line(0)
        for y, key in enumerate(self.keys, start=1):
            baseline, canary = series.get(key, ([], []))
            new = (list(baseline), list(canary))
            if new != self.data[key]:
                self.data[key] = new
                self._lines.pop(y, None)
                self._refresh_line(y)

    def _refresh_line(self, y: int) -> None:
        self.refresh(Region(0, y, self.size.width, 1))

    def get_content_height(self, container, viewport, width: int) -> int:
        return 1 + len(self.keys)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()
        self._palette.clear()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if width != self._width:
            self._lines.clear()
            self._width = width
        strip = self._lines.get(y)
        if strip is not None:
            return strip
        base = self.rich_style
        if y == 0:
            segments = list(self.title.render(self.app.console))
            strip = Strip(segments).crop(0, width)
        elif y <= len(self.keys):
            baseline, canary = self.data[self.keys[y - 1]]
            segments = [*self._spark(baseline, "baseline"), Segment(" "), *self._spark(canary, "canary")]
            strip = Strip(segments)
        else:
            strip = Strip([])
        strip = strip.apply_style(base).adjust_cell_length(width, base)
        self._lines[y] = strip
        return strip

    def _colours(self, cohort: str) -> tuple[Color, Color]:
        """The cohort's (min, max) colours over the background, as the Sparkline widget blends them; looked up
        once per style change (the background walks every ancestor)."""
        colours = self._palette.get(cohort)
        if colours is None:
            _, background = self.background_colors
            low = background + self.get_component_styles(f"trend--{cohort}-min").color
            high = background + self.get_component_styles(f"trend--{cohort}-max").color
            colours = self._palette[cohort] = (low.rich_color, high.rich_color)
        return colours

    def _spark(self, data: list[float], cohort: str) -> list[Segment]:
        low, high = self._colours(cohort)
        renderable = SparklineRenderable(data, width=SPARK_WIDTH, height=1, min_color=low, max_color=high,
                                         summary_function=max)
        console = self.app.console
        return [s for s in renderable.__rich_console__(console, console.options)
                if isinstance(s, Segment) and s.text != "\n"]
