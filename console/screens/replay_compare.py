"""Replay, two panes: a baseline task beside a canary task (from the Canary screen's differences).

Opened with Enter or ``r`` on a row of the Canary screen's differences
panel: the row's baseline example on the left (above, on a narrow
terminal) and its canary example on the right (below). Each pane is a
Replay timeline of its task, read through ``DeckService.replay`` on one
worker. ``tab`` moves between the panes, the list keys move within one,
``n``/``p`` step both together, Enter opens the focused pane's task alone on
Replay, ``escape`` goes back to the Canary screen.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.widgets import Static

from agentdeck.console.safe import plain
from agentdeck.console.screens.base import DeckScreen
from agentdeck.console.service.views import Reconstruction, ReplayView
from agentdeck.console.widgets.replay_timeline import ReplayTimeline

NARROW = 120  # columns: under this the panes are stacked, each keeping its full width
SIDES = ("baseline", "canary")


class ReplayCompareScreen(DeckScreen):
    MODE = "replay"
    CSS_PATH = "replay_compare.tcss"
    AUTO_FOCUS = "#compare-baseline-timeline"
    BINDINGS = [
        Binding("n", "step(1)", "Next"),
        Binding("p", "step(-1)", "Prev"),
        Binding("enter", "open_one", "Open"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, baseline_task: str, canary_task: str, title: str = "") -> None:
        super().__init__()
        self.tasks = {"baseline": baseline_task, "canary": canary_task}
        self.title_text = title
        self.recs: dict[str, Reconstruction | None] = {}
        self._keys: dict[str, tuple | None] = {"baseline": None, "canary": None}

    def compose_body(self) -> ComposeResult:
        yield Static("", id="compare-title")
        with Container(id="compare-panes"):
            for side in SIDES:
                with Vertical(id=f"compare-{side}", classes="compare-pane"):
                    yield Static("", id=f"compare-{side}-info", classes="compare-info")
                    yield ReplayTimeline(id=f"compare-{side}-timeline")

    def on_mount(self) -> None:
        self.set_class(self.app.size.width < NARROW, "narrow")
        t = Text()
        t.append("compare  ", style="bold")
        t.append_text(plain(self.title_text, 200, single_line=True))
        t.append("  — tab: other pane · n/p: step both · Enter: open one · escape: back", style="dim")
        self.query_one("#compare-title", Static).update(t)
        super().on_mount()

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < NARROW, "narrow")

    # --- loading ---------------------------------------------------------------------

    def reload(self) -> None:
        deck, tasks, keys = self.deck, dict(self.tasks), dict(self._keys)
        self.read("compare-load", lambda: {side: deck.replay(tasks[side], keys[side]) for side in SIDES},
                  self._show)

    def _show(self, views: dict[str, ReplayView | None]) -> None:
        for side in SIDES:
            view = views.get(side)
            if view is None:
                continue  # unchanged since it was shown
            self._keys[side] = view.key
            rec = view.rec
            timeline = self.query_one(f"#compare-{side}-timeline", ReplayTimeline)
            same = self.recs.get(side) is not None and rec is not None
            self.recs[side] = rec
            self.query_one(f"#compare-{side}-info", Static).update(self._info(side, rec))
            timeline.set_steps(rec.steps if rec is not None else [], timeline.cursor if same else 0)

    def _info(self, side: str, rec: Reconstruction | None) -> Text:
        t = Text()
        t.append(f"{side:<8} ", style="bold")
        if rec is None:
            t.append_text(plain(f"{self.tasks[side]}: not in the store (pruned?)", 100, single_line=True,
                                style="bold red"))
            return t
        version = rec.agent_version.get("id", "?")
        t.append_text(plain(f"{rec.task_id}  {rec.agent or '?'} {version}", 80, single_line=True))
        t.append("  ")
        t.append_text(plain(rec.outcome or "running", 20, style="bold"))
        t.append(f"  {len(rec.steps)} steps", style="dim")
        return t

    # --- keys -----------------------------------------------------------------------

    def _focused_side(self) -> str:
        focused = self.focused
        return "canary" if focused is not None and focused.id == "compare-canary-timeline" else "baseline"

    def action_step(self, delta: int) -> None:
        for side in SIDES:
            self.query_one(f"#compare-{side}-timeline", ReplayTimeline).cursor += delta

    def action_open_one(self) -> None:
        task = self.tasks[self._focused_side()]
        self.app.pop_screen()
        self.app.open_replay(task)  # type: ignore[attr-defined]

    def action_back(self) -> None:
        self.app.pop_screen()
