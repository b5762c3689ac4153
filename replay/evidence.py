"""Proof-of-Action: an Evidence Packet for one task, and checking one.

A packet holds every item of the checklist (request id and time, agent
version, plan, tool calls with inputs and outputs, applied policies,
justification, action and downstream response, compensation reference), the
human decisions and compensations, and the audit records about the task —
with secrets redacted (``replay.redact``). It carries the audit chain head at
export time and a sha256 digest of its canonical JSON (sorted keys, no
spaces, UTF-8), so ``verify_packet`` can tell an untouched packet from an
edited one. A Markdown packet embeds the JSON packet and is checked by
re-rendering it: editing any line of it is caught too.

``export`` builds, writes and records (an ``evidence.export`` audit record)
in one transaction: no export without its record.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from replay.reconstruct import Reconstruction, reconstruct
from replay.redact import redact
from store import audit

FORMAT = "agentdeck-evidence/1"
FORMATS = ("json", "md", "scenario")
ENV_EVIDENCE_DIR = "AGENTDECK_EVIDENCE_DIR"
_BEGIN = "<!-- agentdeck-evidence:begin -->"
_END = "<!-- agentdeck-evidence:end -->"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class EvidenceError(Exception):
    """A packet cannot be built or read; the message says why."""


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def evidence_dir() -> Path:
    """Where the Replay screen writes packets: $AGENTDECK_EVIDENCE_DIR, else ./evidence."""
    return Path(os.environ.get(ENV_EVIDENCE_DIR) or "evidence")


def canonical(packet: dict) -> bytes:
    body = {k: v for k, v in packet.items() if k != "digest"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def digest(packet: dict) -> str:
    return hashlib.sha256(canonical(packet)).hexdigest()


def _hook_ref(hook: dict | None) -> dict | None:
    if not hook:
        return None
    if hook.get("type") == "handler":
        return {"type": "handler", "handler": hook.get("handler"), "idempotency_key": hook.get("idempotency_key")}
    return {"type": "http", "method": hook.get("method"), "url": hook.get("url"), "idempotency_key": hook.get("idempotency_key")}


def build_packet(r: Reconstruction, *, generated_by: str, generated_at: float, audit_head: dict) -> dict:
    start_step = next((s for s in r.steps if s.kind == "task_start"), None)
    missing = []
    checklist: dict[str, Any] = {
        "request": {
            "request_id": r.request_id,
            "timestamp": iso(start_step.ts if start_step else r.started),
            "text": r.request,
            "input": r.input,
        },
        "agent_version": {"agent": r.agent, **r.agent_version, "cohort": r.cohort, "stage": r.stage},
        "plan_summary": {"summary": r.plan.get("summary"), "steps": r.plan.get("steps", [])} if r.plan else None,
        "tool_calls": [
            {"call_id": t.call_id, "tool": t.tool, "seq": t.call_seq, "input": t.input,
             "results": [{"seq": x.get("seq"), "status": x.get("status"), "output": x.get("output"),
                          "latency_ms": x.get("latency_ms"), "retry": x.get("retry", 0)} for x in t.results]}
            for t in r.tool_calls
        ],
        "applied_policies": [
            {"seq": p.get("seq"), "policy_id": p.get("policy_id"), "policy_version": p.get("policy_version"),
             "verdict": p.get("verdict"), "reason": p.get("reason"), "subject": p.get("subject")}
            for p in r.policy_checks
        ],
        "justification": [
            {"about": a.action_id, "text": a.justification} for a in r.actions
        ] + [{"about": e.escalation_id, "text": e.justification} for e in r.escalations if e.justification],
        "actions": [
            {"action_id": a.action_id, "seq": a.seq, "timestamp": iso(a.ts), "system": a.system,
             "operation": a.operation, "params": a.params, "amount": a.amount, "status": a.status,
             "before": a.before, "after": a.after, "downstream_response": a.response}
            for a in r.actions
        ],
        "compensation_reference": [
            {"action_id": a.action_id, "hook": _hook_ref(a.compensation), "compensated_at": iso(a.compensated_at),
             "compensated_by": a.compensated_by, "status": a.compensation_status}
            for a in r.actions
        ],
    }
    labels = {"plan_summary": "no plan event", "tool_calls": "no tool calls", "applied_policies": "no policy checks",
              "actions": "no action was taken", "justification": "no justification given"}
    missing = [f"{k}: {why}" for k, why in labels.items() if not checklist[k]]
    if r.request_id is None:
        missing.append("request: the task_start event is missing")
    packet = {
        "format": FORMAT,
        "generated_at": iso(generated_at),
        "generated_by": generated_by,
        "task": {"task_id": r.task_id, "request_id": r.request_id, "agent": r.agent, "outcome": r.outcome,
                 "started": iso(r.started), "ended": iso(r.ended), "steps": len(r.steps)},
        "checklist": checklist,
        "human_decisions": [
            {"escalation_id": e.escalation_id, "risk": e.risk, "reason": e.reason, "policy_id": e.policy_id,
             "proposed_action": e.proposed_action, "deadline": iso(e.deadline), "decision": e.status,
             "decided_by": e.decided_by, "decided_at": iso(e.decided_at), "decision_reason": e.decision_reason,
             "delivery": e.delivery, "agent_received": e.agent_saw}
            for e in r.escalations
        ],
        "compensations": {
            "by_agents": r.trace_compensations,
            "by_console": [
                {k: c[k] for k in ("action_id", "attempt", "requested_by", "target", "idempotency_key", "status",
                                   "response_status", "error")}
                | {"requested_at": iso(c["requested_at"]), "finished_at": iso(c["finished_at"])}
                for c in r.console_compensations
            ],
        },
        "contract": r.contract,
        "gaps": [{"missing_from": a, "missing_to": b} for a, b in r.gaps],
        "missing": missing,
        "audit_records": [
            {"id": a["id"], "ts": iso(a["ts"]), "actor": a["actor"], "kind": a["kind"], "subject": a["subject"],
             "detail": a["detail"], "hash": a["hash"]}
            for a in r.audit
        ],
        "audit_head": audit_head,
    }
    packet, count = redact(packet)
    packet["redactions"] = count
    packet["digest"] = {"algorithm": "sha256", "value": digest(packet)}
    return packet


def scenario_lines(conn: sqlite3.Connection, task_id: str) -> tuple[list[str], int]:
    """The task's events as JSONL lines (seq order, secrets redacted): a regression scenario file."""
    lines, total = [], 0
    for (payload,) in conn.execute("SELECT payload FROM events WHERE task_id = ? ORDER BY seq, id", (task_id,)):
        try:
            event = json.loads(payload)
        except ValueError:
            continue
        event, n = redact(event)
        total += n
        lines.append(json.dumps(event, separators=(",", ":"), ensure_ascii=False))
    return lines, total


# ---- Markdown ---------------------------------------------------------------------------


def _md(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return _CONTROL.sub("�", text).replace("\n", " ⏎ ")


def _block(value: Any) -> list[str]:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    text = _CONTROL.sub("�", text).replace("```", "`\u200b``")
    return ["```json", *text.splitlines(), "```"]


def render_md(packet: dict) -> str:
    c, t = packet["checklist"], packet["task"]
    out = [f"# Evidence packet: {_md(t['task_id'])}", ""]
    out += [f"- Request: {_md(c['request']['request_id'])} at {_md(c['request']['timestamp'])}",
            f"- Request text: {_md(c['request']['text'])}",
            f"- Agent: {_md(c['agent_version'])}",
            f"- Outcome: {_md(t['outcome'])}; steps: {t['steps']}",
            f"- Generated {_md(packet['generated_at'])} by {_md(packet['generated_by'])}",
            f"- Digest (sha256 of the canonical packet): `{packet['digest']['value']}`",
            f"- Audit chain head at export: record {packet['audit_head']['id']} `{packet['audit_head']['hash']}`",
            f"- Secrets redacted: {packet['redactions']}", ""]
    if packet["missing"] or packet["gaps"]:
        out += ["## Missing", ""] + [f"- {_md(m)}" for m in packet["missing"]]
        out += [f"- seqs {g['missing_from']}–{g['missing_to']} never arrived" for g in packet["gaps"]] + [""]
    out += ["## Plan", ""] + (_block(c["plan_summary"]) if c["plan_summary"] else ["(none)"]) + [""]
    out += ["## Tool calls", ""]
    for call in c["tool_calls"]:
        out += [f"### {_md(call['tool'])} ({_md(call['call_id'])})", ""] + _block(call) + [""]
    out += ["## Applied policies", ""]
    out += [f"- {_md(p['policy_id'])}@{_md(p['policy_version'])}: {_md(p['verdict'])} — {_md(p['reason'])}"
            for p in c["applied_policies"]] + [""]
    out += ["## Human decisions", ""]
    for d in packet["human_decisions"]:
        out += [f"- {_md(d['escalation_id'])} ({_md(d['risk'])}): {_md(d['decision'])} by {_md(d['decided_by'])}"
                f" at {_md(d['decided_at'])} — {_md(d['decision_reason'])}"]
    out += ["", "## Justification", ""] + [f"- {_md(j['about'])}: {_md(j['text'])}" for j in c["justification"]] + [""]
    out += ["## Actions", ""]
    for a in c["actions"]:
        out += [f"### {_md(a['operation'])} on {_md(a['system'])} ({_md(a['action_id'])})", ""] + _block(a) + [""]
    out += ["## Compensations", ""] + _block({"reference": c["compensation_reference"], **packet["compensations"]}) + [""]
    out += ["## Audit records", ""]
    out += [f"- #{a['id']} {_md(a['ts'])} {_md(a['actor'])} {_md(a['kind'])} {_md(a['subject'])}" for a in packet["audit_records"]]
    out += ["", "## Machine-readable packet", "", "Check it with `agentdeck verify --packet FILE`.", "", _BEGIN, "```json",
            json.dumps(packet, sort_keys=True, indent=1, ensure_ascii=False), "```", _END, ""]
    return "\n".join(out)


def render(packet: dict, fmt: str) -> str:
    if fmt == "md":
        return render_md(packet)
    return json.dumps(packet, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# ---- export and verification ------------------------------------------------------------


def export(
    conn: sqlite3.Connection,
    task_or_request_id: str,
    *,
    fmt: str,
    out: Path | None,
    operator: str,
    now: float,
) -> tuple[str, dict]:
    """Build the packet (or scenario), write it to ``out`` (None: return it only), record the export.

    Returns (the text written, the audit detail). Raises ``EvidenceError`` for an unknown task or format.
    """
    if fmt not in FORMATS:
        raise EvidenceError(f"unknown format {fmt!r} (use one of {', '.join(FORMATS)})")
    conn.execute("BEGIN IMMEDIATE")  # a stable snapshot and audit head while we build and record
    try:
        r = reconstruct(conn, task_or_request_id)
        if r is None:
            raise EvidenceError(f"no task or request {task_or_request_id!r} in the store")
        if fmt == "scenario":
            lines, redactions = scenario_lines(conn, r.task_id)
            text = "".join(line + "\n" for line in lines)
            detail = {"format": fmt, "task_id": r.task_id, "events": len(lines), "redactions": redactions,
                      "sha256": hashlib.sha256(text.encode()).hexdigest()}
        else:
            packet = build_packet(r, generated_by=operator, generated_at=now, audit_head=audit.head(conn))
            text = render(packet, fmt)
            detail = {"format": fmt, "task_id": r.task_id, "digest": packet["digest"]["value"],
                      "audit_head": packet["audit_head"], "redactions": packet["redactions"]}
        detail["path"] = str(out) if out is not None else "-"
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, out)
        audit.append(conn, ts=now, actor=operator, kind="evidence.export", subject=r.task_id, detail=detail)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return text, detail


def load_packet(text: str) -> tuple[dict, str]:
    """Parse a JSON or Markdown packet → (packet, format). Raises EvidenceError."""
    fmt = "json"
    body = text
    if _BEGIN in text:
        fmt = "md"
        inner = text.split(_BEGIN, 1)[1].split(_END, 1)[0].strip()
        body = inner.removeprefix("```json").removesuffix("```")
    try:
        packet = json.loads(body)
    except ValueError as exc:
        raise EvidenceError(f"not an evidence packet: {exc}") from None
    if not isinstance(packet, dict) or packet.get("format") != FORMAT:
        raise EvidenceError(f"not an evidence packet (expected format {FORMAT})")
    return packet, fmt


@dataclass(frozen=True)
class PacketCheck:
    integrity: list[str]  # the packet was changed after export
    provenance: list[str]  # the packet's export cannot be confirmed by this store

    @property
    def ok(self) -> bool:
        return not self.integrity and not self.provenance


def check_packet(text: str, conn: sqlite3.Connection | None = None) -> PacketCheck:
    """Is the packet untouched (digest, and for Markdown its text)? With a store: was it exported from it?"""
    packet, fmt = load_packet(text)
    integrity: list[str] = []
    provenance: list[str] = []
    recorded = (packet.get("digest") or {}).get("value")
    if recorded != digest(packet):
        integrity.append("the packet's content does not match its sha256 digest (edited)")
    elif fmt == "md" and render_md(packet) != text:
        integrity.append("the Markdown text differs from the packet it embeds (edited)")
    if conn is not None:
        head = packet.get("audit_head") or {}
        try:
            head_id = int(head.get("id", -1))
        except (TypeError, ValueError):
            head_id = -1
        if not audit.contains(conn, head_id, str(head.get("hash", ""))):
            provenance.append(f"the audit record {head.get('id')} the packet was exported at is not in this store's trail")
        exported = conn.execute(
            "SELECT 1 FROM audit WHERE kind = 'evidence.export' AND json_extract(detail, '$.digest') = ? LIMIT 1",
            (recorded,),
        ).fetchone()
        if exported is None:
            provenance.append("this store has no export record for this packet")
    return PacketCheck(integrity, provenance)


def verify_packet(text: str, conn: sqlite3.Connection | None = None) -> list[str]:
    """All problems with a packet (empty: untampered and, with a store, exported from it)."""
    check = check_packet(text, conn)
    return check.integrity + check.provenance
