"""The Replay detail pane: one step, its JSON foldable, its human and undo context.

Payloads come from traces: every label is built with ``console.safe.plain``
(never markup), and a payload is shown within a budget (nodes, children per
node, characters per value) so a multi-megabyte tool output cannot freeze
the screen — what was left out is said, not hidden.
"""

from __future__ import annotations

import json
from datetime import datetime, UTC
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from agentdeck.console.safe import plain
from agentdeck.console.service.views import Reconstruction, ReplayView, Step, mask

MAX_NODES = 400
MAX_CHILDREN = 60
MAX_VALUE = 300
OPEN_DEPTH = 2


def when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:23] + "Z"


def _scalar(value: Any) -> Text:
    if isinstance(value, str):
        text = plain(json.dumps(value, ensure_ascii=False)[1:-1], MAX_VALUE, single_line=True, style="green")
        if len(value) > MAX_VALUE:
            text.append(f"  ({len(value):,} chars)", "dim")
        return text
    if value is None or isinstance(value, bool):
        return Text(json.dumps(value), style="italic magenta")
    return Text(repr(value) if isinstance(value, float) else str(value), style="cyan")


class _Budget:
    def __init__(self, nodes: int) -> None:
        self.left = nodes
        self.cut = False


def add_json(node: TreeNode, key: str | None, value: Any, budget: _Budget, depth: int = 0) -> None:
    """Add ``value`` under ``node`` as foldable JSON, within ``budget``."""
    if budget.left <= 0:
        budget.cut = True
        return
    budget.left -= 1
    label = plain(key, 80, single_line=True, style="bold") if key is not None else Text()
    if isinstance(value, (dict, list)):
        items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
        brace = "{…}" if isinstance(value, dict) else "[…]"
        if key is not None:
            label.append(" ")
        label.append(f"{brace} {len(items)}", "dim")
        child = node.add(label, expand=depth < OPEN_DEPTH)
        for k, v in items[:MAX_CHILDREN]:
            add_json(child, str(k), v, budget, depth + 1)
            if budget.left <= 0:
                break
        if len(items) > MAX_CHILDREN:
            child.add_leaf(Text(f"… {len(items) - MAX_CHILDREN:,} more not shown", style="dim italic"))
        return
    if key is not None:
        label.append(": ")
    label.append_text(_scalar(value))
    node.add_leaf(label)


def changes(before: Any, after: Any) -> list[tuple[str, Any, Any]]:
    """What an action changed, key by key (whole values when they are not both objects)."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = list(dict.fromkeys([*before, *after]))
        return [(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]
    return [] if before == after else [("value", before, after)]


def _line(label: str, value: Any, limit: int = 200, style: str = "") -> Text:
    text = Text(f"{label}: ", style="bold")
    text.append_text(plain(value if value is not None else "—", limit, single_line=True, style=style))
    return text


def context_lines(step: Step, rec: Reconstruction) -> list[Text]:
    """What the store knows around this step: the human decision, the action's undo state."""
    out: list[Text] = []
    e = step.data if isinstance(step.data, dict) else {}
    if step.is_gap:
        out.append(Text(f"Events {e.get('missing_from')}–{e.get('missing_to')} of this task never reached the store "
                        "(lost, or still in transit). The path around them is shown as recorded.", style="red"))
    elif step.kind in ("escalation", "decision"):
        esc = next((x for x in rec.escalations if x.escalation_id == e.get("escalation_id")), None)
        if esc is not None:
            out.append(_line("Escalation", f"{esc.escalation_id} · risk {esc.risk} · policy {esc.policy_id or '—'}"))
            out.append(_line("Why", esc.reason))
            out.append(_line("Human decision", f"{esc.status} by {esc.decided_by or '—'} at {when(esc.decided_at)}",
                             style="bold yellow"))
            if esc.decision_reason:
                out.append(_line("Reason", esc.decision_reason))
            if esc.delivery:
                out.append(_line("Delivered", esc.delivery))
            for a in rec.audit:
                if a["subject"] == esc.escalation_id:
                    out.append(_line(f"Audit #{a['id']}", f"{a['kind']} by {a['actor']} at {when(a['ts'])}"))
    elif step.kind in ("tool_call", "tool_result"):
        out.extend(_tool_pairing(step, rec))
    elif step.kind == "policy_check":
        out.append(_line("Verdict", f"{e.get('verdict')} by {e.get('policy_id')}@{e.get('policy_version')}",
                         style="bold"))
        out.append(_line("Reason", e.get("reason") or "—"))
    elif step.kind == "action":
        act = rec.action(e.get("action_id", ""))
        if act is not None:
            out.append(_line("Action", f"{act.operation} on {act.system} · {act.status}"
                             + (f" · amount {act.amount:g}" if act.amount is not None else "")))
            # Whether it was undone (or can be) right under what it did: on an 80x24
            # terminal the step's pane shows only its first lines.
            if act.compensated_at is not None and act.compensation_status == "ok":
                out.append(_line("Compensated", f"by {act.compensated_by} at {when(act.compensated_at)}", style="bold red"))
            elif act.compensation:
                state = f" (last attempt {act.compensation_status})" if act.compensation_status else ""
                out.append(Text(f"Undo available{state}: press c to review and compensate", style="bold green"))
            else:
                out.append(Text("No compensation hook declared", style="dim"))
            out.append(_line("Justification", act.justification))
            for k, b, a in changes(mask(act.before), mask(act.after)):
                out.append(_line(f"Changed {k}", f"{json.dumps(b, default=str)} → {json.dumps(a, default=str)}"))
            resp = act.response or {}
            out.append(_line("Downstream", f"{resp.get('status')} {json.dumps(mask(resp.get('body')), default=str)}"))
            for c in rec.console_compensations:
                if c["action_id"] == act.action_id:
                    out.append(_line(f"Attempt {c['attempt']}", f"{c['status']} by {c['requested_by']} at "
                                     f"{when(c['requested_at'])} {c['error'] or ''}"))
    return out


PAIR_WINDOW = 50


def _tool_pairing(step: Step, rec: Reconstruction) -> list[Text]:
    """A tool call's results (or a result's call), looked for among nearby steps only: a
    10,000-step task must not be parsed whole to show one step."""
    e = step.data if isinstance(step.data, dict) else {}
    call_id = e.get("call_id")
    out: list[Text] = []
    if step.kind == "tool_call":
        window = rec.steps[step.index + 1 : step.index + 1 + PAIR_WINDOW]
        for other in window:
            d = other.data if other.kind == "tool_result" else None
            if isinstance(d, dict) and d.get("call_id") == call_id:
                retry = f" (retry {d['retry']})" if d.get("retry") else ""
                out.append(_line(f"Result seq {other.seq}", f"{d.get('status')} in {d.get('latency_ms', 0):g} ms{retry}"))
        if not out:
            out.append(Text("No result for this call in the next steps", style="yellow"))
    else:
        window = rec.steps[max(0, step.index - PAIR_WINDOW) : step.index]
        call = next((o for o in reversed(window) if o.kind == "tool_call" and isinstance(o.data, dict)
                     and o.data.get("call_id") == call_id), None)
        if call is not None:
            out.append(_line(f"Call seq {call.seq} input", json.dumps(mask(call.data.get("input")), default=str,
                                                                      ensure_ascii=False), limit=300))
        else:
            out.append(Text("The call for this result is not in the previous steps (see gaps)", style="yellow"))
    return out


class ReplayDetail(Vertical):
    DEFAULT_CSS = """
    ReplayDetail { padding: 0 1; }
    ReplayDetail #detail-head { height: auto; margin-bottom: 1; }
    ReplayDetail #detail-context { height: auto; margin-bottom: 1; }
    ReplayDetail Tree { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="detail-head")
        yield Static("", id="detail-context")
        tree: Tree[None] = Tree(Text("event"), id="detail-json")
        tree.show_root = False
        yield tree

    def show(self, step: Step | None, rec: Reconstruction | None, view: ReplayView | None = None) -> None:
        head = self.query_one("#detail-head", Static)
        context = self.query_one("#detail-context", Static)
        tree = self.query_one("#detail-json", Tree)
        tree.clear()
        if step is None or rec is None:
            head.update("")
            context.update("")
            return
        title = Text(f"#{step.index + 1}/{len(rec.steps)} ", style="dim")
        title.append(step.kind, style="bold")
        title.append(f"  seq {step.seq}  {when(step.ts)}\n", style="dim")
        title.append_text(plain(step.title, 500))
        head.update(title)
        lines = context_lines(step, rec)
        context.update(Text("\n").join(lines) if lines else "")
        context.display = bool(lines)  # no blank lines for nothing: an 80x24 pane has few to spare
        budget = _Budget(MAX_NODES)
        # What the tree shows is the step with secrets masked (the view caches it per step).
        shown = view.shown_data(step)[0] if view is not None else mask(step.data)
        data = shown if isinstance(shown, dict) else {"value": shown}
        for k, v in data.items():
            add_json(tree.root, k, v, budget)
        if budget.cut:
            tree.root.add_leaf(Text(f"… payload cut at {MAX_NODES} nodes (export the evidence packet for all of it)",
                                    style="dim italic"))
        tree.root.expand()
