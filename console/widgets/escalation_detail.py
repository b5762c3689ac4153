"""Everything an approver needs to decide one escalation, in one scrollable pane."""

from __future__ import annotations

import json

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from agentdeck.console.safe import clean, plain, same_text
from agentdeck.console.widgets.escalation_format import (
    DELIVERY_STYLE, append_decision, label, RISK_STYLE, action_label, amount_label, duration, proposed, stamp, time_left,
)
from agentdeck.console.service.views import EscalationView

def render(view: EscalationView | None, now: float, on_expiry: str = "deny") -> Text:
    """The pane's content. Every trace-sourced string passes through clean()/plain()."""
    parts = [p for p in render_parts(view, now, on_expiry) if p is not None]
    text = parts[0].copy()
    for part in parts[1:]:
        text.append("\n")
        text.append_text(part)
    return text


def render_parts(view: EscalationView | None, now: float,
                 on_expiry: str = "deny") -> tuple[Text | None, Text | None, Text]:
    """The pane's content in three, joined by newlines: the lines above the clock's (a release item's
    id, what it asks and its stage; None for other panes), the lines that move with the clock (deadline and age;
    None when there are none), and the rest, which stays the same from one second to the next (the pane redraws
    a part only when it changes: the rest can be long, and re-wrapping it was a good part of drawing a switch to
    Escalations)."""
    if view is None:
        return None, None, Text("No escalation selected.", style="dim")
    r = view.row
    if view.release is not None:  # a promotion or roll back item: its own pane
        from agentdeck.console.widgets.release_detail import render_release_parts

        return render_release_parts(view, now)
    head = Text()
    head.append_text(plain(r["escalation_id"], 80, style="bold", single_line=True))
    head.append("  ")
    head.append_text(plain(f"{r['risk']} risk".upper(), 30, style=RISK_STYLE.get(r["risk"], ""), single_line=True))
    head.append("\n")
    left, expired = time_left(r["deadline"], now)
    label(head, "Deadline")
    head.append(stamp(r["deadline"]))
    head.append(f"  ({left})", "bold magenta" if expired else "")
    head.append("\n")
    label(head, "Raised")
    head.append(f"{stamp(r['ts'])}  ({duration(now - r['ts'])} ago)")
    t = Text()
    label(t, "Task")
    t.append_text(plain(r["task_id"], 60, single_line=True))
    if view.task is not None:
        t.append("  ")
        t.append_text(plain(f"{view.task.get('agent') or '?'} {view.task.get('version') or ''}", 50, style="dim",
                            single_line=True))
    t.append("\n")
    if view.task is not None and view.task.get("request"):
        label(t, "Request")
        t.append_text(plain(view.task["request"], 400))
        t.append("\n")

    action = proposed(r["proposed_action"])
    t.append("\n")
    label(t, "Proposes")
    t.append_text(plain(action_label(action), 120, style="bold", single_line=True))
    if amount_label(action):
        t.append(f"  amount {amount_label(action)}")
    t.append("\n")
    params = action.get("params")
    if isinstance(params, dict) and params:
        for key, value in list(params.items())[:30]:
            t.append("  ")
            t.append_text(plain(key, 40, style="cyan", single_line=True))
            t.append(": ")
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
            t.append_text(plain(shown, 300))
            t.append("\n")
    label(t, "Reason")
    t.append_text(plain(r["reason"] or "", 2000))
    t.append("\n")
    label(t, "Policy")
    t.append_text(plain(r["policy_id"] or "(none given)", 120, single_line=True))
    t.append("\n")
    label(t, "Justification")
    t.append("\n  ")
    t.append_text(plain(r["justification"] or "(none given)", 4000))
    t.append("\n")
    label(t, "Callback")
    url = r.get("callback_url")
    if not url:
        nobody = view.reach is not None and view.reach.orphaned  # no outbox either: "outbox only" would mislead
        t.append("none" if nobody else "none (outbox only)", "dim")
    else:
        why = view.callback_problem
        t.append_text(plain(url, 200, single_line=True))
        t.append("  ")
        t.append("allowed" if why is None else f"blocked: {clean(why, 120, single_line=True)}",
                 "green" if why is None else "magenta")
    t.append("\n")
    if r["status"] == "pending" and view.reach is not None:
        label(t, "Decision goes")
        t.append("ORPHANED  " if view.reach.orphaned else "", "bold magenta")
        t.append_text(plain(view.reach.sentence, 600, style="magenta" if view.reach.orphaned else ""))
        t.append("\n")

    if r["status"] != "pending":
        append_decision(t, r)
        label(t, "Delivery")
        delivery = r.get("delivery")
        if delivery is None:
            t.append("reported by the agent (decided outside this console)", "dim")
        else:
            t.append(delivery, DELIVERY_STYLE.get(delivery, ""))
            if r.get("delivery_attempts"):
                t.append(f"  ({r['delivery_attempts']} callback attempt{'s' if r['delivery_attempts'] != 1 else ''})")
            if r.get("delivery_error"):
                t.append("\n  ")
                t.append_text(plain(r["delivery_error"], 400))
            if r.get("idempotency_key"):
                t.append(f"\n  key {r['idempotency_key']}", "dim")
        t.append("\n")
    elif expired and on_expiry == "keep":
        t.append("\nPast its deadline; expiry policy keep: your decision still applies.\n", "bold magenta")
    elif expired:
        t.append(f"\nPast its deadline: the expiry policy ({on_expiry}) decides it.\n", "bold magenta")

    t.append("\n")
    t.append(f"Steps so far ({len(view.steps) + view.more_steps})\n", "bold")
    for seq, kind, summary in view.steps:
        t.append(f"{seq:>4} ", "dim")
        t.append(f"{kind:<13}", "cyan")
        t.append_text(plain(summary, 90, single_line=True))
        t.append("\n")
    if view.more_steps:
        t.append(f"  … {view.more_steps} more (open in Replay with o)\n", "dim")
    return None, head, t


class EscalationDetail(VerticalScroll):
    """Scrollable detail of the selected escalation."""

    _shown: tuple[Text | None, ...] = (None, None, None)  # (top, head, body) as shown now
    PARTS = ("top", "head", "body")

    def compose(self) -> ComposeResult:
        yield Static("", id="esc-detail-top").set_styles("display: none;")
        yield Static("", id="esc-detail-head").set_styles("display: none;")
        yield Static(Text("No escalation selected.", style="dim"), id="esc-detail-body")

    def show(self, view: EscalationView | None, now: float, on_expiry: str) -> None:
        """Show ``view``; a part that would draw as it does now is left alone (not laid out and drawn again)."""
        parts = render_parts(view, now, on_expiry)
        shown, self._shown = self._shown, parts
        for name, part, before in zip(self.PARTS, parts, shown):
            if same_text(part, before):
                continue
            widget = self.query_one(f"#esc-detail-{name}", Static)
            if part is not None:
                widget.update(part)
            if name != "body":
                widget.display = part is not None
