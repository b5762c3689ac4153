"""One metric's trend for both cohorts: two sparklines side by side, one row high."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Sparkline


class CohortSparks(Horizontal):
    """Baseline and canary series of one metric over the window (bucket rates or means)."""

    DEFAULT_CSS = """
    CohortSparks { height: 1; width: auto; }
    CohortSparks Sparkline { width: 22; margin-right: 1; }
    CohortSparks .baseline > .sparkline--max-color { color: $primary; }
    CohortSparks .baseline > .sparkline--min-color { color: $primary 30%; }
    CohortSparks .canary > .sparkline--max-color { color: $warning; }
    CohortSparks .canary > .sparkline--min-color { color: $warning 30%; }
    """

    def __init__(self, key: str) -> None:
        super().__init__(id=f"spark-{key}")
        self.key = key

    def compose(self) -> ComposeResult:
        yield Sparkline([], summary_function=max, classes="baseline")
        yield Sparkline([], summary_function=max, classes="canary")

    def show(self, baseline: list[float], canary: list[float]) -> None:
        # Each line is scaled on its own (Sparkline has no fixed range): it
        # shows the trend's shape; the levels are in the metrics table.
        b, c = self.query(Sparkline)
        b.data = list(baseline)
        c.data = list(canary)
