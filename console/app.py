"""The agentdeck console: one screen per job, live from the store."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import replace
from functools import partial
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

# First, before Textual and the rest (tens of thousands of long-lived objects): the garbage collector waits
# for the first frame; AgentDeck.on_mount resumes it after that frame (store/gc_pause.py, phase 1). The
# imports below follow a statement on purpose (E402 is off for this file in pyproject.toml).
from agentdeck.store import gc_pause

gc_pause.pause_for_start_up()

from textual._context import active_app
from textual import events
from textual.app import App
from textual.screen import Screen
from textual.widget import AwaitMount
from textual.binding import Binding
from textual.dom import DOMNode
from textual.reactive import reactive, var

from agentdeck.console.ingest_service import IngestService
from agentdeck.console.messages import HealthChecked, Ingested
from agentdeck.console.palette import COMMANDS as DECK_COMMANDS
from agentdeck.console.screens.base import new_generation, read_generations, run_off_ui
from agentdeck.console.screens.tasks import TasksScreen
from agentdeck.console.service.deck import DeckService
from agentdeck.console.service.settings import Settings
from agentdeck.console.service.views import ActionResult, Counters
from agentdeck.console.switch_ahead import SwitchAhead
from agentdeck.store.health import LEVELS, Health, Problem

if TYPE_CHECKING:
    from agentdeck.console.service.views import TaskDetail  # (created when first used: views_later.py)

# Seconds between release ticks (DeckService.release_tick): live verdicts raise promotion and roll back
# items, stage changes are published. Run here, whatever screen is open, not by the Canary screen.
RELEASE_EVERY = 15.0
RELEASE_FIRST = 2.0
log = logging.getLogger(__name__)
NOTIFY_EVERY = 5.0  # seconds between notification rule checks (deadline warnings are minutes ahead)


def _switch_mode(action: str) -> str | None:
    """The mode a ``switch_mode('...')`` action goes to; None for any other action."""
    if action.startswith("switch_mode('") and action.endswith("')"):
        return action[len("switch_mode('"):-2]
    return None


def _screen(module: str, name: str):
    import importlib

    app = active_app.get(None)
    warm = getattr(app, "warm_screens", {})
    if name in warm:  # composed already, while the operator looked at the first screen (AgentDeck.prewarm)
        return warm.pop(name)
    return getattr(importlib.import_module(f"agentdeck.console.screens.{module}"), name)()


# The modes whose screen is made when first shown (mode = its module in console/screens) and its class.
LAZY_SCREENS = {"escalations": "EscalationsScreen", "canary": "CanaryScreen", "replay": "ReplayScreen",
                "problems": "ProblemsScreen"}

# Problems only this console knows of (AgentDeck.console_problems), by key.
CONSOLE_PROBLEMS = frozenset({"prune", "release"})

# Composed after the first paint, one at a time, before they are first shown (AgentDeck.prewarm):
# the first visit to each then costs what any later one does. Canary is composed ahead but reads
# its report only when shown: the stored report is cheap, but before the ingest process's analyst
# has stored one the screen computes it, which must not happen unasked on the console's process.
PREWARM = (("escalations", "EscalationsScreen"), ("replay", "ReplayScreen"), ("problems", "ProblemsScreen"),
           ("task_detail", "TaskDetailScreen"), ("canary", "CanaryScreen"))
WARM_IMPORTS_AFTER_S = 0.4  # after mount: the first window of tasks is on screen by then
STARTUP_AFTER_S = 0.3  # after mount: pending deliveries, the expiry sweep (DeckService.startup), likewise
# Of those, the screens that also read their data once while still off screen (their lists are
# then filled before the first visit, which redraws only what changed since).
PREWARM_READ = frozenset({"EscalationsScreen", "ProblemsScreen"})
PREWARM_AFTER_S = 1.2  # after mount: the imports above are done by then
PREWARM_GAP_S = 0.3  # between screens: a key pressed meanwhile waits at most one screen's compose


def _warm_imports() -> None:
    import importlib

    for module in ("escalations", "canary", "replay", "task_detail"):
        importlib.import_module(f"agentdeck.console.screens.{module}")
    for module in ("agentdeck.store.canary", "agentdeck.store.canary_reports", "agentdeck.store.contract",
                   "agentdeck.store.decisions",
                   "agentdeck.replay.reconstruct", "agentdeck.replay.compensate", "agentdeck.replay.redact"):
        importlib.import_module(module)


def _read_screen_css_files() -> dict[str, str]:
    """Every screen's .tcss by path (Textual's key for a file it reads), read here: on a worker, not the UI thread."""
    return {str(path): path.read_text(encoding="utf-8")
            for path in sorted((Path(__file__).parent / "screens").glob("*.tcss"))}


def _warm_up() -> dict[str, str]:
    _warm_imports()
    return _read_screen_css_files()


class AgentDeck(App):
    """Tasks, Escalations, Canary and Replay over one SQLite store."""

    TITLE = "agentdeck"
    # The first screen's stylesheet is read with the app's (Textual would otherwise read it
    # when the screen is first shown and then re-parse all the CSS). The other screens' are
    # read together when they are composed ahead (prewarm): see _read_screen_css.
    CSS_PATH = ["app.tcss", "screens/tasks.tcss"]
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = DECK_COMMANDS  # Textual's system commands included (palette.DeckCommands)
    # Screens other than Tasks are imported when first shown: the first paint
    # should not wait for the canary statistics or the replay model to import.
    MODES = {
        "tasks": TasksScreen,
        **{mode: partial(_screen, mode, name) for mode, name in LAZY_SCREENS.items()},
    }
    DEFAULT_MODE = "tasks"
    # Every screen (and dialog) carries -narrow below 100 columns, -wide from there:
    # its .tcss lays it out for an 80x24 terminal under Screen.-narrow.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS = [
        # 1-5 are on the tab bar already: not repeated in the footer, which an 80-column terminal cuts.
        Binding("1", "switch_mode('tasks')", "Tasks", show=False),
        Binding("2", "switch_mode('escalations')", "Escalations", show=False),
        Binding("3", "switch_mode('canary')", "Canary", show=False),
        Binding("4", "switch_mode('replay')", "Replay", show=False),
        Binding("5", "switch_mode('problems')", "Problems", show=False),
        Binding("q", "quit", "Quit"),
        # On-call muscle memory: Ctrl+C leaves, as in every other terminal program.
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        # `?` toggles the key panel; while it is open Esc closes it first (then Esc means
        # what it means on the screen again). See action_toggle_help / check_action.
        Binding("question_mark", "toggle_help", "Help", key_display="?"),
        Binding("escape", "hide_help_panel", "Close keys", show=False, priority=True),
    ]

    # `var`, not `reactive`: a change notifies watchers without repainting the
    # whole screen (these change on every ingest batch). `data_version` is the
    # one signal that the store changed: screens watch it. Not at start-up
    # (init=False): Textual's first pass over the app's reactives, after the
    # first frame, would call the screens' watchers as if the store had changed,
    # and the Tasks screen read its first window again before showing it.
    data_version: var[int] = var(0, init=False)
    counters: var[Counters | None] = var(None)
    # What is wrong, if anything (store/health.py): the header's indicator and the Problems screen.
    health: var[Health] = var(Health())
    # The task (or request id) the Replay screen shows; set by open_replay.
    replay_task: reactive[str | None] = reactive(None)

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.settings = settings
        self.clock = clock
        self.deck = DeckService(settings, clock=clock)
        self.db_path = Path(settings.db)
        self.trace_paths = list(settings.traces)
        self.follow_traces = settings.follow
        self.tick = settings.tick
        # The tailer runs in its own process (when following); commits are noticed by data_version.
        self.ingest = IngestService(self, self.db_path, self.trace_paths, follow=settings.follow, tuning=settings.ingest)
        self.last_ingest_at: float | None = None
        # Each data_version bump stands for store changes numbered in the order they became known, each number
        # taken after its commit (next_change_seq): a read that began after taking note of ``change_known``
        # covers every change numbered up to it. ``change_heard``: the number of the change behind the
        # latest bump (set before the screens' watchers run). See ReplayScreen: a long rebuild checked current
        # after its read needs no second read for changes numbered before that check but heard after it.
        self._change_seqs = itertools.count(1)
        self._change_seq_lock = threading.Lock()
        self.change_known = 0
        self.change_heard = 0
        self._bump_seq: int | None = None
        self._counters_at = 0.0  # monotonic time of the last ingest-driven counters refresh
        # The scheduled prune (settings.prune_every): one at a time, stopped between steps on quit.
        self.prune_stop = threading.Event()
        self.pruning = False
        # What only this console knows went wrong (not in the store), listed on Problems beside the store's
        # health: the last scheduled prune failed ("prune"), the last release tick failed ("release").
        self.console_problems: dict[str, Problem] = {}
        # Replay ids that name a trace file (a suite run's failing case), not a task in the store.
        self.replay_files: dict[str, str] = {}
        # Screens composed ahead of their first show (class name -> screen): see prewarm.
        self.warm_screens: dict[str, Screen] = {}
        self._to_prewarm = list(PREWARM) if settings.prewarm else []
        self._release_running = False  # a release tick is at work (one at a time)
        # The screen keys (1-5) read the screen's data before showing it, and hold keys typed meanwhile.
        self.switching = SwitchAhead(self, self._screen_for_mode)
        self.mode_switches = 0  # (AgentDeck.where: a read answered after the operator moved on is not shown)

    # Shorthands the screens show (who decides, where callbacks may go).
    @property
    def operator(self) -> str:
        return self.settings.user

    @property
    def allow_hosts(self) -> frozenset[str]:
        return self.settings.allow_hosts

    def now(self) -> float:
        return self.clock()

    # -- switching screen ---------------------------------------------------------

    async def action_switch_mode(self, mode: str) -> None:
        self.switching.switch(mode)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Compose) and not self._dom_ready:
            self._style_before_first_screen()
        if self.switching.hold(event):
            return  # typed during a switch: for the screen switched to
        if isinstance(event, events.Key) and not event.is_forwarded:
            found = self._first_binding(event)
            if found is not None:
                namespace, action = found
                mode = _switch_mode(action) if namespace is self else None
                if mode is not None:
                    # The switch starts now, as the key comes in, not once the key has gone down to the focused
                    # widget and bubbled back to the app's binding: keys read with it (2 then d typed fast, one
                    # read of the terminal) are already queued behind it, and each was handed to the screen being
                    # left before the binding ran (d lost; ctrl+p's palette, a priority key, opened over the old
                    # screen and the switch then hid it). Started here, SwitchAhead holds them for the screen
                    # switched to.
                    self.app_focus = True
                    self.switching.switch(mode)
                    return
                if action in getattr(namespace, "FOCUSING_ACTIONS", ()):
                    # A key that moves the focus (/ on Tasks into its filter; Esc in the filter back to the table)
                    # acts here, before the app reads the next key: sent down to the focused widget, the keys
                    # read with it (/ then 2, a fast typist or a paste) would each be routed before it acted, to the
                    # widget it leaves (the table rather than the input: the 2 switching screen; the hidden input
                    # rather than the table: the 2 typed into it).
                    await self.run_action(action, namespace)
                    return
        await super().on_event(event)

    # The app node has its styles before the first screen is composed (see _style_before_first_screen).
    styled_before_first_screen = False

    def _style_before_first_screen(self) -> None:
        """Style the app node itself before Textual composes the first screen under it (App.on_event, Compose).

        Textual (8.2) composes a mode's first screen before it styles the app, so the screen's widgets were
        registered under an unstyled app, and it then re-parsed every stylesheet source and restyled every
        node (App._init_mode: refresh_css, the screen being "never styled"): ~10 ms of CPU before the first
        frame that a bare Textual app does not pay. Styled here first, the first screen is marked as styled
        (DeckScreen.__init__) and that pass is skipped; Textual styles the app again just after, as before.
        """
        self.stylesheet.apply(self)
        self.styled_before_first_screen = True

    def _first_binding(self, event: events.Key) -> tuple[DOMNode, str] | None:
        """The (namespace, action) of the binding the key would run if it went down the focus chain and back, as
        Textual sends it; None when there is none, when the focused widget takes the key itself (a character
        typed into an input), or when a priority binding of the key would act (left to Textual).

        The first binding for the key in the screen's chain (focused widget up to the app; a dialog's chain stops
        at the dialog).
        """
        key = event.key
        screen = self.screen
        focused = screen.focused
        # The key's own character, not the chain's: Textual's chain leaves out keys an input types by the
        # character it guesses from the key's name, and it guesses none for "slash" (8.2), so / typed into the
        # filter looked like the Tasks screen's / and opened the filter again, emptying what was typed.
        if focused is not None and focused.check_consume_key(key, event.character):
            return None
        # Textual runs a priority binding of the key first, wherever it is in the chain (the app's Esc that closes
        # the key panel, live only while the panel is open): one that would act is left to Textual.
        for namespace, bindings in screen._binding_chain:
            for binding in bindings.key_to_bindings.get(key, ()):
                if binding.priority and self._check_action_state(binding.action, namespace):
                    return None
        for namespace, bindings in screen._modal_binding_chain:
            for binding in bindings.key_to_bindings.get(key, ()):
                if not binding.priority:
                    return namespace, binding.action
        return None

    def switch_mode(self, mode: str) -> AwaitMount:
        # A switch elsewhere (a tab clicked, Problems' goto by mouse) wins over one still reading ahead. (Not
        # one to the mode shown, which Textual ignores: e.g. a task's detail answered, shown on Tasks.)
        if mode != self.current_mode:
            self.mode_switches += 1
            self.switching.forget()
        done = super().switch_mode(mode)
        self.switching.hand_on()
        return done

    def delay_update(self, delay: float = 0.05) -> None:
        # Textual masks a mode switch for 50 ms while the new screen gets its data; one switched to with
        # its data already on it (SwitchAhead) is drawn at once.
        if not self.switching.unmasked:
            super().delay_update(delay)

    @property
    def _background_screens(self) -> list[Screen]:
        """The screens that show through the one on top: none when its background is opaque.

        Textual (8.2) counts the screen right under the top one as visible whatever the top's background (it
        looks only at the lower screens' own), and so "current" (``Screen.is_current``): under a task's detail
        the Tasks list re-read and laid itself out for every store change, and handed each of its repaints to
        the detail, which drew those regions again; that also spent the list's kept frame (cropped_compositor),
        so escape drew it all. Under an opaque screen nothing of it shows; it re-reads when shown again, as
        every screen further down the stack always did. A see-through dialog still shows the screen under it.
        """
        stack = self._screen_stack
        if stack and stack[-1].styles.background.a >= 1:
            return []
        return super()._background_screens

    def _screen_for_mode(self, mode: str) -> Screen | None:
        """The screen a switch to ``mode`` shows, if it exists yet (shown before, or composed ahead)."""
        stack = self._screen_stacks.get(mode)
        if stack:
            return stack[-1]
        return self.warm_screens.get(LAZY_SCREENS.get(mode, ""))

    # -- the key panel (`?`) ----------------------------------------------------

    def help_shown(self) -> bool:
        # Textual mounts the panel on the screen itself (App.action_show_help_panel): its children are
        # enough. Asked for the footer on every bindings change (check_action), a query of the whole
        # screen walked every widget, several times a switch; a query of its children still matched a
        # CSS selector against each (~0.4 ms of each enter and escape): the type's name is enough.
        return any(type(child).__name__ == "HelpPanel" for child in self.screen.children)

    def action_toggle_help(self) -> None:
        if self.help_shown():
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The priority Esc is live only while the panel is open: otherwise the
        # key falls through to the screen (clear filter, back, close input).
        if action == "hide_help_panel":
            return self.help_shown()
        return True

    def on_mount(self) -> None:
        # After the first frame: the ingest process's own start-up (imports,
        # a first pass) must not compete with the first paint for the CPU.
        self.call_after_refresh(self.ingest.start)
        # What start-up made is frozen until settle_for_long_run, which only follows the screens composed ahead:
        # without prewarm nothing would ever unfreeze it (start-up's garbage kept for the console's life).
        self.call_after_refresh(partial(gc_pause.resume_after_start_up, freeze=bool(self._to_prewarm)))
        if self.ingest.supervisor is not None:  # its ingest process runs the canary analyst
            self.deck.expect_analyst()
        self.refresh_counters()
        if self.tick:
            self.set_interval(self.tick, self.refresh_counters)
            # Expired escalations are decided by the policy now and then.
            self.set_interval(self.tick * 5, self.sweep_expired)
        if self.settings.prune_every:
            self.set_interval(self.settings.prune_every, self.scheduled_prune)
        if self.tick and not self.settings.read_only:
            # Verdicts become promotion/roll back items (and a roll back demotes the canary) even when
            # nobody has the Canary screen open: computed here, off the UI thread (docs/canary.md).
            self.set_interval(RELEASE_EVERY, self.release_tick)
            # The first soon, but after the first paint and the ingest process's start (verdicts cost CPU).
            self.set_timer(RELEASE_FIRST, self.release_tick)
        if self.settings.notifies:
            # On call away from the screen (docs/notify.md): rules checked every few seconds, off the UI thread.
            self.set_interval(NOTIFY_EVERY, self.notify_tick)
        # The other screens' modules (canary statistics, replay model) import
        # off the UI thread once the first screen is up: the first switch to
        # them then does not wait for the import.
        # Not at once: a thread importing holds the interpreter, and the first window of tasks
        # (read and drawn just after the first frame) would wait for it.
        # Every screen's .tcss is read with them (prewarm adds it to the stylesheet: _read_screen_css).
        self.set_timer(WARM_IMPORTS_AFTER_S,
                       lambda: run_off_ui(self, "warm-imports", _warm_up, self._screen_css_read,
                                          on_error=self._warm_up_failed))
        if self._to_prewarm:
            self.set_timer(PREWARM_AFTER_S, self.prewarm)
        # Deliver decisions a previous run left pending (and sweep once when ticking); mask compensation
        # plans an older version stored in clear. Not at once either: its imports (decisions, the
        # compensation model) held the interpreter while the first window of tasks was read and drawn.
        self._startup_due = True
        self.set_timer(STARTUP_AFTER_S, self._startup)

    _startup_due = False  # the start-up work (deck.startup) is scheduled and has not begun

    def _startup(self) -> None:
        if not self._startup_due:
            return
        self._startup_due = False
        deck, sweep = self.deck, bool(self.tick)
        run_off_ui(self, "delivery", lambda: deck.startup(sweep), self._store_written)

    async def settled(self, timeout: float = 30.0) -> None:
        """Wait until no worker is pending or running and the screen shows what it knows of (``settled``).

        What tests (and benchmarks) wait on before they look at the screen. A
        read superseded by a newer one (run_off_ui: exclusive workers) was
        cancelled: it is done, not an error. Results can start more reads (a
        window then its detail), so it waits again until a pass finds none.
        Raises TimeoutError after ``timeout`` seconds. The start-up work
        scheduled for just after the first paint starts now if it has not.
        """
        import asyncio

        from textual.worker import WorkerState

        from agentdeck.console.screens.base import settled

        async def drain() -> None:
            idle_passes = 0
            while idle_passes < 2:
                busy = [w for w in self.workers if w.state in (WorkerState.PENDING, WorkerState.RUNNING)]
                # (e.g. a paused Tasks window's refresh is due, or a switch's screen is about to be shown)
                if not busy and (not settled(self.screen) or self.switching.mode is not None):
                    idle_passes = 0
                    await asyncio.sleep(0.005)
                elif busy:
                    idle_passes = 0
                    started = [w.wait() for w in busy if w.state is WorkerState.RUNNING]
                    if started:
                        await asyncio.gather(*started, return_exceptions=True)  # cancelled or failed: done too
                    else:
                        await asyncio.sleep(0.001)  # not started yet
                else:
                    idle_passes += 1
                    await asyncio.sleep(0)  # results handed over with call_from_thread land now

        self._startup()  # (a test or benchmark waiting on the console sees what start-up does)
        await asyncio.wait_for(drain(), timeout)

    _css_read = False
    # Every screen's .tcss (path -> text), read by the warm-up worker; None until then, {} if that failed.
    _screen_css: dict[str, str] | None = None

    def _screen_css_read(self, css: dict[str, str]) -> None:
        self._screen_css = css

    def _warm_up_failed(self, message: str) -> None:
        self._screen_css = {}  # prewarm goes on without it: each screen's CSS is then read when first shown
        self.notify(message, title="agentdeck", severity="error", timeout=10, markup=False)

    def _read_screen_css(self) -> None:
        """Add every screen's .tcss to the stylesheet in one pass (one re-parse and restyle, not one per screen).

        Textual reads a screen's CSS the first time it is shown and then re-parses
        the app's whole stylesheet from scratch and restyles the screen shown,
        and again on the switch itself for a screen it marks as never styled
        (DeckScreen starts marked as styled, see its __init__): profiled,
        100-400 ms for the first visit to each screen. The rules are all scoped
        by id or screen type, so reading them early changes nothing else. The
        files were read by the warm-up worker (``_screen_css``): no I/O here.
        """
        self._css_read = True
        stylesheet = self.stylesheet
        for path, css in (self._screen_css or {}).items():
            if not stylesheet.has_source(path, ""):
                stylesheet.add_source(css, read_from=(path, ""), is_default_css=False)
        # Re-parse and restyle once, now: this also marks the screens shown so far as styled
        # for the current CSS (the first screen is not, after start-up's theme pass, and the
        # first switch back to it would pay for this instead).
        self.refresh_css(animate=False)

    def prewarm(self) -> None:
        """Compose the next screen of PREWARM, off screen; the rest follow, one per timer.

        A first switch to a screen used to compose it (and mount a DataTable,
        the tab bar, the footer…): 100-300 ms on top of what every later switch
        costs. Composed ahead, a mode's screen is handed over by ``_screen``
        and the task detail is installed; a screen not shown reads nothing
        (DeckScreen.on_mount) until it is.
        """
        import importlib

        if not self._to_prewarm or not self.is_running:
            return
        if not self._css_read:
            if self._screen_css is None:  # the warm-up worker has not read the screens' CSS yet
                self.set_timer(PREWARM_GAP_S, self.prewarm)
                return
            self._read_screen_css()
        self._draw_ahead()
        module, name = self._to_prewarm.pop(0)
        try:
            cls = getattr(importlib.import_module(f"agentdeck.console.screens.{module}"), name)
            if name == "TaskDetailScreen":
                if not self.is_screen_installed("task-detail"):
                    self.install_screen(cls(), name="task-detail")
                    self._compose_ahead("task-detail")
            elif module not in self._screen_stacks and name not in self.warm_screens:
                screen = self.warm_screens[name] = cls()
                screen.prewarm_read = name in PREWARM_READ
                self._compose_ahead(screen)
        except Exception:
            # Composing ahead uses Textual internals (pinned in pyproject): if they change, this is
            # an optimisation lost, not a console that stops. Each screen is then composed when first
            # shown, as Textual always does; the log says why.
            log.exception("composing %s ahead failed: screens are composed when first shown", name)
            self.warm_screens.pop(name, None)
            self._to_prewarm.clear()
        if self._to_prewarm:
            self.set_timer(PREWARM_GAP_S, self.prewarm)
        else:
            self.set_timer(PREWARM_GAP_S, self._prewarmed)

    def _compose_ahead(self, screen: Screen | str) -> None:
        """Compose and mount ``screen`` without showing it (Textual's own step of a first show)."""
        self._get_screen(screen)

    def _prewarmed(self) -> None:
        self._draw_ahead()
        gc_pause.settle_for_long_run()  # (store/gc_pause.py, phase 2)

    def _draw_ahead(self) -> None:
        """Lay out and draw the screens composed ahead, off screen, once their first data is in.

        Textual draws only the screen shown, so a first visit still rendered
        every line of every widget (a DataTable's first render above all:
        ~150 ms for Escalations). Done here, each widget's lines are cached and
        the first visit composites them like any later one.
        """
        screens = list(self.warm_screens.values())
        if self.is_screen_installed("task-detail"):
            # The task detail too (installed, not a mode's screen): the first enter laid it out at the terminal's
            # size and drew every line of it (profiled: ~80 ms of UI thread, the slowest enter of every run).
            screens.append(self.get_screen("task-detail"))
        for screen in screens:
            if getattr(screen, "_drawn_ahead", False) or not screen.is_mounted or screen.is_current:
                continue
            screen._drawn_ahead = True  # type: ignore[attr-defined]
            try:
                screen._refresh_layout(self.size)
                screen._compositor.render_update(full=True)
            except Exception:  # an optimisation only: the first visit draws it as Textual always does
                log.exception("drawing %s ahead failed", type(screen).__name__)

    def on_unmount(self) -> None:
        gc_pause.resume_after_start_up()  # (a console that stopped before its first frame)
        self.ingest.close()
        self.prune_stop.set()
        self.deck.close()

    def scheduled_prune(self) -> None:
        """Apply the retention rules on a thread worker (never the UI thread); a tick while one runs is skipped."""
        if self.pruning:
            return
        self.pruning = True
        deck, stop = self.deck, self.prune_stop

        def job() -> None:
            try:
                result = deck.prune(stop)
            except Exception as exc:  # deck.prune reports its own failures; this is a bug, still shown
                result = ActionResult(False, f"Prune failed: {type(exc).__name__}: {exc} (see the log)", "error")
            try:
                self.call_from_thread(self._pruned, result)
            except RuntimeError:
                pass  # the console closed meanwhile; what the prune did is in the audit trail and archives

        # Not run_off_ui: a prune is never superseded (its result must always be shown).
        self.run_worker(job, thread=True, exclusive=True, group="prune", name="prune", exit_on_error=False)

    def notify_tick(self) -> None:
        deck = self.deck
        run_off_ui(self, "notify", deck.notify_tick, self._notified)

    def release_tick(self) -> None:
        """Raise the items live verdicts ask for and publish stage changes, on a thread worker; one at a time."""
        if self._release_running:
            return  # the last one (verdicts over a big store) is still at work: skip this tick
        self._release_running = True
        deck = self.deck

        def done(changed: int) -> None:
            self._release_running = False
            error = deck.release_error
            if error is None:
                self._console_problem("release", None)
            else:
                self._console_problem(
                    "release", "Release tick failed: no promotion or roll back item is raised, no demotion made",
                    error, "Fix what the detail names (often a contract file); the next tick, within 15 s, "
                           "tries again. `agentdeck canary --enqueue` does the same by hand.")
            self._store_written(changed)

        run_off_ui(self, "release", deck.release_tick, done, on_error=lambda _: setattr(self, "_release_running", False))

    def _notified(self, result) -> None:
        if result.bell:
            self.bell()
        for problem in result.problems:  # text from the engine, which may quote trace values: no markup
            self.notify(problem, severity="warning", markup=False)
        if result.changed:
            self.store_written()

    def _pruned(self, result: ActionResult) -> None:
        self.pruning = False
        if result.severity == "error":
            self._console_problem("prune", "The scheduled prune failed", result.message,
                                  "Fix what the detail names; the next scheduled run tries again "
                                  "(or run `agentdeck prune` by hand).")
        elif result.ok:
            self._console_problem("prune", None)
        # A failure stays up until read (what to do is in the message); trace text is never markup.
        self.notify(result.message, title="Prune", severity=result.severity,  # type: ignore[arg-type]
                    timeout=30 if result.severity == "error" else 8, markup=False)
        if result.changed:
            self.store_written()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # Every text field (filter, reason, Replay's open, the palette's) keeps a steady cursor, as less and
        # vim prompts do: no redraw each half second over SSH, and a screen does not differ by the moment it
        # is looked at (a snapshot under load caught the cursor blinked off).
        from textual.widgets import Input

        if isinstance(event.widget, Input):
            event.widget.cursor_blink = False

    def next_change_seq(self) -> int:
        """A number for store changes already committed (any thread): see ``change_known``."""
        with self._change_seq_lock:
            self.change_known = next(self._change_seqs)
            return self.change_known

    def _watch_data_version(self) -> None:
        # Runs before the screens' watchers: the number of the change they are hearing of. A bump that
        # brought none (the console's own write, a test) is numbered now, after whatever it stands for.
        seq, self._bump_seq = self._bump_seq, None
        self.change_heard = seq if seq else self.next_change_seq()

    def on_ingested(self, message: Ingested) -> None:
        self._bump_seq = message.seq or None
        self.last_ingest_at = message.committed_at
        # Screens reload on each bump, and a reload supersedes the one in flight. The store watcher
        # (console/ingest_service.py) posts at most one of these every settings.ingest.refresh_every (the
        # first at once, the last of a burst when its time comes), so under a steady stream of commits each
        # reload lands instead of being replaced by the next, and the UI thread is not woken for the others.
        self.data_version += 1
        # The counters (aggregate queries) need not follow each one: at most 4 a second, plus the tick.
        now = time.monotonic()
        if now - self._counters_at >= 0.25 or not self.tick:
            self._counters_at = now
            self.refresh_counters()

    def on_health_checked(self, message: HealthChecked) -> None:
        self.health = self._with_console_problems(message.health)

    def _console_problem(self, key: str, what: str | None, detail: str = "", todo: str = "") -> None:
        """Raise (``what``) or clear (None) a problem only this console knows of; it stays listed until cleared."""
        if what is None:
            if self.console_problems.pop(key, None) is None:
                return
        else:
            known = self.console_problems.get(key)
            since = known.since if known is not None else self.now()
            self.console_problems[key] = Problem(key, "error", what, detail, since, todo)
        self.health = self._with_console_problems(self.health)

    def _with_console_problems(self, health: Health) -> Health:
        """The store's health plus what only this console knows went wrong (not in the store)."""
        ours = CONSOLE_PROBLEMS  # raised or cleared here: never kept from an earlier merge
        health = replace(health, problems=tuple(p for p in health.problems if p.key not in ours))
        problems = (*self.console_problems.values(), *health.problems)
        return replace(health, problems=problems,
                       level=max((p.level for p in problems), key=LEVELS.index, default="ok"))

    def store_written(self) -> None:
        """The console itself wrote the store (a decision, a compensation…): screens and counters re-read."""
        self.data_version += 1
        self.refresh_counters()

    def _store_written(self, changed: int) -> None:
        if changed:
            self.store_written()

    def sweep_expired(self) -> None:
        deck = self.deck
        run_off_ui(self, "expiry", deck.sweep_expired, self._store_written)

    def open_task(self, task_id: str) -> None:
        """Show one task's events over the Tasks screen (from Tasks or the palette).

        The task is read first, on a worker, and the screen pushed with it:
        one paint instead of an empty screen and then its data.
        """
        deck, asked_at = self.deck, self.where()
        run_off_ui(self, "open-task", lambda: deck.task_detail(task_id), lambda d: self.show_task(d, asked_at=asked_at))

    def where(self) -> tuple:
        """Where the operator is: a read's answer asked for here is shown only if nothing moved them since (a key
        pressed after it wins: another screen, r then 1, the palette or the help opened over it)."""
        # (The mode itself is left out: it changes only through switch_mode, which counts each change.)
        return (self.mode_switches, self.screen)

    def claim_task_open(self) -> int:
        """A task is being opened from a read of its own (enter on a read ahead): an open asked before it is
        not shown when its read answers, and this one is not if another is asked after it (``task_open_is``).

        Shares ``open_task``'s read generation: the last task asked for is the one shown, whichever path
        answers last (enter on a read ahead still in flight, then enter or the palette on another task).
        """
        return new_generation(self, "open-task")

    def task_open_is(self, claim: int) -> bool:
        """No task was asked to open since ``claim_task_open`` returned ``claim``."""
        return read_generations(self).get("open-task") == claim

    def show_task(self, detail: TaskDetail, *, recheck: bool = False, asked_at: tuple | None = None) -> None:
        """Show ``detail`` (read for the key that opens it, asked at ``where()`` ``asked_at``) over the Tasks screen.

        ``recheck``: it was read before the last store change heard (read ahead, console/screens/detail_ahead.py):
        the detail screen checks the task's row behind its first frame and shows what changed.
        """
        from agentdeck.console.screens.task_detail import TaskDetailScreen

        if asked_at is not None and asked_at != self.where():
            return  # a key pressed after enter was acted on first (a screen, the palette): the later key wins
        self.switch_mode("tasks")
        # One detail screen, installed once: opening a task re-points it
        # instead of composing a new screen.
        if not self.is_screen_installed("task-detail"):
            self.install_screen(TaskDetailScreen(), name="task-detail")
        screen = self.get_screen("task-detail")
        assert isinstance(screen, TaskDetailScreen)
        screen.show_task(detail.task_id, detail, recheck=recheck)
        if self.screen is not screen:
            # Written whole from its frame kept when last shown: the header, tabs and footer are not drawn again.
            screen.draw_whole_when_switched(laid_out=False)
            self.push_screen(screen)

    def filter_tasks(self, text: str) -> None:
        """Go to Tasks filtered by ``text`` (filter syntax of console.widgets.task_filter)."""
        self.switch_mode("tasks")
        while len(self.screen_stack) > 1 and not isinstance(self.screen, TasksScreen):
            self.pop_screen()  # e.g. a task's detail over the list
        if isinstance(self.screen, TasksScreen):
            self.screen.apply_filter_text(text)

    def open_replay(self, task_or_request_id: str) -> None:
        """Show one task's decision path (from Tasks, Escalations, Canary or the palette)."""
        self.replay_task = task_or_request_id
        self.switching.switch("replay")  # (shown once its reconstruction is read, as on key 4)

    def open_replay_file(self, path: str, label: str) -> None:
        """Show a task rebuilt from a trace FILE (a suite run's), never from the live store.

        ``label`` is what the Replay screen shows as the id; the screen reads
        the file on a worker (``DeckService.replay_trace``).
        """
        self.replay_files[label] = path
        self.open_replay(label)

    def refresh_counters(self) -> None:
        deck = self.deck
        run_off_ui(self, "counters", deck.counters, self._set_counters)

    def _set_counters(self, counters: Counters) -> None:
        self.counters = counters
