"""Escalations: the queue of agents waiting for a human, and the decisions on it.

Pending escalations are listed soonest deadline first (then highest risk);
``h`` switches to the decided ones with their delivery state; ``r`` opens the
task in Replay, ``R`` retries a failed delivery. ``a``/``d``
approve or deny the selected escalation after asking for a reason (required
to deny and to approve high or critical risk). One worker records the
decision (first decision wins, audited), delivers it to the agent and reads
the queue back (``DeckService.decide``): one trip from the key to the result.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual import events
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from agentdeck.console.keymap import REPLAY, retry
from agentdeck.console.safe import clean, plain
from agentdeck.console.screens.base import DeckScreen, run_off_ui
from agentdeck.console.service.views import ActionResult, EscalationQueue, EscalationView, reason_required
from agentdeck.console.widgets.escalation_detail import EscalationDetail
from agentdeck.console.widgets.escalation_format import RISK_STYLE, action_label, amount_label, clock, proposed, time_left
from agentdeck.console.widgets.escalation_table import EscalationTable
from agentdeck.console.widgets.reason_dialog import ReasonDialog

NARROW = 120  # columns: below this the detail pane sits under the list, not beside it


class EscalationsScreen(DeckScreen):
    MODE = "escalations"
    READ_AHEAD = True  # a switch here reads first and shows the screen once (SwitchAhead)
    CSS_PATH = "escalations.tcss"
    BINDINGS = [
        Binding("a", "decide('approve')", "Approve"),
        Binding("d", "decide('deny')", "Deny"),
        Binding("h", "toggle_history", "Pending/decided"),
        REPLAY,
        retry("Retry delivering the selected decision (failed, or blocked before the host was allowed)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.history = False
        self.rows: dict[str, dict] = {}
        self.view: EscalationView | None = None
        self.reach: dict = {}  # escalation id -> Reach (where its decision goes), from the last queue read
        self._shown_version = -1

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="esc-body"):
            with Vertical(id="esc-list"):
                yield Static("", id="esc-title")
                yield EscalationTable(id="esc-table")
            yield EscalationDetail(id="esc-detail")
        yield Static("", id="esc-status")

    def on_resize(self, event: events.Resize) -> None:
        # Under NARROW columns the detail goes below the list (escalations.tcss), so the
        # list keeps its columns instead of shrinking to time left and risk.
        self.set_class(event.size.width < NARROW, "narrow")

    def on_mount(self) -> None:
        super().on_mount()
        self.set_class(self.app.size.width < NARROW, "narrow")
        self._show_status()
        self.query_one(EscalationTable).focus()
        if self.app.tick:
            # Time left and age move even when no trace arrives.
            self.set_interval(max(self.app.tick, 1.0) * 5, self._clock_tick)

    def _clock_tick(self) -> None:
        if self.is_current:
            self.reload()

    # --- loading ---------------------------------------------------------

    def reload(self) -> None:
        # One trip: the queue and the detail of the escalation under the cursor are read together (a queue
        # read answered, then a detail read, made two worker round trips per store change; under a fleet
        # committing ten times a second the screen was re-reading more often than it finished).
        history, deck, selected = self.history, self.deck, self.query_one(EscalationTable).selected_id()

        def job() -> tuple[EscalationQueue, EscalationView | None, str | None]:
            queue = deck.escalation_queue(history)
            return queue, deck.escalation(selected) if selected else None, selected

        self.read("esc-reload", job, self._show_read)

    def _show_read(self, read: tuple[EscalationQueue, EscalationView | None, str | None]) -> None:
        queue, view, read_for = read
        self._show_queue(queue, detail=(read_for, view))

    def _show_queue(self, queue: EscalationQueue, detail: tuple[str | None, EscalationView | None] | None = None) -> None:
        if queue.history != self.history:
            return  # toggled while loading; the newer reload will show
        self.reach = dict(queue.reach)
        self._show_rows(queue.rows, queue.history, queue.total, detail)

    def _show_rows(self, rows, history: bool, total: int,
                   detail: tuple[str | None, EscalationView | None] | None = None) -> None:
        now = self.app.now()
        self.rows = {r["escalation_id"]: dict(r) for r in rows}
        table = self.query_one(EscalationTable)
        table.show(rows, now, history=history, orphaned=self._orphaned())
        self._show_title(rows, now, total)
        selected = table.selected_id()
        if selected is not None and detail is not None and detail[0] == selected:
            self._show_detail(detail[1])  # read with the queue
        else:
            self.load_detail(selected)  # another escalation than the one read along (or none: nothing to read)

    def _show_title(self, rows, now: float, total: int) -> None:
        title = Text()
        if self.history:
            title.append(f"Decided — {total:,}" + (f", {len(rows)} most recent shown" if total > len(rows) else ""), "bold")
            title.append("   h: pending queue", "dim")
        else:
            expired = sum(1 for r in rows if r["deadline"] < now)
            title.append(f"Pending — {total:,}" + (f", first {len(rows)} shown" if total > len(rows) else ""), "bold")
            if expired:
                title.append(f" ({expired} past deadline)", "bold magenta")
            orphaned = len(self._orphaned())
            if orphaned:
                title.append(f" ({orphaned} orphaned, listed last)", "magenta")
            title.append("   soonest deadline first · h: decided", "dim")
        widget = self.query_one("#esc-title", Static)
        shown = widget.content
        if not (isinstance(shown, Text) and shown.plain == title.plain and shown.spans == title.spans):
            widget.update(title)  # (not again when the same: every tick and switch reads the queue)

    def _show_status(self) -> None:
        deck = self.deck
        hosts = ", ".join(sorted(deck.allow_hosts)) or "none"
        text = Text()
        text.append("approver ", "dim")
        text.append_text(plain(deck.operator, 40, style="bold", single_line=True))
        text.append("  ·  on expiry: ", "dim")
        text.append(deck.on_expiry, "bold")
        text.append("  ·  ", "dim")
        text.append_text(plain(deck.outbox_description, 70, single_line=True))
        text.append("  ·  callbacks allowed to: ", "dim")
        text.append_text(plain(hosts, 40, single_line=True))
        self.query_one("#esc-status", Static).update(text)

    def _orphaned(self) -> frozenset[str]:
        return frozenset(k for k, v in self.reach.items() if v.orphaned)

    @on(EscalationTable.Highlighted, "#esc-table")
    def _highlighted(self, event: EscalationTable.Highlighted) -> None:
        self.load_detail(event.escalation_id)

    def load_detail(self, escalation_id: str | None) -> None:
        if not escalation_id:
            # Nothing to read (an empty list). A detail read still out for a row that was under the cursor is
            # dropped: answering after this, it showed a decided escalation beside the emptied queue.
            self.supersede("esc-detail")
            self._show_detail(None)
            return
        deck = self.deck
        self.read("esc-detail", lambda: deck.escalation(escalation_id), self._show_detail, covers=False)

    def _show_detail(self, view: EscalationView | None) -> None:
        self.view = view
        self.query_one(EscalationDetail).show(view, self.app.now(), self.deck.on_expiry)

    # --- deciding --------------------------------------------------------

    def _selected(self) -> dict | None:
        escalation_id = self.query_one(EscalationTable).selected_id()
        return self.rows.get(escalation_id) if escalation_id is not None else None

    def action_decide(self, decision: str) -> None:
        row = self._selected()
        if row is None:
            self._tell("No escalation selected.", severity="warning")
            return
        if row["status"] != "pending":
            self._tell(self._already(row["escalation_id"], row["status"], row["decided_by"], row["decided_at"]),
                        severity="warning")
            return
        refused = self.deck.read_only_refusal(f"{'approving' if decision == 'approve' else 'denying'} "
                                              f"{clean(row['escalation_id'], 60, single_line=True)}")
        if refused is not None:  # --read-only: said at once, no dialog
            self._tell(refused.message, severity="warning", timeout=8)
            return
        if decision == "approve":
            # Approver rules and the two-person rule are read from the store (off the UI thread),
            # before anyone types a reason for an approval that would be refused.
            deck, escalation_id = self.deck, row["escalation_id"]
            run_off_ui(self, "esc-may-approve", lambda: deck.approval_refusal(escalation_id),
                       lambda refusal: self._ask(row, decision) if refusal is None else self._tell(
                           f"Not approved: {clean(refusal, 300)}", severity="warning", timeout=8))
            return
        self._ask(row, decision)

    def _ask(self, row: dict, decision: str) -> None:
        now = self.app.now()
        _, expired = time_left(row["deadline"], now)
        policy = self.deck.on_expiry
        note = ""
        if expired and policy != "keep":
            note = f"This escalation is past its deadline: the expiry policy ({policy}) will decide it, not you."
        elif expired:
            note = "This escalation is past its deadline (expiry policy: keep); your decision still applies."
        where = self.reach.get(row["escalation_id"])
        self.open_dialog(
            ReasonDialog(decision, row["escalation_id"], self._summary(row),
                         required=reason_required(decision, row["risk"]), note=note,
                         where=where.sentence if where is not None else "",
                         orphaned=where is not None and where.orphaned),
            lambda reason: self._record(row["escalation_id"], decision, reason),
            what=f"{decision.capitalize()} {clean(row['escalation_id'], 60, single_line=True)}",
            key="a" if decision == "approve" else "d",
        )

    @staticmethod
    def _summary(row: dict) -> Text:
        action = proposed(row["proposed_action"])
        text = Text()
        text.append_text(plain(row["risk"], 10, style=RISK_STYLE.get(row["risk"], ""), single_line=True))
        text.append(" risk · ")
        text.append_text(plain(action_label(action), 60, single_line=True))
        if amount_label(action):
            text.append(f" · amount {amount_label(action)}")
        text.append("\n")
        text.append_text(plain(row["reason"] or "", 300))
        return text

    def _record(self, escalation_id: str, decision: str, reason: str | None) -> None:
        if reason is None:
            self._tell("Cancelled: nothing recorded.")
            return
        self.write_decision(escalation_id, decision, reason)

    def write_decision(self, escalation_id: str, decision: str, reason: str) -> None:
        where = self.reach.get(escalation_id)
        then = " (orphaned: recording it; no agent is known to receive it)…" if where is not None and where.orphaned \
            else " and delivering…"
        self._tell(f"{'Approving' if decision == 'approve' else 'Denying'} "
                   f"{clean(escalation_id, 60, single_line=True)}{then}")
        deck, history = self.deck, self.history
        self.act("esc-decide", lambda: deck.decide(escalation_id, decision, reason, history), self._acted)

    def _acted(self, result: ActionResult) -> None:
        """The one result of a decision or a retry: say it, show the queue it read back."""
        self._tell(clean(result.message, 400), severity=result.severity, timeout=8 if result.severity != "information" else None)
        queue = result.detail.get("queue")
        if isinstance(queue, EscalationQueue) and queue.history == self.history and self.is_mounted:
            self._show_queue(queue)
        if result.changed:
            # The queue just shown is already the fresh one: skip the reload the change would start.
            self._shown_version = self.app.data_version + 1  # type: ignore[attr-defined]
            self.app.store_written()  # type: ignore[attr-defined]

    def _data_changed(self, version: int) -> None:
        if version != self._shown_version:
            super()._data_changed(version)

    def _already(self, escalation_id: str, status: str, by: str | None, at: float | None) -> str:
        who = clean(by or "the agent", 60, single_line=True)
        when = f" at {clock(at, self.app.now())} UTC" if at is not None else ""
        return f"{clean(escalation_id, 60, single_line=True)} was already {status} by {who}{when}."

    def _tell(self, message: str, *, severity: str = "information", timeout: float | None = None) -> None:
        # Messages quote escalation ids and reasons from traces: never parse them as markup.
        self.notify(message, severity=severity, timeout=timeout, markup=False)  # type: ignore[arg-type]

    # --- delivery and navigation ---------------------------------------------

    def action_retry(self) -> None:
        row = self._selected()
        if row is None:
            self._tell("No escalation selected.", severity="warning")
            return
        # A release item may also have a failed or blocked release hook call: the service says if there is none.
        if row.get("delivery") not in ("failed", "blocked") and row.get("kind") != "release":
            self._tell(f"Delivery is {row.get('delivery') or 'not ours'}: nothing to retry.", severity="warning")
            return
        self.retry_delivery(row["escalation_id"])

    def retry_delivery(self, escalation_id: str) -> None:
        self._tell(f"Retrying delivery of {clean(escalation_id, 60, single_line=True)}…")
        deck, history = self.deck, self.history
        self.act("esc-decide", lambda: deck.retry_delivery(escalation_id, history), self._acted)

    def action_toggle_history(self) -> None:
        self.history = not self.history
        self.reload()

    def action_replay(self) -> None:
        row = self._selected()
        if row is not None and row.get("kind") == "release":
            # A promotion or roll back item has no task to replay: its evidence is in the detail pane.
            self._tell("A release item has no task to replay: its verdict and suite result are in the detail; "
                       "the canary's tasks are on Canary (3).", severity="warning")
        elif row is not None:
            self.app.open_replay(row["task_id"])
