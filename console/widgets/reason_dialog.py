"""The modal that asks why, before a decision is recorded.

Dismisses with the reason (possibly empty when none is required) or
``None`` when cancelled. A required reason cannot be left empty: the dialog
says so and stays open.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from agentdeck.console.safe import plain


class ReasonDialog(ModalScreen[str | None]):
    DEFAULT_CSS = """
    ReasonDialog { align: center middle; }
    ReasonDialog > Vertical {
        width: 76; height: auto; padding: 1 2;
        border: thick $accent; background: $surface;
    }
    ReasonDialog #reason-title { text-style: bold; margin-bottom: 1; }
    ReasonDialog #reason-summary { margin-bottom: 1; }
    ReasonDialog #reason-note { color: $warning; margin-bottom: 1; }
    ReasonDialog #reason-where { margin-bottom: 1; }
    ReasonDialog #reason-error { color: $error; height: auto; }
    ReasonDialog #reason-hint { color: $text-muted; }
    ReasonDialog Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    ReasonDialog Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

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
        with Vertical():
            yield Label(title, id="reason-title")
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

    def on_mount(self) -> None:
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
