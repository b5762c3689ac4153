"""Evidence packets as Markdown: for a person first, with the machine-readable packet at the end.

The document opens with a plain summary (who, what, when, the outcome
including any compensation) and a numbered timeline; JSON appears only where
a reader needs the raw detail (tool inputs and outputs, action parameters).

Everything in it that came from a trace is untrusted and is written as text,
never as Markdown or HTML: ``md()`` escapes Markdown punctuation, writes
``<``/``>`` as entities (no raw ``<script>``, ``<img onerror>``, comments or
autolinks), and shows control and bidi characters as visible escapes. JSON
blocks escape backticks, ``<`` and ``>`` as ``\\u`` escapes (the same JSON
value), so nothing can close a fence or forge the packet's markers.

The machine-readable packet sits between two marker lines; ``embedded_json``
finds them as whole lines (marker line, then a json fence), so a marker
inside a task id or a reason can never be taken for the real one.

Markdown packets written by earlier renderers stay verifiable: ``renders_as``
also tries them (``_render_v2`` with the ``_V2`` and ``_V1`` styles).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, UTC
from typing import Any

from agentdeck.console.safe import clean

BEGIN = "<!-- agentdeck-evidence:begin -->"
END = "<!-- agentdeck-evidence:end -->"

# The Markdown renderer before control and bidi characters were made visible: kept only to verify old packets.
_V1_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Characters worth a second look in JSON text: everything but printable ASCII and newline.
_NOT_PLAIN_ASCII = re.compile(r"[^\x20-\x7e\n]")
# Markdown punctuation that could start emphasis, code, links, images, tables, strikethrough or an escape.
# ``_`` only where it can open or close emphasis (not inside a word like ``update_record``).
_MD_SPECIAL = re.compile(r"[\\`*\[\]!|~{}&]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_ENTITIES = {"<": "&lt;", ">": "&gt;"}


class NotAPacket(ValueError):
    """The text has no machine-readable packet between well-formed markers."""


def md(value: Any) -> str:
    """Untrusted value → Markdown that displays exactly that text (one line)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = _MD_SPECIAL.sub(lambda m: "\\" + m.group(), text)
    text = text.replace("<", _ENTITIES["<"]).replace(">", _ENTITIES[">"])
    return clean(text.replace("\r\n", "\n").replace("\n", " ⏎ "))


def _json_escape_unsafe(match: re.Match[str]) -> str:
    ch = match.group()
    return ch if clean(ch) == ch else f"\\u{ord(ch):04x}"


def _json_visible(text: str) -> str:
    """JSON text with every character ``console.safe`` would not show as-is written as a JSON \\u escape."""
    return _NOT_PLAIN_ASCII.sub(_json_escape_unsafe, text)


def _json_text(value: Any, indent: int | None = 2) -> str:
    # Backticks, < and > only occur inside JSON strings here: their escapes mean the same characters.
    text = _json_visible(json.dumps(value, indent=indent, ensure_ascii=False, sort_keys=True))
    return text.replace("`", "\\u0060").replace("<", "\\u003c").replace(">", "\\u003e")


def block(value: Any) -> list[str]:
    return ["```json", *_json_text(value).splitlines(), "```"]


def _when(iso: Any) -> str:
    """``2026-11-24T09:00:55.286Z`` → ``2026-11-24 09:00:55Z`` (packets hold ISO times)."""
    if not isinstance(iso, str):
        return "unknown"
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except ValueError:
        return md(iso)


def _agent(packet: dict) -> str:
    v = packet["checklist"].get("agent_version") or {}
    name = v.get("agent") or packet["task"].get("agent") or "an unnamed agent"
    version = v.get("id")
    extra = [f"{k} {v[k]}" for k in sorted(v) if k not in ("agent", "id", "cohort", "stage") and v[k] is not None]
    out = f"{md(name)}" + (f" version {md(version)}" if version is not None else " (version not reported)")
    if extra:
        out += f" ({md(', '.join(str(x) for x in extra))})"
    where = [f"cohort {md(v['cohort'])}" if v.get("cohort") else "", f"stage {md(v['stage'])}" if v.get("stage") else ""]
    where = [w for w in where if w]
    return out + (f", {', '.join(where)}" if where else "")


def _amount(value: Any) -> str:
    return f" (amount {md(value)})" if value is not None else ""


def _summary(packet: dict) -> list[str]:
    t, c = packet["task"], packet["checklist"]
    people = [f"{md(d['decided_by'])} ({md(d['decision'])} {md(d['escalation_id'])})"
              for d in packet["human_decisions"] if d.get("decided_by")]
    actions = [f"{md(a['operation'])} on {md(a['system'])}{_amount(a.get('amount'))} → {md(a['status'])}"
               for a in c["actions"]]
    out = ["## Summary", "",
           f"- **Who:** agent {_agent(packet)}" + (f"; decided by {', '.join(people)}" if people else ""),
           f"- **What:** {md(c['request']['text']) or '(no request text)'} (request {md(c['request']['request_id'])})",
           f"- **Actions:** {'; '.join(actions) if actions else 'none'}",
           f"- **When:** {_when(t['started'])} to {_when(t['ended'])}",
           f"- **Outcome:** {md(t['outcome'])}"]
    if t.get("reported_outcome") not in (None, t["outcome"]):
        out[-1] += f" (the agent reported {md(t['reported_outcome'])})"
    if t.get("compensation"):
        out[-1] += f"; {md(t['compensation'])}"
    out += [f"- **Exported:** {_when(packet['generated_at'])} by {md(packet['generated_by'])}; "
            f"{packet['redactions']} secrets redacted", ""]
    return out


def _timeline(packet: dict) -> list[str]:
    out = ["## Timeline", ""]
    steps = packet.get("timeline") or []
    day = _when(packet["task"].get("started")).split(" ")[0]
    for n, s in enumerate(steps, 1):
        at = _when(s.get("ts")) if s.get("ts") else "--:--:--"
        if at.startswith(day + " "):  # the date only when it is not the task's first day
            at = at.split(" ")[-1]
        seq = f"seq {s['seq']}" if s.get("seq") is not None else "gap"
        out.append(f"{n}. {at} ({seq}) {md(s.get('title', ''))}")
    if not steps:
        out.append("(no events)")
    return out + [""]


def _plan(plan: dict | None) -> list[str]:
    if not plan:
        return ["(no plan event)"]
    out = [f"Summary: {md(plan.get('summary'))}", ""] if plan.get("summary") else []
    steps = plan.get("steps") or []
    if isinstance(steps, list) and all(isinstance(s, str) for s in steps):
        return out + [f"{i}. {md(s)}" for i, s in enumerate(steps, 1)]
    return out + block(steps)


def render_md(packet: dict) -> str:
    c, t = packet["checklist"], packet["task"]
    out = [f"# Evidence packet: {md(t['task_id'])}", ""]
    out += _summary(packet) + _timeline(packet)
    if packet["missing"] or packet["gaps"]:
        out += ["## Missing", ""] + [f"- {md(m)}" for m in packet["missing"]]
        out += [f"- seqs {g['missing_from']}–{g['missing_to']} never arrived" for g in packet["gaps"]] + [""]
    out += ["## Human decisions", ""]
    out += [f"- {md(d['escalation_id'])} ({md(d['risk'])} risk): {md(d['decision'])} by {md(d['decided_by'])}"
            f" at {_when(d['decided_at'])}" + (f" — {md(d['decision_reason'])}" if d.get("decision_reason") else "")
            for d in packet["human_decisions"]] or ["(none)"]
    out += ["", "## Plan", ""] + _plan(c["plan_summary"]) + [""]
    out += ["## Applied policies", ""]
    out += [f"- {md(p['policy_id'])}@{md(p['policy_version'])}: {md(p['verdict'])} — {md(p['reason'])}"
            for p in c["applied_policies"]] or ["(none)"]
    out += ["", "## Justification", ""] + ([f"- {md(j['about'])}: {md(j['text'])}" for j in c["justification"]]
                                           or ["(none)"]) + [""]
    out += ["## Compensations", ""]
    for ref in c["compensation_reference"]:
        hook = ref.get("hook") or {}
        how = (f"handler {md(hook.get('handler'))}" if hook.get("type") == "handler"
               else f"{md(hook.get('method'))} {md(hook.get('url'))}" if hook else "no compensation hook declared")
        state = (f"undone by {md(ref['compensated_by'])} at {_when(ref['compensated_at'])} ({md(ref['status'])})"
                 if ref.get("compensated_at") else f"not undone ({md(ref['status'])})" if ref.get("status")
                 else "not undone")
        out.append(f"- {md(ref['action_id'])}: {state}; undo: {how}")
    for a in packet["compensations"]["by_console"]:
        out.append(f"- console attempt {a['attempt']} on {md(a['action_id'])} by {md(a['requested_by'])} at "
                   f"{_when(a['requested_at'])}: {md(a['status'])}" + (f" — {md(a['error'])}" if a.get("error") else ""))
    if not c["compensation_reference"] and not packet["compensations"]["by_console"]:
        out.append("(none)")
    out += ["", "## Raw detail", ""]
    for call in c["tool_calls"]:
        out += [f"### Tool call {md(call['tool'])} ({md(call['call_id'])})", ""] + block(call) + [""]
    for a in c["actions"]:
        out += [f"### Action {md(a['operation'])} on {md(a['system'])} ({md(a['action_id'])})", ""] + block(a) + [""]
    if packet["compensations"]["by_agents"]:
        out += ["### Compensations reported by the agent", ""] + block(packet["compensations"]["by_agents"]) + [""]
    out += ["## Audit records", ""]
    out += [f"- #{a['id']} {_when(a['ts'])} {md(a['actor'])} {md(a['kind'])} {md(a['subject'])}"
            for a in packet["audit_records"]] or ["(none)"]
    anchor = packet.get("anchor") or {}
    out += ["", "## Checking this packet", "",
            f"- Digest (sha256 of the canonical packet): `{md(packet['digest']['value'])}`",
            f"- Audit chain head at export: record {md(packet['audit_head']['id'])} `{md(packet['audit_head']['hash'])}`",
            f"- Signed with audit key {md(anchor.get('key_id'))}" if anchor else "- Not signed",
            "- Check it with `agentdeck verify --packet FILE`.", "",
            BEGIN, "```json", _json_text(packet, indent=1), "```", END, ""]
    return "\n".join(out)


# ---- the renderer before the summary and timeline (kept to verify the packets it wrote) ---------


def _v1_md(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return _V1_CONTROL.sub("\ufffd", text).replace("\n", " ⏎ ")


def _v1_block(value: Any) -> list[str]:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    text = _V1_CONTROL.sub("\ufffd", text).replace("```", "`\u200b``")
    return ["```json", *text.splitlines(), "```"]


def _v2_md(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return clean(text.replace("\n", " ⏎ "))


def _v2_block(value: Any) -> list[str]:
    text = _json_visible(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)).replace("`", "\\u0060")
    return ["```json", *text.splitlines(), "```"]


@dataclass(frozen=True)
class _Style:
    md: Callable[[Any], str]  # a value on a prose line
    block: Callable[[Any], list[str]]  # a value as a fenced JSON block
    ascii_embed: bool  # the machine-readable packet at the end


_V2 = _Style(_v2_md, _v2_block, ascii_embed=True)
_V1 = _Style(_v1_md, _v1_block, ascii_embed=False)


def _render_v2(packet: dict, style: _Style) -> str:
    md, block = style.md, style.block
    c, t = packet["checklist"], packet["task"]
    out = [f"# Evidence packet: {md(t['task_id'])}", ""]
    out += [f"- Request: {md(c['request']['request_id'])} at {md(c['request']['timestamp'])}",
            f"- Request text: {md(c['request']['text'])}",
            f"- Agent: {md(c['agent_version'])}",
            f"- Outcome: {md(t['outcome'])}; steps: {t['steps']}",
            f"- Generated {md(packet['generated_at'])} by {md(packet['generated_by'])}",
            f"- Digest (sha256 of the canonical packet): `{packet['digest']['value']}`",
            f"- Audit chain head at export: record {packet['audit_head']['id']} `{packet['audit_head']['hash']}`",
            f"- Secrets redacted: {packet['redactions']}", ""]
    if packet["missing"] or packet["gaps"]:
        out += ["## Missing", ""] + [f"- {md(m)}" for m in packet["missing"]]
        out += [f"- seqs {g['missing_from']}–{g['missing_to']} never arrived" for g in packet["gaps"]] + [""]
    out += ["## Plan", ""] + (block(c["plan_summary"]) if c["plan_summary"] else ["(none)"]) + [""]
    out += ["## Tool calls", ""]
    for call in c["tool_calls"]:
        out += [f"### {md(call['tool'])} ({md(call['call_id'])})", ""] + block(call) + [""]
    out += ["## Applied policies", ""]
    out += [f"- {md(p['policy_id'])}@{md(p['policy_version'])}: {md(p['verdict'])} — {md(p['reason'])}"
            for p in c["applied_policies"]] + [""]
    out += ["## Human decisions", ""]
    for d in packet["human_decisions"]:
        out += [f"- {md(d['escalation_id'])} ({md(d['risk'])}): {md(d['decision'])} by {md(d['decided_by'])}"
                f" at {md(d['decided_at'])} — {md(d['decision_reason'])}"]
    out += ["", "## Justification", ""] + [f"- {md(j['about'])}: {md(j['text'])}" for j in c["justification"]] + [""]
    out += ["## Actions", ""]
    for a in c["actions"]:
        out += [f"### {md(a['operation'])} on {md(a['system'])} ({md(a['action_id'])})", ""] + block(a) + [""]
    out += ["## Compensations", ""] + block({"reference": c["compensation_reference"], **packet["compensations"]}) + [""]
    out += ["## Audit records", ""]
    out += [f"- #{a['id']} {md(a['ts'])} {md(a['actor'])} {md(a['kind'])} {md(a['subject'])}" for a in packet["audit_records"]]
    out += ["", "## Machine-readable packet", "", "Check it with `agentdeck verify --packet FILE`.", "", BEGIN, "```json",
            json.dumps(packet, sort_keys=True, indent=1, ensure_ascii=style.ascii_embed), "```", END, ""]
    return "\n".join(out)


def renders_as(packet: dict, text: str) -> bool:
    """Does the packet render to exactly this Markdown (with the current renderer, or one before it)?"""
    renderers: list[Callable[[dict], str]] = [render_md, lambda p: _render_v2(p, _V2), lambda p: _render_v2(p, _V1)]
    for render in renderers:
        try:
            if render(packet) == text:
                return True
        except (KeyError, TypeError, AttributeError, IndexError, ValueError):
            continue  # its digest matches, yet it is not the shape this renderer draws
    return False


def embedded_json(text: str) -> str:
    """The machine-readable packet inside a Markdown packet: between a BEGIN line + json fence and a fence + END line."""
    lines = text.split("\n")
    for i in range(len(lines) - 1, -1, -1):  # the real block is the last one: the document ends with it
        if lines[i] == BEGIN and i + 1 < len(lines) and lines[i + 1] == "```json":
            for j in range(i + 2, len(lines) - 1):
                if lines[j] == "```" and lines[j + 1] == END:
                    return "\n".join(lines[i + 2 : j])
            raise NotAPacket("its machine-readable block is not closed (the end marker is missing): cut short?")
    raise NotAPacket("no machine-readable block")
