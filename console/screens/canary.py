"""Canary: one agent's canary version against its baseline, live.

Each metric with both cohorts' values, the delta, its interval and test,
and a verdict (promote / hold / roll back), coloured; beside it the metric's
trend over the window for both cohorts. The autonomy stage of each version
and the traffic split are in the headline. ``t``/``T`` cycle the agent,
``w`` the window, ``b``/``v`` the baseline/canary version; the highlighted metric lists the tasks behind it below,
and Enter on one of those opens its replay. Under the verdict, each version's latest
regression-suite run (``DeckService.suite_summary``); ``s`` lists the canary
version's failing cases and Enter replays one from its trace file.

Below the metrics, where the versions differ (``store.canary_diff``): tools,
tool sequences, policy outcomes, escalation reasons and actions by share of
tasks, largest first, each with a baseline and a canary example; Enter or
``r`` on a row opens both side by side on Replay (``ReplayCompareScreen``).
``x`` goes to the differences and back; on a short terminal (80x24) they take
the place of the tasks list while shown.

All reads go through the service (``DeckService.canary``) on thread workers,
again whenever new data is ingested. The report is the one the ingest
process keeps in the store when that is current (its age is in the
headline), so opening the screen reads one row instead of every task.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical

from agentdeck.console.keymap import REPLAY
from agentdeck.console.safe import plain
from agentdeck.console.screens.base import DeckScreen
from agentdeck.console.widgets import canary_format as fmt
from agentdeck.console.widgets.canary_sparks import TrendPanel
from agentdeck.console.widgets.canary_tables import CanaryTaskTable, DiffTable, MetricTable
from agentdeck.console.widgets.chrome import ChangingText
from agentdeck.console.widgets.line_table import LineTable
from agentdeck.console.service import views as canary
from agentdeck.console.service.deck import next_version, versions_for
from agentdeck.console.service.views import CanaryView, SuiteCase, SuiteSummary
from agentdeck.console.widgets.suite_format import suite_line

WINDOW_ORDER = ("15m", "1h", "24h", "all")
# New data arrives many times a second under a live fleet, and on a big store
# the panels take a good fraction of a second: recompute at most this often.
MIN_RELOAD_SECONDS = 1.0
# With no new data, an "all" report only changes with the clock (time-based
# windows move): coming back to the screen reuses one younger than this.
STALE_SECONDS = 30.0
COST_FACTOR = 5.0
# Rows under this, the differences take the place of the tasks list (x) instead of sitting above it.
SHORT = 40
NARROW = 120  # columns


class CanaryScreen(DeckScreen):
    MODE = "canary"
    # A switch here reads first and shows the screen once (SwitchAhead). Its reload is throttled: with
    # nothing new to compute (or a recompute not due yet) it reads nothing and is shown at once, drawn whole.
    READ_AHEAD = True
    CSS_PATH = "canary.tcss"
    BINDINGS = [
        Binding("t", "agent(1)", "Next agent"),
        Binding("T", "agent(-1)", "Prev agent", show=False),
        Binding("w", "window", "Window"),
        Binding("b", "version('baseline')", "Baseline ver"),
        Binding("v", "version('canary')", "Canary ver"),
        Binding("s", "suite_failures", "Suite fails"),
        Binding("x", "differences", "Differences"),
        REPLAY,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.window = "all"
        self.agent: str | None = None
        self.pairs: list[canary.Pair] = []
        self.report: canary.CanaryReport | None = None
        self.metric_key = canary.DEFAULT_METRICS[0].key
        # Versions chosen with b/v, per agent: (baseline, canary).
        self.chosen: dict[str, tuple[str, str]] = {}
        self._last_load = float("-inf")
        self._loaded_version = -1
        self._pending = None
        self._cost = 0.0  # seconds the last analysis took
        self.suites: dict[str, SuiteSummary | None] = {}  # version -> its latest suite run (shown beside the verdict)
        self.view: CanaryView | None = None
        self.diff_shown = False  # short terminals: the differences instead of the tasks list

    def compose_body(self) -> ComposeResult:
        yield ChangingText("", id="canary-headline")
        yield ChangingText("", id="canary-verdict")
        yield ChangingText("", id="canary-suite")
        with Horizontal(id="canary-panels"):
            yield MetricTable(id="canary-metrics")
            yield TrendPanel([m.key for m in canary.DEFAULT_METRICS], id="canary-sparks")
        with Vertical(id="canary-diff-box"):
            yield ChangingText("", id="canary-diff-title")
            yield DiffTable(id="canary-diff")
        yield ChangingText("", id="canary-tasks-title")
        yield CanaryTaskTable(id="canary-tasks")
        yield ChangingText("", id="canary-task-violations")

    def on_mount(self) -> None:
        self._layout(self.app.size.width, self.app.size.height)
        super().on_mount()
        self.query_one(MetricTable).focus()

    def on_resize(self, event: events.Resize) -> None:
        self._layout(event.size.width, event.size.height)

    def _layout(self, width: int, height: int) -> None:
        # Tall: the differences sit between the metrics and the tasks list. Short (80x24): one or the other.
        # Narrow: the trend sparklines go, so the metrics table keeps its figures.
        short = height < SHORT
        narrow = width < NARROW
        was = (self.has_class("narrow"), self.has_class("short"))
        self.set_class(narrow, "narrow")
        self.set_class(short, "short")
        self.set_class(short and self.diff_shown, "diff-shown")
        if (narrow, short) != was and self.report is not None and self.view is not None:
            self._show_headline(self.report)  # the compact headline fits 80 columns
            self._show_differences(self.view)  # features cut shorter at 80 columns
            tasks = self.query_one(CanaryTaskTable)
            self.query_one("#canary-tasks-title", ChangingText).show(
                self._tasks_title(self._listed_key or self.metric_key, tasks.row_count))

    def action_differences(self) -> None:
        """``x``: to the differences panel (shown in place of the tasks list when short) and back."""
        diff = self.query_one(DiffTable)
        self.diff_shown = not diff.has_focus
        self._layout(self.app.size.width, self.app.size.height)
        if self.diff_shown:
            diff.focus()
        else:
            self.query_one(MetricTable).focus()

    # --- keys --------------------------------------------------------------

    def action_agent(self, step: int) -> None:
        agents = [p.agent for p in self.pairs]
        if not agents:
            return
        i = agents.index(self.agent) if self.agent in agents else 0
        self.agent = agents[(i + step) % len(agents)]
        self._load_now()

    def action_version(self, side: str) -> None:
        pair = next((p for p in self.pairs if p.agent == self.agent), None)
        if pair is None:
            return
        baseline, canary_v = self._versions(pair)
        if side == "baseline":
            baseline = next_version(pair, baseline, canary_v)
        else:
            canary_v = next_version(pair, canary_v, baseline)
        self.chosen[pair.agent] = (baseline, canary_v)
        self._load_now()

    def _versions(self, pair: canary.Pair) -> tuple[str, str]:
        """The versions compared for this agent: chosen with b/v if still there, else the default pair."""
        return versions_for(pair, self.chosen)

    def action_window(self) -> None:
        self.window = WINDOW_ORDER[(WINDOW_ORDER.index(self.window) + 1) % len(WINDOW_ORDER)]
        self._load_now()

    # --- loading -----------------------------------------------------------

    def reload(self) -> None:
        """On mount, resume and new data: recompute, throttled (MIN_RELOAD_SECONDS, COST_FACTOR)."""
        # A big store's analysis takes a good fraction of a second: under a live
        # fleet, recompute at most once per COST_FACTOR times its last duration
        # (one core is not spent recomputing a panel nobody can read that fast).
        wait = self._last_load + max(MIN_RELOAD_SECONDS, COST_FACTOR * self._cost) - time.monotonic()
        unchanged = self.app.data_version == self._loaded_version and self.report is not None
        if unchanged and (wait > 0 or (self.window == "all" and time.monotonic() - self._last_load < STALE_SECONDS)):
            return  # nothing new since it was computed (e.g. coming back to this screen)
        if wait <= 0:
            self._load_now()
        elif self._pending is None:
            self._pending = self.set_timer(wait, self._pending_reload)

    def _pending_reload(self) -> None:
        self._pending = None
        self.reload()

    def _load_now(self) -> None:
        self._last_load = time.monotonic()
        self._loaded_version = self.app.data_version
        self._load()

    def _load(self) -> None:
        deck, agent, chosen, window, key = self.deck, self.agent, dict(self.chosen), self.window, self.metric_key
        self.read("canary-reload", lambda: deck.canary(agent, chosen, window, key),
                  lambda view: self._show_view(view, key))

    def load_tasks(self, key: str) -> None:
        report, deck = self.report, self.deck
        if report is None:
            return
        self.read("canary-tasks", lambda: deck.canary_tasks(report, key), lambda rows: self._show_tasks(key, rows),
                  covers=False)

    _tasks_key = ""  # the metric the view's own task list is for
    _listed_key = ""  # the metric the tasks list shows now

    def _show_view(self, view: CanaryView, key: str | None = None) -> None:
        self._cost = view.seconds
        before, self.view = self.view, view
        key = key or self.metric_key
        if (before is not None and view.report is not None and key == self._tasks_key and view.report == before.report
                and view.differences == before.differences and list(view.tasks) == list(before.tasks)
                and view.suites == before.suites and list(view.pairs) == list(before.pairs)):
            # The same report again (a live fleet reloads every second; the analyst's report changes every few
            # seconds): only its age moves.
            self._show_headline(view.report)
            return
        # The report was asked for while another metric was highlighted (the operator moved on since, e.g.
        # j then k while a live reload was on its way): its tasks list is that metric's, so it is not shown under
        # this one's title; the list is read again for the new report instead.
        current = key == self.metric_key
        self._tasks_key = key
        self._show(list(view.pairs), view.agent, view.report, view.tasks if current else None)
        if not current:
            self.load_tasks(self.metric_key)
        if view.report is not None:
            self._show_suites(view.report.agent, view.report.baseline, view.report.canary, dict(view.suites))
        self._show_differences(view)

    # --- showing -----------------------------------------------------------
    # Each panel is redrawn only when what it shows changed: a new report of a live fleet often moves a few
    # figures and leaves the rest (ChangingText.show skips an unchanged text; a table is refilled only when its rows changed).

    def _show(self, pairs, agent, report, tasks) -> None:
        self.pairs, self.agent, self.report = pairs, agent, report
        # A tasks list still being read was asked for the report shown before (t, w, b/v or new data, with j/k
        # pressed while this one was read): it is that report's (another agent's, window's or versions') and
        # would stay under this headline. This report brings its own list, or asks for one (_show_view).
        self.supersede("canary-tasks")
        headline = self.query_one("#canary-headline", ChangingText)
        verdict = self.query_one("#canary-verdict", ChangingText)
        table = self.query_one(MetricTable)
        if report is None:
            headline.show("No agent has two versions yet: canary analysis needs a baseline and a canary version.")
            verdict.show("")
            table.show_metrics([])
            self._show_tasks(self.metric_key, [])
            self.query_one("#canary-suite", ChangingText).show("")
            return
        self._show_headline(report)
        verdict.show(fmt.verdict_line(report))
        table.show_metrics(report.metrics)
        self._show_sparks(report)
        if tasks is not None:  # (None: the tasks came for another metric than the one highlighted now)
            self._show_tasks(self.metric_key, tasks)

    def _show_headline(self, report: canary.CanaryReport) -> None:
        head = fmt.headline(report, compact=self.has_class("narrow"))
        head.append(f"  agent {self._agent_position()}", style="dim")
        head.append_text(self._age())
        self.query_one("#canary-headline", ChangingText).show(head)

    def _age(self) -> Text:
        """How old the report is: read from the store (kept by the ingest process) or computed just now."""
        view = self.view
        if view is None or view.computed_at is None:
            return Text()
        age = max(0.0, self.app.now() - view.computed_at)  # type: ignore[attr-defined]
        when = "just now" if age < 1 else f"{_span(age)} ago"
        text = Text(f"  computed {when}", style="dim" if age < 60 else "yellow")
        if view.analyst_error:
            # Reports are then computed here (slower); the ingest process's log has the detail.
            text.append("  canary analyst failing: ", style="bold yellow")
            text.append_text(plain(view.analyst_error, 120, single_line=True, style="yellow"))
            text.append(" (computed here meanwhile; see the ingest process's log)", style="yellow")
        return text

    def _show_differences(self, view: CanaryView) -> None:
        title = self.query_one("#canary-diff-title", ChangingText)
        table = self.query_one(DiffTable)
        diff = view.differences
        width = 26 if self.has_class("narrow") else 60  # 80 columns: through the delta
        if view.report is None or diff is None:
            title.show("")
            table.show_differences([], width)
            return
        if not diff.differences:
            title.show(plain("Where the versions differ: nothing (same tools, sequences, policy outcomes, "
                                      "escalation reasons and actions in the same share of tasks)", style="dim"))
        else:
            title.show(plain(
                f"Where the versions differ (share of the latest {diff.n_baseline:,} baseline and "
                f"{diff.n_canary:,} canary tasks, largest first) — Enter or r: examples side by side"))
        table.show_differences(diff.differences, width)

    def _difference(self):
        """The highlighted difference (a store.canary_diff.Difference), or None."""
        table = self.query_one(DiffTable)
        row = table.cursor_row
        return table.differences[row] if 0 <= row < len(table.differences) else None

    def compare(self) -> None:
        """The highlighted difference's baseline and canary examples side by side on Replay."""
        from agentdeck.console.screens.replay_compare import ReplayCompareScreen

        d = self._difference()
        if d is None:
            self.notify("No difference listed.", title="Compare", markup=False)
            return
        if not d.baseline_example or not d.canary_example:
            self.notify("This difference has no example task of both versions.", title="Compare", markup=False)
            return
        report = self.report
        title = f"{d.kind} {d.feature}"
        if report is not None:
            title = (f"{report.agent} {report.baseline} vs {report.canary}: {d.kind} \"{d.feature}\" in "
                     f"{d.baseline_share * 100:.0f}% vs {d.canary_share * 100:.0f}% of tasks")
        self.app.push_screen(ReplayCompareScreen(d.baseline_example, d.canary_example, title))

    @on(LineTable.Chosen, "#canary-diff")
    def _difference_selected(self, event: LineTable.Chosen) -> None:
        self.compare()

    def _agent_position(self) -> str:
        agents = [p.agent for p in self.pairs]
        return f"{agents.index(self.agent) + 1}/{len(agents)}" if self.agent in agents else ""

    def _show_sparks(self, report: canary.CanaryReport) -> None:
        title = plain(f"trend per {_span(report.bucket_seconds)}: base | canary", style="dim") \
            if report.bucket_seconds else Text()
        self.query_one(TrendPanel).show(title, report.sparklines)

    def _tasks_title(self, key: str, count: int) -> Text:
        label = canary.METRICS_BY_KEY[key].label
        kind = canary.METRICS_BY_KEY[key].kind
        what = "counted in" if kind == "rate" else "highest first by"
        listed = f"first {count}" if count >= canary.TASKS_PAGE else str(count)
        if self.has_class("short"):  # 80x24: the differences are hidden until x, so say where they are
            return plain(f"{listed} tasks {what} {label} — Enter: replay · x: where versions differ")
        return plain(f"{listed} tasks {what} {label} (canary first) — r or Enter opens the replay")

    def _show_tasks(self, key: str, rows) -> None:
        self.query_one("#canary-tasks-title", ChangingText).show(self._tasks_title(key, len(rows)))
        table = self.query_one(CanaryTaskTable)
        # Refilled with new data: the cursor stays on the task it was on while that is still listed
        # (another metric's list starts at its top).
        same = key == self._listed_key
        self._listed_key = key
        table.show_tasks(rows, self.app.now(), same_list=same)  # type: ignore[attr-defined]

    @on(LineTable.Highlighted, "#canary-metrics")
    def _metric_highlighted(self, event: LineTable.Highlighted) -> None:
        metrics = self.query_one(MetricTable).metrics
        key = metrics[event.cursor_row].key if 0 <= event.cursor_row < len(metrics) else None
        if key and key != self.metric_key:
            self.metric_key = key
            self.load_tasks(key)

    @on(LineTable.Chosen, "#canary-metrics")
    def _metric_selected(self, event: LineTable.Chosen) -> None:
        self.query_one(CanaryTaskTable).focus()

    @on(LineTable.Highlighted, "#canary-tasks")
    def _task_highlighted(self, event: LineTable.Highlighted) -> None:
        table = self.query_one(CanaryTaskTable)
        if event.cursor_row != table.cursor_row:
            return  # the cursor moved on before this arrived (a list refilled, then a key): that row counts
        self.load_violations(table.cursor_task)

    def load_violations(self, task_id: str | None) -> None:
        view = self.view
        if view is not None and view.tasks and task_id == view.tasks[0]["task_id"] and \
                self._tasks_key == self.metric_key:
            # Read with the report: no second trip. A read asked for the task highlighted before (j then k) would
            # land after this and put that task's violations (or none) under this one.
            self.supersede("canary-violations")
            self._show_violations(task_id, view.first_violations)
            return
        deck = self.deck
        self.read("canary-violations", lambda: deck.violations(task_id) if task_id else [],
                  lambda rows: self._show_violations(task_id, rows), covers=False)

    def _show_violations(self, task_id: str | None, rows) -> None:
        line = self.query_one("#canary-task-violations", ChangingText)
        if not rows:
            line.show("")
            return
        text = plain(f"{task_id}: ", style="bold", single_line=True)
        text.append_text(plain(" · ".join(f"seq {r['seq']} {r['rule']}: {r['detail']}" for r in rows),
                               400, style="red", single_line=True))
        line.show(text)

    @on(LineTable.Chosen, "#canary-tasks")
    def _task_selected(self, event: LineTable.Chosen) -> None:
        task = self.query_one(CanaryTaskTable).cursor_task
        if task:
            self.app.open_replay(task)

    def action_replay(self) -> None:
        """``r``: the highlighted task of the list below (the tasks behind the highlighted metric), or on the
        differences panel its examples side by side."""
        if self.query_one(DiffTable).has_focus:
            self.compare()
            return
        task = self.query_one(CanaryTaskTable).cursor_task
        if task is None:
            self.notify("No task listed below for this metric.", title="Replay", markup=False)
            return
        self.app.open_replay(task)


# --- the regression suite's results beside the verdict (docs/suite.md, "In the console") ---

    def _show_suites(self, agent: str, baseline: str, canary_v: str, found: dict) -> None:
        if self.report is None or (self.report.agent, self.report.baseline, self.report.canary) != \
                (agent, baseline, canary_v):
            return  # the operator moved on to another agent or version
        self.suites = found
        now = self.app.now()  # type: ignore[attr-defined]
        if found.get(baseline) is None and found.get(canary_v) is None:
            # Neither version has run the suite: one line, so a short terminal keeps a row for the tasks.
            text = suite_line(f"{baseline} and {canary_v}", None, now)
        else:
            text = suite_line(baseline, found.get(baseline), now)
            text.append("\n")
            text.append_text(suite_line(canary_v, found.get(canary_v), now, hint="s lists them"))
        self.query_one("#canary-suite", ChangingText).show(text)

    def action_suite_failures(self) -> None:
        """List the failing cases of the canary version's latest suite run; Enter opens one on Replay."""
        from agentdeck.console.widgets.suite_failures import SuiteFailures

        summary = self.suites.get(self.report.canary) if self.report is not None else None
        if summary is None:
            self.notify("The canary version has no recorded suite run: run `agentdeck suite run SUITE_DIR "
                        "--agent-cmd CMD` with this store (--db).", title="Suite", markup=False)
            return
        if not summary.failing:
            self.notify(f"Every case passed in suite run {summary.run_id}.", title="Suite", markup=False)
            return

        def chosen(case: SuiteCase | None) -> None:
            if case is None:
                return
            if not case.trace:
                self.notify("No trace was recorded for this case.", title="Suite", severity="warning", markup=False)
                return
            self.app.open_replay_file(case.trace, f"suite:{summary.run_id}:{case.case_id}")  # type: ignore[attr-defined]

        self.app.push_screen(SuiteFailures(summary), chosen)


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
