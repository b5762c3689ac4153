"""A one-line prompt that closes on Enter and hands the keys typed after it back to the screen.

Textual routes each key to the widget focused when the app *reads* it. A fast typist (or a
paste) sends ``/ ok Enter j`` or ``o task-0002 Enter j`` in one read: by the time Enter has been
handled, the keys after it are already queued on this box. Without care they are typed into a
box that is about to hide, and lost.

So the box applies Enter in its own queue (after the characters typed before it, before the
ones after it), hides itself and gives the focus back at once; any key still routed to it
while hidden goes back to the app, which hands it to the widget focused now, in order.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class PromptInput(Input):
    """An ``Input`` that closes itself on Enter (``submit_now``) and focuses ``leave_to``."""

    def __init__(self, *, leave_to: str | None = None, **kw) -> None:
        self.leave_to = leave_to  # the widget (a selector on its screen) the focus goes back to as it closes
        # When Enter closed it: keys created after that Enter and still routed here were typed after it.
        self._closed_by_enter_at: float | None = None
        super().__init__(**kw)

    def on_focus(self) -> None:
        self._closed_by_enter_at = None  # open again: what comes here now is typed into it

    async def submit_now(self) -> bool:
        """Act on Enter; True closes the box. By default: post ``Submitted`` for a non-empty value."""
        if not self.value.strip():
            return False
        await super().action_submit()
        return True

    async def action_submit(self) -> None:  # Enter bound by Input; also reached from code
        if await self.submit_now():
            self.leave()

    async def _on_key(self, event: events.Key) -> None:
        after_enter = self._closed_by_enter_at is not None and event.time >= self._closed_by_enter_at
        if not self.display and after_enter:
            # Closed by Enter while keys read with it were already routed here: each goes back to the app.
            # (Closed by Esc, which the app runs as its key comes in, the keys still queued here were typed
            # before the Esc: they are the box's, as a person typing them meant.)
            event.stop()
            event.prevent_default()
            self.app.post_message(events.Key(event.key, event.character))
            return
        if event.key == "enter":
            # Here, in this box's own queue: a binding would run only once the key had bubbled up to the
            # app, after the keys typed after it had been typed into this box.
            event.stop()
            event.prevent_default()
            await self.action_submit()
            if not self.display:
                self._closed_by_enter_at = event.time
            return
        await super()._on_key(event)

    def leave(self) -> None:
        """Hidden, the focus back where it came from, now (the screen's handler of the message does the rest)."""
        if self.leave_to is None:
            return
        self.display = False
        self.screen.set_focus(self.screen.query_one(self.leave_to))
