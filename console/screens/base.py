"""What all deck screens share: the header, the footer, live refresh, and reading off the UI thread."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from textual import events
from textual._context import active_app
from textual.app import ComposeResult
from textual.dom import DOMNode
from textual.filter import ANSIToTruecolor
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.worker import get_current_worker

from agentdeck.console.screens.cropped_compositor import FrameKeepingCompositor
from agentdeck.console.widgets.chrome import DeckHeader
from agentdeck.console.widgets.footer import DeckFooter

T = TypeVar("T")
AFTER_FRAME_AT_LATEST = 0.25  # seconds: see DeckScreen.after_next_frame
log = logging.getLogger(__name__)


def read_generations(node: DOMNode) -> dict[str, int]:
    """The newest request of each read group of ``node``: an answer to an older one is stale (run_off_ui)."""
    return node.__dict__.setdefault("_deck_generations", {})


def new_generation(node: DOMNode, group: str) -> int:
    """Number a new request of ``group`` of ``node``: answers to the ones asked before it are stale now."""
    generations = read_generations(node)
    generation = generations[group] = generations.get(group, 0) + 1
    return generation


def run_off_ui(node: DOMNode, group: str, job: Callable[[], T], show: Callable[[T], Any],
               *, on_error: Callable[[str], Any] | None = None, action: bool = False) -> None:
    """Run ``job`` (service calls: I/O) on a thread worker; hand its result to ``show`` on the UI thread.

    The console's one scheme for stale results: the worker is exclusive in
    its ``group`` (a newer request cancels the older), and a generation number
    per group drops a result that arrives after a newer request was made (a
    thread cannot be stopped mid-query, so cancelling alone is not enough).
    An error is logged and shown to the operator, never swallowed.

    An ``action`` (a decision, a compensation…) is never superseded: it runs
    to the end and its result is always shown.
    """
    generations = read_generations(node)
    generation = new_generation(node, group)
    # The newest request of each group not answered yet: what "settled" means to tests and benchmarks.
    waiting: dict[str, int] = node.__dict__.setdefault("deck_waiting", {})
    waiting[group] = generation
    app = node.app

    def answered() -> None:
        if waiting.get(group) == generation:
            del waiting[group]

    def deliver(result: T) -> None:
        answered()
        if action or (generations.get(group) == generation and node.is_attached):
            show(result)
        _settled_hook()

    def _settled_hook() -> None:
        if not waiting:
            hook = getattr(node, "_on_settled", None)
            if hook is not None:
                hook()

    def failed(message: str) -> None:
        answered()
        if on_error is not None:
            on_error(message)
        else:
            app.notify(message, title="agentdeck", severity="error", timeout=10, markup=False)
        _settled_hook()

    def work() -> None:
        try:
            result = job()
        except Exception as exc:
            log.exception("%s failed", group)
            if action or not get_current_worker().is_cancelled:
                app.call_from_thread(failed, f"{group}: {type(exc).__name__}: {exc}"[:300] + " (see the log)")
            return
        if action or not get_current_worker().is_cancelled:
            app.call_from_thread(deliver, result)

    node.run_worker(work, thread=True, exclusive=not action, group=group, name=group, exit_on_error=False)


def settled(node: DOMNode) -> bool:
    """Every read ``node`` asked for last has been answered: it shows what it last asked for."""
    return not node.__dict__.get("deck_waiting")


class DeckScreen(Screen):
    """A screen that re-reads its data when the store changes.

    Subclasses set ``MODE`` and implement ``compose_body`` and ``reload``
    (called on mount and after each change of ``app.data_version``; read
    through ``self.read(...)``, never on the UI thread).
    """

    MODE = ""
    # Actions that move the focus (the filter's /): the app runs them as their key comes in, so the keys read
    # with it go where the focus went (AgentDeck.on_event). Each must focus with set_focus, not Widget.focus.
    # (A widget may name its own, as FilterInput does.)
    FOCUSING_ACTIONS: frozenset[str] = frozenset()

    @property
    def BLANK(self) -> bool:  # type: ignore[override]  # noqa: N802 (Textual's name)
        """Draw the screen's own lines (the background under its widgets) as blank strips of its style.

        What Textual's Screen.render draws for an opaque background (``Blank``), without its line
        cache: Textual repaints the screen widget on every push, pop and resume, which threw that cache
        away, and drawing its 40 lines again through it was ~1.5-2 ms of each enter and each escape.
        A see-through background (a dialog over another screen) is drawn as Textual does, and so is a
        background the app's line filters would change (Textual's BLANK skips them): NO_COLOR's Monochrome,
        TEXTUAL_FILTERS=dim, an ANSI colour the ANSI-to-truecolor filter converts.
        """
        if self.styles.background.a < 1:
            return False
        style = self.visual_style.rich_style
        return (not style.dim and all(c is None or c.triplet is not None for c in (style.color, style.bgcolor))
                and all(type(f) is ANSIToTruecolor for f in self.app.get_line_filters()))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A partial update draws only what is in it; a switch back draws only what changed (cropped_compositor).
        self._compositor = FrameKeepingCompositor()
        self.deck_waiting: dict[str, int] = {}  # reads asked for and not answered yet (run_off_ui, settled)
        # Styled for the app's current CSS as it mounts (its own .tcss is read before its
        # children are registered; the screen node is styled again in on_mount). Textual marks
        # a new screen as never styled, and on its first show re-parses and re-applies the
        # whole stylesheet twice (App._init_mode, App.switch_mode) for nothing. The first
        # screen too, made while the app is being set up, once the app node has its styles
        # (AgentDeck._style_before_first_screen): that pass, a reparse of every source and a
        # restyle of every node, was ~10 ms of CPU before the first frame. A theme change
        # later is a new CSS generation, and its own refresh_css restyles every screen.
        app = active_app.get(None)
        if app is not None and (app._dom_ready or getattr(app, "styled_before_first_screen", False)):
            self._css_update_count = app._css_update_count

    _header: DeckHeader | None = None  # (set as it composes)

    def compose(self) -> ComposeResult:
        self._header = DeckHeader(self.MODE)
        yield self._header
        yield from self.compose_body()
        yield DeckFooter()

    def compose_body(self) -> ComposeResult:
        return iter(())

    @property
    def deck(self):
        return self.app.deck  # type: ignore[attr-defined]

    def read(self, group: str, job: Callable[[], T], show: Callable[[T], Any],
             on_error: Callable[[str], Any] | None = None, *, covers: bool = True) -> None:
        """Read on a worker; a newer read of the same group supersedes this one.

        ``covers``: the read re-reads what the screen shows (its ``reload``'s reads), so the store changes heard
        before it began are in its answer (see ``_changes_covered``). A read of something else (the detail of
        the row under the cursor, a list behind a report) passes False.
        """
        if not covers:
            run_off_ui(self, group, job, show, on_error=on_error)
            return
        # It covers a change-driven reload that was waiting for refresh_gap, and starts the gap again.
        self._refreshed_at = time.monotonic()
        self._cancel_refresh()

        def counted() -> tuple[int, T]:
            # Read on the worker as the job begins: a change heard before this was committed before it.
            return self._changes_heard, job()

        def shown(answer: tuple[int, T]) -> None:
            self.covered_up_to(answer[0])
            show(answer[1])

        run_off_ui(self, group, counted, shown, on_error=on_error)

    def covered_up_to(self, heard: int) -> None:
        """What is shown now covers the first ``heard`` store changes (they were committed before it was read)."""
        self._changes_covered = max(self._changes_covered, heard)

    def supersede(self, group: str) -> None:
        """Drop the answers of the reads of ``group`` asked before now.

        For a key that shows at once what the screen holds (g/G's window read before) and re-reads behind
        it: a read asked before the key (the newest window, re-read for a store change while following)
        answered for what was shown before it, and landing after the key it put that back on screen.
        """
        new_generation(self, group)

    def read_after_frame(self, group: str, job: Callable[[], T], show: Callable[[T], Any], *,
                         covers: bool = True) -> None:
        """``read``, asked once the next frame is on screen.

        For a key that shows something at once from what the screen holds (g/G's window read before,
        the list under a closed detail) and re-reads behind it: begun at once, the read's worker thread
        held the interpreter for part of the frame the key waits for. Until it is asked the screen is not
        settled; a newer read of the same group asked meanwhile makes this one unneeded.
        """
        generations = read_generations(self)
        asked = generations.get(group, 0)

        def ask() -> None:
            if generations.get(group, 0) == asked and self.is_attached:
                self.read(group, job, show, covers=covers)
            elif not self.deck_waiting:
                self._on_settled()

        self.after_next_frame(f"after-frame:{group}", ask)

    def after_next_frame(self, key: str, then: Callable[[], None]) -> None:
        """Run ``then`` once, after the next frame is on screen; until then the screen is not settled.

        Textual hands an after-refresh callback to whichever screen is on top when the message is
        handled (a task's detail or a dialog opened meanwhile) and drops it if that screen is removed
        first. Then this screen would never count as settled, and a screen that is not settled defers
        every refresh: it would silently stop following the store. The timer runs ``then`` all the
        same, at the latest AFTER_FRAME_AT_LATEST seconds on.
        """
        self.deck_waiting[key] = 0

        def once() -> None:
            if self.deck_waiting.pop(key, None) is not None:
                then()

        self.call_after_refresh(once)
        self.set_timer(AFTER_FRAME_AT_LATEST, once)

    draws_now = 0  # frames draw_now composed (bench/live.py counts them)

    def draw_now(self) -> bool:
        """Compose the frame for what was just changed, now, instead of at Textual's next update tick.

        For a live refresh (a new row while following): Textual draws a changed widget after its idle
        handler posts an update to the screen, the screen's idle resumes its 60 Hz update timer and the
        timer's tick comes back as a message: four trips through a busy event loop. Measured (bench/live.py's
        hop budget, new row applied -> frame composed, two interleaved pairs at load 4.3-4.7): p50 15-19 ms
        and p95 49-53 through them, p50 8-9 ms and p95 24-45 drawn here. Only repaints are
        drawn here: anything needing a layout or a scroll (or a screen not shown, a masked switch) is
        left to Textual's own path, unchanged. True if a frame was composed.
        """
        if not self.is_current or self.app._batch_count or self._layout_required or self._scroll_required:
            return False
        dirty = []
        for widget in self.walk_children(Widget, with_self=False):
            if widget._layout_required or widget._scroll_required or widget._refresh_styles_required:
                return False
            if widget._repaint_required:
                dirty.append(widget)
        if not dirty:
            return False
        for widget in dirty:
            widget._repaint_required = False  # (its idle handler would post the update drawn here)
            self._dirty_widgets.add(widget)
        self._on_timer_update()
        self.draws_now += 1
        return True

    def act(self, group: str, job: Callable[[], T], show: Callable[[T], Any]) -> None:
        """Run an action on a worker, whole; its one result always reaches ``show``."""
        run_off_ui(self, group, job, show, action=True)

    def on_mount(self) -> None:
        # Just mounted: every child was styled as it was registered, so the first resume need not
        # restyle them all again. The screen node itself may have been styled before its own .tcss
        # was read (Textual reads it after registering the screen, on push and on a first switch).
        self.app.stylesheet.apply(self)
        self._styled_for = self._style_key()
        self.watch(self.app, "data_version", self._data_changed, init=False)
        # A screen composed ahead of its first show (AgentDeck.prewarm) reads when shown, or now if asked to.
        if self.is_current or self.prewarm_read:
            self.reload()
        # Mounted as the screen shown (the first one): its first resume, just after, reads nothing new.
        self._resumed = self.is_current

    prewarm_read = False  # composed ahead of its first show: read its data at once all the same
    _styled_for: tuple = ()  # the stylesheet (see _style_key) this screen's styles were last fully applied for

    def _style_key(self) -> tuple:
        """What the stylesheet is: its generation (a theme change) and its sources (a .tcss read since)."""
        return (self.app._css_update_count, len(self.app.stylesheet.source))

    def _restyle_needed(self, generation: tuple) -> bool:
        """Whether the stylesheet changed, since this screen was styled, in a way that can touch it.

        Composing another screen (or a first notification) reads the default CSS of widget classes seen
        for the first time. Textual scopes a widget's default CSS to that widget type (its rules match
        only nodes of the type and their descendants), so CSS added for types this screen does not hold
        cannot change its styles: a full restyle for it (profiled at 50-60 ms on the Escalations and
        Replay screens under load) was the first switch to each screen after another one was composed.
        """
        if self._styled_for == generation:
            return False
        if not self._styled_for or self._styled_for[0] != generation[0] or generation[1] < self._styled_for[1]:
            return True  # the CSS was invalidated (a theme change) or sources went away
        added = list(self.app.stylesheet.source.values())[self._styled_for[1]:]
        if any(not source.is_defaults or not source.scope for source in added):
            return True  # unscoped CSS may match anything
        scopes = {source.scope for source in added}
        return any(scopes & node._css_type_names for node in self.walk_children(with_self=True))

    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        # Textual restyles the whole screen on every resume (every screen
        # switch): profiled, the largest cost of a switch on a big screen.
        # Nothing in the stylesheet changes while a screen is away unless the
        # app's CSS was invalidated (a theme change) or another stylesheet was
        # read (a screen's .tcss, a widget's default CSS), so restyle only then.
        if self._header is not None:
            self._header.ensure_tabs()
        generation = self._style_key()
        drawn, self._drawn_on_switch = self._drawn_on_switch, False
        if self._size and self._size != self.app.size:  # (laid out before, at another size)
            self._breakpoints_now(self.app.size)
        if not event.refresh_styles or not self._restyle_needed(generation):
            event.prevent_default()
            if drawn:
                self._resume_drawn()
            else:
                Screen._on_screen_resume(self, events.ScreenResume(refresh_styles=False))
        self._styled_for = generation
        if self._resumed:
            # A first switch to a mode posts two resumes (Textual's App._init_mode, then switch_mode):
            # the second asked for the same data again, superseding the read the first had just begun.
            return
        # (Only while shown: a screen composed ahead is resumed off screen, and its first show must read.)
        self._resumed = self.is_current
        if self._read_ahead and self._resumed:
            self._read_ahead = False
            self._ahead_ready = None
            if not settled(self):
                # Shown before its read answered (read_ahead's bound): the answer lands on screen, and
                # _on_settled reads again if a change came after the read began.
                self._stale = True
            elif self._changes_covered < self._changes_heard:
                self._refresh()  # changes heard since the read began: as for a change heard while shown
            return
        self.resumed()

    # -- reading before being shown (AgentDeck.switch_to) ------------------------------------------

    READ_AHEAD = False  # a switch to this screen reads its data first and shows it once, with that data
    _read_ahead = False  # read_ahead was asked and the screen has not been shown since
    _ahead_ready: Callable[[], Any] | None = None

    def read_ahead(self, ready: Callable[[], Any]) -> None:
        """About to be shown: read what ``reload`` reads now, off screen; ``ready()`` once it is all answered.

        The answer is applied to the widgets while the screen is not shown, so the switch that follows
        draws it once, with fresh rows (a switch that reads when resumed drew the last visit's rows and
        then the new ones). The resume after it reads nothing more unless a change came since.
        """
        self._read_ahead = True
        self._ahead_ready = ready
        self.reload()
        if settled(self):  # nothing to read (e.g. Replay with no task chosen)
            self._answered_ahead()

    _drawn_on_switch = False  # the switch that shows this screen draws all of it (draw_whole_when_switched)
    _draw_due = False  # ... and nothing else asks for that draw (a push or pop: no layout by Textual)

    def draw_whole_when_switched(self, *, laid_out: bool = True) -> None:
        """The next switch to this screen, shown before, draws it whole, once: its resume adds no repaint.

        Textual lays such a screen out in ``switch_mode`` and draws only what changed since it was last
        shown, then repaints it whole on its resume and again for the refresh asked when it was left;
        masked by ``delay_update``, the first was not written to the terminal. Unmasked (SwitchAhead),
        the first draw is the whole screen, laid out afresh, and the others are not needed. (Textual
        8.2: the screen's region among the compositor's dirty ones means a full update.)

        ``laid_out`` False: shown by a push or a pop (a task's detail on enter, the list under it on
        escape), which Textual does not lay out. The layout asked for while it was away is kept (done just
        before that draw), and the frame is written even if nothing changed: Textual's resume repainted
        the whole screen, every widget rendered again (profiled: a third of an enter's main-thread time).
        """
        if self.stack_updates and self.is_attached:
            compositor = self._compositor
            if isinstance(compositor, FrameKeepingCompositor):
                # Whole, from the frame kept when it was last shown plus what changed since (cropped_compositor).
                compositor.whole_from_frame = True
                # Less the screen's own repaint asked as it was left (Textual's switch_mode refreshes the screen
                # it leaves, all of it): that is this whole frame. A widget's change is still drawn (its regions).
                compositor._dirty_regions.discard(self.app.size.region)
                self._repaint_regions.clear()
                self._dirty_widgets.discard(self)
            else:
                compositor._dirty_regions.add(self.app.size.region)
            # What was asked while it was away (the switch that left it repaints the screen it leaves; rows
            # read ahead lay out again) is done by that draw: not again on the first frame after it.
            if laid_out:
                self._layout_required = False
            self._repaint_required = False
            self._drawn_on_switch = True
            self._draw_due = not laid_out

    def _on_timer_update(self) -> None:
        compositor = self._compositor
        if (isinstance(compositor, FrameKeepingCompositor) and compositor.whole_from_frame and self.is_active
                and not self.app._batch_count):
            # About to be written whole from the kept frame (draw_whole_when_switched): a repaint of the whole
            # screen asked since is that draw (Textual's pop refreshes the screen it shows, after the pop). A
            # widget's change is still drawn (its own regions).
            whole = self.app.size.region
            self._repaint_required = False
            self._repaint_regions.discard(whole)
            compositor._dirty_regions.discard(whole)
            self._dirty_widgets.add(self)  # (the draw happens even if nothing changed)
        # A layout and a whole repaint due in the same frame (a screen pushed or shown again with what was read
        # for it while away: a task's detail on enter): Textual (8.2) lays out and draws what moved, then draws
        # the whole screen again, both sent to the terminal. The layout's draw is made the whole one instead.
        if self._layout_required and self._repaint_required and self.is_current and not self.app._batch_count:
            self._repaint_required = False
            self._compositor._dirty_regions.add(self.app.size.region)  # (a full update: Compositor.render_update)
        super()._on_timer_update()

    def _breakpoints_now(self, size) -> None:
        """The breakpoint classes (-narrow/-wide) for ``size``, styled now: the terminal was resized while away.

        Textual sets them in the screen's Resize handler, a message handled after the resume has laid the screen
        out and drawn it: the first frame after a resize while away (enter after resizing on the list) was the
        screen in the layout of its former width, then redrawn in its own.
        """
        breakpoints = self.app.HORIZONTAL_BREAKPOINTS if self.HORIZONTAL_BREAKPOINTS is None \
            else self.HORIZONTAL_BREAKPOINTS
        if not breakpoints or self.VERTICAL_BREAKPOINTS or self.app.VERTICAL_BREAKPOINTS:
            return  # (only what this app uses: width breakpoints)
        wanted = self._get_breakpoint_classes(size.width, breakpoints)
        classes = {name: name in wanted for _, name in breakpoints}
        if all(self.has_class(name) == on for name, on in classes.items()):
            return
        self.update_classes(classes, animate=False)
        self.app.stylesheet.update(self, animate=False)  # (now, not at the app's next idle)

    def _resume_drawn(self) -> None:
        """Textual's Screen._on_screen_resume (8.2) without its repaint: the switch drew the screen whole."""
        if self.app.SUSPENDED_SCREEN_CLASS:
            self.remove_class(self.app.SUSPENDED_SCREEN_CLASS)
        self.stack_updates += 1
        self.app._refresh_notifications()
        focused = self.focused
        self._update_auto_focus()
        if self._size != self.app.size:  # (resized while switching: as Textual does)
            self._refresh_layout(self.app.size)
            self.refresh()
        elif self._draw_due:
            # The next update draws the screen, whole, from the kept frame (after the layout asked while away,
            # if one was): the screen as one of the widgets to update starts it even when nothing changed.
            self._dirty_widgets.add(self)
            # (Focus given just now reaches its widget as a message: a table draws its cursor blurred until then.)
            if self.focused is not focused or not self._draw_at_once():
                self.check_idle()
        self._draw_due = False

    # Shown by a push with new content laid out in it (a task's detail): drawn as its resume is handled
    # (_draw_at_once). Not the list under it on escape: its frame seldom needs a layout, which this always does.
    DRAW_AT_ONCE = False

    def _draw_at_once(self) -> bool:
        """Lay out and draw the screen now, as its update timer's next tick would (a pushed or popped screen).

        Textual draws a screen shown by a push after its widgets' idle handlers have posted their layout and
        update messages to it, its own idle has resumed its update timer and the tick has come back: trips
        through an event loop that, with a fleet writing, is busy with store notices (profiled on enter: 6 ms
        p50, 23 ms p95 between the push and the tick). What those messages would say is read off the widgets
        here, as ``Widget._check_refresh`` does, and the frame is made now. A widget that needs its styles
        or children made again is left to Textual's own path. True if the frame was made.
        """
        if not self.DRAW_AT_ONCE or not self.is_current or self.app._batch_count:
            return False
        widgets = list(self.walk_children(Widget, with_self=False))
        if any(w._refresh_styles_required or w._recompose_required for w in widgets) or self._recompose_required:
            return False
        for widget in widgets:
            if widget._scroll_required:
                widget._scroll_required = False
                self._scroll_required = True
            if widget._repaint_required:
                widget._repaint_required = False
                if widget.display:
                    self._dirty_widgets.add(widget)
            if widget._layout_required:
                widget._layout_required = False
                for ancestor in widget.ancestors:  # (as Widget._check_refresh: sizes that follow their content)
                    if not isinstance(ancestor, Widget):
                        break
                    ancestor._clear_arrangement_cache()
                    ancestor._layout_updates += 1
                    if not ancestor.styles.auto_dimensions:
                        break
                self._layout_required = True
        # A widget's layout message may be posted already and not handled yet (its idle came first): its flag
        # is down and the screen does not know. Laid out now in any case: drawn without, the frame could show
        # the new content in the geometry of the last (the message's own layout after it then finds no change).
        self._layout_required = True
        self._on_timer_update()
        return True

    def _answered_ahead(self) -> None:
        ready, self._ahead_ready = self._ahead_ready, None
        if ready is not None:
            ready()

    _resumed = False  # resumed and not suspended since

    def _on_screen_suspend(self) -> None:
        self._resumed = False
        Screen._on_screen_suspend(self)

    def resumed(self) -> None:
        """The screen is shown again (override to skip a reload it does not need)."""
        self.reload()

    # Store changes (app.data_version bumps) heard, and how many of them the data shown covers: a read that
    # began after a change includes it, so answering it needs no second read. Under load a read often waits
    # for a worker thread longer than the gap between changes; re-reading on its answer for changes it had
    # already seen chained reads (the slow Escalations switch, Tasks following a busy fleet).
    _changes_heard = 0
    _changes_covered = 0
    _stale = False  # a change was heard while a read was in flight
    _refreshed_at = 0.0  # monotonic time of the last change-driven reload
    _refresh_timer: Timer | None = None

    def refresh_gap(self) -> float:
        """Seconds between change-driven reloads at least (override: e.g. a paused list re-read less often).

        The app already bumps ``data_version`` at most every ``refresh_every``; a screen may ask for fewer.
        """
        return 0.0

    def _data_changed(self, _version: int) -> None:
        self._changes_heard += 1
        if not self.is_current:
            return  # (the resume re-reads)
        if not settled(self):
            # A busy fleet commits many batches a second: one reload at a time, and one more when it is
            # answered if a change came after it began, not one per batch.
            self._stale = True
            return
        self._refresh()

    def _leaving(self) -> bool:
        """A key is switching away from this screen (SwitchAhead reads the next one's data): no reload now."""
        switching = getattr(self.app, "switching", None)
        return switching is not None and switching.mode is not None

    def open_dialog(self, dialog: Screen, callback: Callable[[Any], Any] | None, *, what: str, key: str) -> bool:
        """Push ``dialog`` over this screen if the operator still has it in front of them; else say why not.

        For a dialog opened when a read answers (an approval's rules, a compensation's plan): pushed with
        ``app.push_screen`` it lands on whatever screen is shown by then. After a screen key pressed meanwhile
        that was the screen switched to (an escalation's approval over Tasks), or the dialog went up on this
        screen while a switch away from it was reading and was hidden by it. The later key wins, visibly:
        nothing is decided or undone without the dialog, and the operator is told how to ask again.
        """
        if self.is_current and not self._leaving():
            self.app.push_screen(dialog, callback)
            return True
        self.notify(f"{what}: not opened, as you left this screen before it was ready; press {key} again "
                    f"on {self.MODE.capitalize()}.", severity="warning", timeout=8, markup=False)
        return False

    def _refresh(self) -> None:
        """Reload for the changes heard: now, or when ``refresh_gap`` has passed since the last."""
        if self._leaving():
            return  # its read would compete with the next screen's; shown again, it re-reads
        wait = self._refreshed_at + self.refresh_gap() - time.monotonic()
        if wait <= 0:
            self.reload()  # (its read cancels a waiting refresh and starts the gap: see read)
        elif self._refresh_timer is None:
            self._refresh_timer = self.set_timer(wait, self._refresh_due)
            self.deck_waiting["refresh"] = 0  # not settled: it knows of newer data than it shows

    def _refresh_due(self) -> None:
        self._refresh_timer = None
        self.deck_waiting.pop("refresh", None)
        if self.is_current:
            self._refresh()

    def _cancel_refresh(self) -> None:
        """A reload is starting (for whatever reason): it covers a change-driven one that was waiting."""
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
            self._refresh_timer = None
        self.deck_waiting.pop("refresh", None)

    def _on_settled(self) -> None:
        if self._ahead_ready is not None:
            self._answered_ahead()
        if self._stale and self._changes_covered >= self._changes_heard:
            self._stale = False  # every change heard came before the read just answered began
        if self._stale and self.is_current:
            self._stale = False
            self._refresh()

    def reload(self) -> None:
        """Fetch fresh data (override; read through ``self.read``)."""
