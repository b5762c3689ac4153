"""Switching screen on a key: read the screen's data first, then show it once, with that data.

A switch that showed the screen at once and read on its resume drew it twice under load (the last
visit's rows, then the fresh ones, each a full composite) and waited for the read in between, behind
Textual's own 50 ms masking of the transition (``App.delay_update``). Here the key starts the target
screen's read on its worker (``DeckScreen.read_ahead``); its answer is applied to the widgets while the
screen is still off screen, and only then is the mode switched, unmasked: the first frame of the new
screen is its fresh data. Keys typed meanwhile are held and handed, in order, to the new screen; if
the read takes longer than ``WAIT_S`` the switch happens anyway (as before: the screen shows what it
had, then its answer), so a slow store never leaves the console deaf to a key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual import events

from agentdeck.console.screens.base import DeckScreen

if TYPE_CHECKING:
    from textual.app import App
    from textual.screen import Screen
    from textual.timer import Timer

WAIT_S = 0.15  # longest a key waits for the screen's fresh data before the switch shows it as it is
HAND_ON_AT_LATEST = 0.25  # seconds: see SwitchAhead.hand_on
PASS_THROUGH = frozenset({"ctrl+c"})  # acted on at once even during a switch (quit)


class SwitchAhead:
    """One switch at a time for ``app``; ``held`` keys go to the screen switched to."""

    def __init__(self, app: App, screen_for: Callable[[str], Screen | None]) -> None:
        self.app = app
        self.screen_for = screen_for  # the screen a switch to this mode will show, if it exists yet
        self.mode: str | None = None  # switching to it, reading first
        self.held: list[events.Key | events.Paste] = []
        self.draining = False  # switched, the held keys not handed on yet: later keys queue behind them
        self.unmasked = False  # inside a switch whose screen is ready: no delay_update
        self._timer: Timer | None = None
        self._screen: DeckScreen | None = None  # the screen switched to, reading
        self._generation = 0

    def switch(self, mode: str) -> None:
        app = self.app
        if mode == app.current_mode or mode not in app._modes:
            if mode == app.current_mode:
                self.forget()  # back to the screen shown while a switch away from it reads: stay (the newer key)
            app.switch_mode(mode)  # (nothing to do, or Textual's error)
            return
        screen = self.screen_for(mode)
        if not isinstance(screen, DeckScreen) or not screen.READ_AHEAD or not screen.is_mounted:
            app.switch_mode(mode)  # not composed yet (or a screen that reads when shown): as Textual does
            return
        if self._timer is not None:  # (a switch asked for while one reads: the newer one wins)
            self._timer.stop()
        self._generation += 1
        generation = self._generation
        self.mode = mode
        self._screen = screen
        self._timer = app.set_timer(WAIT_S, lambda: self._show(generation, ready=False))
        screen.read_ahead(lambda: self._show(generation, ready=True))

    def hold(self, event: events.Event) -> bool:
        """Keep a key (or paste) typed during a switch for the screen switched to; False: handle it now."""
        if not (self.mode or self.draining) or not isinstance(event, (events.Key, events.Paste)) or event.is_forwarded:
            return False
        if isinstance(event, events.Key) and event.key in PASS_THROUGH:
            return False
        self.held.append(event)
        return True

    def _show(self, generation: int, *, ready: bool) -> None:
        if generation != self._generation or self.mode is None:
            return  # shown already (the read answered before the bound, or the bound came first)
        mode, self.mode = self.mode, None
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        app = self.app
        if not app.is_running:
            return
        self.unmasked = ready  # the data is on the screen's widgets: nothing to mask while it arrives
        ahead = self._screen
        self._screen = None
        still_shown = self.screen_for(mode) is ahead  # (not if a screen was pushed over it meanwhile)
        if ready and still_shown and ahead is not None:
            ahead.draw_whole_when_switched()  # one draw, all of it, written as it is made
        try:
            app.switch_mode(mode)
        finally:
            self.unmasked = False
        self.hand_on()

    def forget(self) -> None:
        """A switch made another way (a tab clicked, a row's goto) while one reads: the newer one wins.

        Without this the older switch, once read (or at its bound), took the console to its screen.
        """
        if self.mode is None:
            return
        self._generation += 1  # (its read's answer and its bound find nothing to show)
        self.mode = None
        self._screen = None
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def hand_on(self) -> None:
        """Switched: the keys held go to the screen now shown (not while a switch still reads: they are its)."""
        if self.held and not self.draining and self.mode is None:
            # After the new screen's resume (queued by switch_mode): it sets the focus the keys go to.
            self.draining = True
            self.app.screen.call_later(self._replay)
            # A screen's call_later is dropped if the screen goes first; then every later key would be held
            # for good (draining). The timer hands them on all the same.
            self.app.set_timer(HAND_ON_AT_LATEST, self._replay)

    def _replay(self) -> None:
        if not self.draining:
            return  # handed on already (call_later or the timer, whichever came first)
        held, self.held, self.draining = self.held, [], False
        for event in held:
            again = events.Key(event.key, event.character) if isinstance(event, events.Key) else events.Paste(event.text)
            # From the app, as the driver's are (made here, its sender would be the screen, and a
            # message stops bubbling at its sender: the key would never reach the bindings).
            self.app.post_message(again.set_sender(self.app))

