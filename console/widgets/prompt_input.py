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
from textual.message import Message
from textual.widgets import Input


class PromptInput(Input):
    """An ``Input`` that closes itself on Enter (``submit_now``) and focuses ``leave_to``."""

    class Reopened(Message, bubble=False):
        """Queued on the box as it is opened: the keys ahead of it in its queue were routed to the edit before."""

    def __init__(self, *, leave_to: str | None = None, **kw) -> None:
        self.leave_to = leave_to  # the widget (a selector on its screen) the focus goes back to as it closes
        # When Enter closed it: keys created after that Enter and still routed here were typed after it.
        self._closed_by_enter_at: float | None = None
        # Opened again (``opened``) while keys routed to its former edit may still be queued here, ahead of _Reopened.
        self._reopening = 0
        super().__init__(**kw)

    def opened(self) -> None:
        """The screen has just shown and focused the box for a new edit (/ on Tasks, o on Replay).

        Keys routed here before (the box focused for the edit an Esc or an Enter closed, all read at once with
        the key that opens it again: / ok Enter Esc / x) are still queued ahead of the new edit's: they are not
        typed into it, and their Enter does not apply it (it applied what the Esc cancelled and closed the box
        just opened, the x going to the list).
        """
        self._reopening += 1
        self.post_message(self.Reopened())

    def _on_prompt_input_reopened(self, _message: PromptInput.Reopened) -> None:  # (the keys after it are the new edit's)
        self._reopening -= 1

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
        if self._reopening:
            event.stop()
            event.prevent_default()
            if after_enter:  # typed after the Enter that closed the former edit: where the app routes it now
                self.app.post_message(events.Key(event.key, event.character))
            # Otherwise typed into the former edit, closed since (an Esc cancelled it): not the new edit's.
            return
        if not self.display and after_enter:
            # Closed by Enter while keys read with it were already routed here: each goes back to the app.
            # (Closed by Esc, which the app runs as its key comes in, the keys still queued here were typed
            # before the Esc: they are the box's, as a person typing them meant.)
            event.stop()
            event.prevent_default()
            self.app.post_message(events.Key(event.key, event.character))
            return
        if event.key == "enter" and not self.display:
            # Closed by an Esc typed after this Enter (the app ran the Esc as it came in): the Esc cancels what
            # was typed, Enter included; applying it now would leave applied what the person cancelled.
            event.stop()
            event.prevent_default()
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
