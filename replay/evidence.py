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

Packets are read by people in terminals and pagers, so no trace text reaches
a file as a raw control or bidi character: JSON and scenario files are
written ASCII-only (``\\uXXXX`` escapes, the same data once parsed, so the
digest is unchanged), and Markdown shows those characters as visible escapes
(the set ``console.safe`` uses). Markdown packets written before that are
still verified against the renderer that wrote them (``_LEGACY``).

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
from datetime import datetime, UTC
from pathlib import Path
from typing import Any, Literal
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from agentdeck.console.safe import clean
from agentdeck.replay.reconstruct import Reconstruction, reconstruct
from agentdeck.replay.redact import redact
from agentdeck.store import audit

FORMAT = "agentdeck-evidence/1"
FORMATS = ("json", "md", "scenario")
ENV_EVIDENCE_DIR = "AGENTDECK_EVIDENCE_DIR"
_BEGIN = "<!-- agentdeck-evidence:begin -->"
_END = "<!-- agentdeck-evidence:end -->"
# The Markdown renderer before control and bidi characters were made visible: kept only to verify old packets.
_LEGACY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Characters worth a second look in JSON text: everything but printable ASCII and newline.
_NOT_PLAIN_ASCII = re.compile(r"[^\x20-\x7e\n]")
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")
NAME_LIMIT = 60
SQLITE_MAX_INT = 2**63 - 1


class EvidenceError(Exception):
    """A packet cannot be built or read; the message says why."""


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def evidence_dir() -> Path:
    """Where the Replay screen writes packets: $AGENTDECK_EVIDENCE_DIR, else ./evidence."""
    return Path(os.environ.get(ENV_EVIDENCE_DIR) or "evidence")


def packet_filename(task_id: str, stamp: str, suffix: str = ".md") -> str:
    """A file name for a task's packet that cannot leave its folder, whatever the (untrusted) task id.

    Only ``[A-Za-z0-9._-]`` of the id is kept (other runs become ``_``, no leading dots, bounded
    length), so ``../`` cannot climb; a short hash of the full id keeps two ids that slug alike apart.
    """
    slug = _UNSAFE_IN_NAME.sub("_", task_id).lstrip(".")[:NAME_LIMIT] or "task"
    short = hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{slug}-{short}-{stamp}{suffix}"


def canonical(packet: dict) -> bytes:
    # surrogatepass: a lone surrogate (JSON "\ud800") hashes instead of raising; every valid string
    # encodes exactly as plain UTF-8, so digests of existing packets are unchanged.
    body = {k: v for k, v in packet.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8", "surrogatepass")


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
        lines.append(json.dumps(event, separators=(",", ":"), ensure_ascii=True))
    return lines, total


# ---- Markdown ---------------------------------------------------------------------------


def _json_escape_unsafe(match: re.Match[str]) -> str:
    ch = match.group()
    return ch if clean(ch) == ch else f"\\u{ord(ch):04x}"


def _json_visible(text: str) -> str:
    """JSON text with every character ``console.safe`` would not show as-is written as a JSON \\u escape.

    Readable accents and scripts stay; the result is still valid JSON for the same value. Such
    characters only occur inside JSON strings, where the escape means the same character.
    """
    return _NOT_PLAIN_ASCII.sub(_json_escape_unsafe, text)


def _md(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return clean(text.replace("\n", " ⏎ "))


def _block(value: Any) -> list[str]:
    # A backtick only occurs inside a JSON string here: its escape keeps a value from closing the fence.
    text = _json_visible(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)).replace("`", "\\u0060")
    return ["```json", *text.splitlines(), "```"]


def _legacy_md(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return _LEGACY_CONTROL.sub("\ufffd", text).replace("\n", " ⏎ ")


def _legacy_block(value: Any) -> list[str]:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    text = _LEGACY_CONTROL.sub("\ufffd", text).replace("```", "`\u200b``")
    return ["```json", *text.splitlines(), "```"]


@dataclass(frozen=True)
class _Style:
    md: Callable[[Any], str]  # a value on a prose line
    block: Callable[[Any], list[str]]  # a value as a fenced JSON block
    ascii_embed: bool  # the machine-readable packet at the end


_CURRENT = _Style(_md, _block, ascii_embed=True)
_LEGACY = _Style(_legacy_md, _legacy_block, ascii_embed=False)


def render_md(packet: dict, *, style: _Style = _CURRENT) -> str:
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
    out += ["", "## Machine-readable packet", "", "Check it with `agentdeck verify --packet FILE`.", "", _BEGIN, "```json",
            json.dumps(packet, sort_keys=True, indent=1, ensure_ascii=style.ascii_embed), "```", _END, ""]
    return "\n".join(out)


def render(packet: dict, fmt: str) -> str:
    if fmt == "md":
        return render_md(packet)
    return json.dumps(packet, sort_keys=True, indent=2, ensure_ascii=True) + "\n"


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


class _Digest(BaseModel):
    algorithm: Literal["sha256"]
    value: StrictStr


class _AuditHead(BaseModel):
    id: StrictInt = Field(ge=0, le=SQLITE_MAX_INT)  # an audit record id: SQLite's integer range
    hash: StrictStr


class PacketShape(BaseModel):
    """What verification reads from a packet (the rest is covered by the digest)."""

    model_config = ConfigDict(extra="allow")

    format: Literal["agentdeck-evidence/1"]
    digest: _Digest
    audit_head: _AuditHead


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):  # 1e400: no canonical form to hash
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _shape_problem(exc: ValidationError) -> str:
    # Field paths and pydantic's wording only: the offending values are untrusted and may be huge.
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "packet"
    what = "Input should be a JSON object" if first["type"] == "model_type" else first["msg"]
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {what}{more}"


def load_packet(text: str) -> tuple[dict, str]:
    """Parse a JSON or Markdown packet → (packet, format). Raises EvidenceError for anything else."""
    fmt = "json"
    body = text
    if _BEGIN in text:
        fmt = "md"
        inner = text.split(_BEGIN, 1)[1].split(_END, 1)[0].strip()
        body = inner.removeprefix("```json").removesuffix("```")
    try:
        packet = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        raise EvidenceError(f"not an evidence packet: {clean(exc, 200, single_line=True)}") from None
    if not isinstance(packet, dict) or packet.get("format") != FORMAT:
        raise EvidenceError(f"not an evidence packet (expected format {FORMAT})")
    try:
        PacketShape.model_validate(packet)
    except ValidationError as exc:
        raise EvidenceError(f"not a well-formed evidence packet: {_shape_problem(exc)}") from None
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
    shape = PacketShape.model_validate(packet)  # load_packet checked it: typed access from here on
    recorded = shape.digest.value
    if recorded != digest(packet):
        integrity.append("the packet's content does not match its sha256 digest (edited)")
    elif fmt == "md" and not _renders_as(packet, text):
        integrity.append("the Markdown text differs from the packet it embeds (edited)")
    if conn is not None:
        head = shape.audit_head
        if not audit.contains(conn, head.id, head.hash):
            provenance.append(f"the audit record {head.id} the packet was exported at is not in this store's trail")
        exported = conn.execute(
            "SELECT 1 FROM audit WHERE kind = 'evidence.export' AND json_extract(detail, '$.digest') = ? LIMIT 1",
            (recorded,),
        ).fetchone()
        if exported is None:
            provenance.append("this store has no export record for this packet")
    return PacketCheck(integrity, provenance)


def _renders_as(packet: dict, text: str) -> bool:
    """Does the packet render to exactly this Markdown (with the current renderer, or the one before it)?"""
    for style in (_CURRENT, _LEGACY):
        try:
            if render_md(packet, style=style) == text:
                return True
        except (KeyError, TypeError, AttributeError, IndexError, ValueError):
            return False  # its digest matches, yet it is not the shape we render: not one of our exports
    return False


def verify_packet(text: str, conn: sqlite3.Connection | None = None) -> list[str]:
    """All problems with a packet (empty: untampered and, with a store, exported from it)."""
    check = check_packet(text, conn)
    return check.integrity + check.provenance
