"""The modal that asks why, before a decision is recorded.

Dismisses with the reason (possibly empty when none is required) or
``None`` when cancelled. A required reason cannot be left empty: the dialog
says so and stays open.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual import events
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from agentdeck.console.safe import plain
from agentdeck.console.widgets.chrome import rows_between_chrome


class ReasonDialog(ModalScreen[str | None]):
    # Like the compensation dialog: it sits in #reason-room, whose margin keeps the header
    # (which screen, the queue and ingest counters) and the footer in view; what the decision
    # is about scrolls in the rows the fixed parts leave (_fit), so the reason box and the
    # buttons always show, even at 80x24 with a deadline note and a long callback sentence.
    DEFAULT_CSS = """
    ReasonDialog #reason-room { margin: 2 0 1 0; height: 1fr; width: 1fr; align: center middle; }
    ReasonDialog #reason-frame {
        width: 76; max-width: 100%; height: auto; max-height: 100%; padding: 0 2;
        border: thick $accent; background: $surface;
    }
    ReasonDialog #reason-about { height: auto; }
    ReasonDialog #reason-title { text-style: bold; margin-bottom: 1; }
    ReasonDialog #reason-summary { margin-bottom: 1; }
    ReasonDialog #reason-note { color: $warning; margin-bottom: 1; }
    ReasonDialog #reason-where { margin-bottom: 1; }
    ReasonDialog #reason-error { color: $error; height: auto; }
    ReasonDialog #reason-hint { color: $text-muted; }
    ReasonDialog Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    ReasonDialog Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        # The reason box has the cursor; what the decision is about scrolls with the page keys
        # (at 80x24 a deadline note and a long callback sentence do not all fit).
        Binding("pageup", "scroll_about(-1)", "Page up", show=False),
        Binding("pagedown", "scroll_about(1)", "Page down", show=False),
    ]

    def __init__(self, decision: str, escalation_id: str, summary: Text, *, required: bool, note: str = "",
                 where: str = "", orphaned: bool = False) -> None:
        super().__init__()
        self.decision = decision
        self.escalation_id = escalation_id
        self.summary = summary
        self.required = required
        self.note = note
        self.where = where  # where the decision will go (console.service.reach), said before it is taken
        self.orphaned = orphaned

    def compose(self) -> ComposeResult:
        verb = "Approve" if self.decision == "approve" else "Deny"
        title = Text(f"{verb} ")
        title.append_text(plain(self.escalation_id, 60, single_line=True))
        with Container(id="reason-room"), Vertical(id="reason-frame"):
            yield Label(title, id="reason-title")
            with VerticalScroll(id="reason-about"):
                yield Static(self.summary, id="reason-summary")
                if self.note:
                    yield Static(Text(self.note), id="reason-note")  # literal, never markup
                if self.where:  # quotes a callback URL from a trace: literal, never markup
                    yield Static(plain(self.where, 600, style="bold" if self.orphaned else ""), id="reason-where")
            yield Input(placeholder="reason (required)" if self.required else "reason (optional)", id="reason",
                        max_length=2000)
            yield Static("", id="reason-error")
            yield Static("Enter confirms · Esc cancels", id="reason-hint")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button(verb, id="confirm", variant="error" if self.decision == "deny" else "success")

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.height)

    def _fit(self, height: int) -> None:
        # border 2, title 1 + margin 1, reason input 3, error line 1, hint 1, buttons 3 + margin 1
        fixed = 2 + 2 + 3 + 1 + 1 + 4
        self.query_one("#reason-about").styles.max_height = rows_between_chrome(height, fixed)
        self.call_after_refresh(self._show_hint)

    def _show_hint(self) -> None:
        about = self.query_one("#reason-about", VerticalScroll)
        more = about.max_scroll_y > 0
        self.query_one("#reason-hint", Static).update(
            "Enter confirms · Esc cancels" + (" · PgUp/PgDn scroll the text above" if more else ""))

    def action_scroll_about(self, pages: int) -> None:
        about = self.query_one("#reason-about", VerticalScroll)
        if pages > 0:
            about.scroll_page_down(animate=False)
        else:
            about.scroll_page_up(animate=False)

    def on_mount(self) -> None:
        self._fit(self.app.size.height)
        self.query_one("#reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._confirm()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "confirm":
            self._confirm()
        else:
            self.dismiss(None)

    def _confirm(self) -> None:
        reason = self.query_one("#reason", Input).value.strip()
        if self.required and not reason:
            what = "deny" if self.decision == "deny" else "approve this risk level"
            self.query_one("#reason-error", Static).update(f"A reason is required to {what}.")
            self.query_one("#reason", Input).focus()
            return
        self.dismiss(reason)

    def action_cancel(self) -> None:
        self.dismiss(None)
