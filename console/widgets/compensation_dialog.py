"""The compensation confirmation: exactly what will run, then run it only on confirmation.

Opened with a ``CompensationPrompt`` (``DeckService.compensation_prompt``:
a plan, or why there is none). It shows the method, URL, headers and body
(or the named handler and its arguments; secrets masked on screen), the
target system, the idempotency key and the risk. Confirming runs
``DeckService.compensate`` whole in one worker (the attempt is recorded before
the call, the result after) and shows its one result; a failure is shown
with a Retry button that re-checks and runs again with the same key.
Dismisses with True if anything was attempted (so the screen reloads).
"""

from __future__ import annotations

import json

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from agentdeck.console.safe import plain
from agentdeck.console.widgets.chrome import rows_between_chrome
from agentdeck.console.screens.base import run_off_ui
from agentdeck.console.service.views import ActionResult, CompensationPrompt

MAX_BODY_SHOWN = 3000


def _pretty(value) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if len(text) > MAX_BODY_SHOWN:
        return text[:MAX_BODY_SHOWN] + f"\n… ({len(text):,} characters in all)"
    return text


def describe(prompt: CompensationPrompt) -> Text:
    """The plan as the operator reads it (all trace-derived text through plain())."""
    out = Text()
    plan = prompt.plan
    assert plan is not None

    def row(label: str, value: object, style: str = "") -> None:
        out.append(f"{label:<16}", "bold")
        out.append_text(plain(value, 400, style=style))
        out.append("\n")

    # Secrets (tokens in headers, passwords in bodies) are masked on screen, not in what is sent.
    headers, body, args, hidden = prompt.headers, prompt.body, prompt.args, prompt.masked
    row("System", plan.system)
    row("Undoes", f"{plan.operation} ({plan.action_id}, task {plan.task_id})")
    row("Risk", plan.risk, "bold yellow")
    if plan.kind == "http":
        row("Request", f"{plan.method} {plan.url}", "bold")
        for k, v in headers.items():
            row("  header", f"{k}: {v}")
        row("Body", "")
        out.append_text(plain(_pretty(body)))
        out.append("\n")
    else:
        row("Handler", plan.handler, "bold")
        row("Arguments", "")
        out.append_text(plain(_pretty(args)))
        out.append("\n")
    row("Idempotency key", plan.idempotency_key)
    if hidden:
        row("Note", f"{hidden} secret value(s) masked here; they are sent as the agent recorded them", "dim")
    out.rstrip()
    return out


HINT = "Nothing has run yet. Enter or Compensate runs it; Esc cancels."


class CompensationDialog(ModalScreen[bool]):
    # Sized to the terminal, not to a fixed width: at 80x24 (the on-call SSH size) the whole
    # dialog and its buttons must show. The plan scrolls; the buttons never scroll away.
    # It sits in #comp-room, whose margin keeps it off the header (2 lines: which screen, ingest
    # and queue counters) and the footer (the keys that work), which stay readable around it.
    # (Padding on the modal screen itself would shift the dimmed screen drawn beneath it.)
    DEFAULT_CSS = """
    CompensationDialog #comp-room { margin: 2 0 1 0; height: 1fr; width: 1fr; align: center middle; }
    CompensationDialog #comp-frame {
        width: 96%; max-width: 96; height: auto; max-height: 100%; padding: 0 1;
        border: thick $error; background: $surface;
    }
    CompensationDialog #comp-title { text-style: bold; }
    CompensationDialog VerticalScroll { height: auto; margin-top: 1; }
    CompensationDialog #comp-status { height: auto; margin-top: 1; display: none; }
    CompensationDialog #comp-status.shown { display: block; }
    CompensationDialog #comp-reason { margin-top: 1; }
    CompensationDialog #comp-hint { color: $text-muted; margin-top: 1; }
    CompensationDialog Horizontal { height: auto; align-horizontal: right; }
    CompensationDialog Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, prompt: CompensationPrompt) -> None:
        super().__init__()
        self.prompt = prompt
        self.has_plan = prompt.plan is not None
        self.action_id = prompt.action_id
        self.attempted = False
        self.running = False
        # Undoing needs a reason where approving did (high or critical risk).
        self.reason_required = bool(prompt.plan is not None and prompt.plan.reason_required)
        self.reason = ""

    def compose(self) -> ComposeResult:
        title = Text("Compensate ")
        title.append_text(plain(self.action_id, 80, single_line=True))
        with Container(id="comp-room"), Vertical(id="comp-frame"):
            yield Label(title, id="comp-title")
            with VerticalScroll():
                if self.has_plan:
                    yield Static(describe(self.prompt), id="comp-plan")
                else:
                    yield Static(plain(f"Cannot compensate: {self.prompt.refusal}", style="bold red"), id="comp-plan")
                # The result goes under the plan, in the same scroll (scrolled into view when it
                # arrives), so a long answer cannot push the buttons off a 24-row screen.
                yield Static("", id="comp-status")
            if self.has_plan:
                yield Input(placeholder="reason (required: high risk)" if self.reason_required
                            else "reason (optional)", id="comp-reason", max_length=2000)
            yield Static(HINT if self.has_plan else "Esc closes.", id="comp-hint")
            with Horizontal():
                yield Button("Cancel" if self.has_plan else "Close", id="cancel")
                if self.has_plan:
                    yield Button("Retry", id="retry", variant="warning")
                    yield Button("Compensate", id="confirm", variant="error")

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.height)

    def _fit(self, height: int) -> None:
        """Fit between the header and the footer: the plan scrolls in what the fixed parts leave.

        CSS cannot give an auto-height scroll "the rows its siblings leave", so it is set here.
        """
        # border 2, title 1, the plan's margin 1, reason input 3 + margin 1, hint 1 + margin 1, buttons 3
        fixed = 2 + 1 + 1 + (4 if self.has_plan else 0) + 2 + 3
        self.query_one(VerticalScroll).styles.max_height = max(3, min(height // 2, rows_between_chrome(height, fixed)))

    def on_mount(self) -> None:
        self._fit(self.app.size.height)
        if self.has_plan:
            self.query_one("#retry").display = False
            # Where a reason is required the cursor starts in it; otherwise on Compensate.
            self.query_one("#comp-reason" if self.reason_required else "#confirm").focus()
        else:
            self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id in ("confirm", "retry"):
            self.start(retry=event.button.id == "retry")
        else:
            self.action_close()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.query_one("#confirm", Button).display:
            self.start()
        elif self.query_one("#retry", Button).display:
            self.start(retry=True)

    def start(self, *, retry: bool = False) -> None:
        if self.running or not self.has_plan:
            return
        reason = self.query_one("#comp-reason", Input).value.strip()
        if self.reason_required and not reason:
            # Said under the reason box (always in view), not in the plan's scroll like a result.
            # One line at 80 columns: the buttons below keep their rows.
            self.query_one("#comp-hint", Static).update(Text(
                "A reason is required (high risk, as to approve it). Type it, then Enter.", style="bold red"))
            self.query_one("#comp-reason", Input).focus()
            return
        self.query_one("#comp-hint", Static).update(HINT)  # a "reason required" said before is answered
        self.reason = reason
        self.running = True
        self.attempted = True
        for bid in ("confirm", "retry"):
            self.query_one(f"#{bid}", Button).disabled = True
        self._status(Text("Recording the attempt, then calling the system…", style="bold"))
        self.run_compensation(retry)

    def _status(self, text: Text) -> None:
        status = self.query_one("#comp-status", Static)
        status.update(text)
        status.add_class("shown")
        scroll = self.query_one(VerticalScroll)
        # Once laid out, its first line (what happened) at the top of the view, the answer's body
        # below it: at 80x24 scrolling to the end showed only the body's last lines.
        self.call_after_refresh(lambda: scroll.scroll_to_widget(status, animate=False, top=True))

    def run_compensation(self, retry: bool) -> None:
        deck, prompt = self.app.deck, self.prompt  # type: ignore[attr-defined]
        reason = self.reason
        run_off_ui(self, "compensation", lambda: deck.compensate(prompt, retry=retry, reason=reason), self.finished,
                   on_error=self._failed, action=True)

    def _failed(self, message: str) -> None:
        self.finished(ActionResult(False, message, "error", detail={"retryable": True}))

    def finished(self, result: ActionResult) -> None:
        self.running = False
        if result.changed:
            self.app.store_written()  # type: ignore[attr-defined]
        if not self.is_mounted:
            return
        status = self._status
        confirm = self.query_one("#confirm", Button)
        retry = self.query_one("#retry", Button)
        body = result.detail.get("body")
        if result.ok:
            text = Text(result.message, style="bold green")
            text.append("\n")
            text.append_text(plain(_pretty(body), 600))
            status(text)
            confirm.display = retry.display = False
        elif not result.detail.get("retryable"):
            status(plain(result.message, style="bold red"))
            confirm.display = retry.display = False
        else:
            text = plain(result.message, 500, style="bold red")
            if body is not None:
                text.append("\n")
                text.append_text(plain(_pretty(body), 600))
            status(text)
            confirm.display = False
            retry.display = True
            retry.disabled = False
            retry.focus()
        self.query_one("#comp-hint", Static).update("Esc closes.")
        self.query_one("#cancel", Button).label = "Close"

    def action_close(self) -> None:
        if self.running:
            return  # the attempt is being recorded and run: closing now would hide its result
        self.dismiss(self.attempted)
