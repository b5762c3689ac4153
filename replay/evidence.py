"""Proof-of-Action: an Evidence Packet for one task, and checking one.

A packet holds every item of the checklist (request id and time, agent
version, plan, tool calls with inputs and outputs, applied policies,
justification, action and downstream response, compensation reference), the
human decisions and compensations, and the audit records about the task —
with secrets redacted (``replay.redact``). It carries the audit chain head at
export time and a sha256 digest of its canonical JSON (sorted keys, no
spaces, UTF-8), so ``verify_packet`` can tell an untouched packet from an
edited one. The digest is signed with the store's audit key (``anchor``:
HMAC-SHA256, ``store/anchor.py``), so a packet edited *and* re-digested fails
even where the store is not at hand, as long as the key is. A Markdown packet
(``evidence_md``: summary, timeline, then the detail) embeds the JSON packet
and is checked by re-rendering it: editing any line of it is caught too.

Packets are read by people in terminals and pagers, so no trace text reaches
a file as a raw control or bidi character: JSON and scenario files are
written ASCII-only (``\\uXXXX`` escapes, the same data once parsed, so the
digest is unchanged), and Markdown shows those characters as visible escapes
(the set ``console.safe`` uses) and escapes Markdown and HTML. Markdown
packets written by earlier renderers are still verified against them.

``export`` builds, writes and records (an ``evidence.export`` audit record)
in one transaction: no export without its record.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from agentdeck.console.safe import clean
from agentdeck.replay.evidence_md import NotAPacket, embedded_json, render_md, renders_as
from agentdeck.replay.reconstruct import Reconstruction, reconstruct
from agentdeck.replay.redact import redact
from agentdeck.store import anchor, audit
from agentdeck.store.txn import atomic, store_path

FORMAT = "agentdeck-evidence/1"
FORMATS = ("json", "md", "scenario")
ENV_EVIDENCE_DIR = "AGENTDECK_EVIDENCE_DIR"
# Extensions of -o FILE → format, when --format is not given.
FORMAT_FOR_SUFFIX = {".md": "md", ".markdown": "md", ".json": "json", ".jsonl": "scenario"}
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")
NAME_LIMIT = 60
ANCHOR_PURPOSE = "evidence-packet"
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
    body = {k: v for k, v in packet.items() if k not in ("digest", "anchor")}
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


def _undone(a: Any) -> bool:
    return a.compensated_at is not None and (a.compensation_status or "ok") == "ok"


def outcome_of(r: Reconstruction) -> dict:
    """The task's outcome as it stands: an undone action changes it, whatever the agent reported.

    ``outcome``: the agent's own (``success``...) until an action is undone, then ``compensated`` (every action
    undone) or ``partly compensated``; ``reported_outcome``: what the agent said; ``compensation``: one line.
    """
    undone = [a for a in r.actions if _undone(a)]
    failed = [a for a in r.actions if not _undone(a) and a.compensation_status == "failed"]
    running = [a for a in r.actions if not _undone(a) and a.compensation_status == "running"]
    outcome = r.outcome
    if undone:
        outcome = "compensated" if len(undone) == len(r.actions) else "partly compensated"
    parts = [f"{a.action_id} undone by {a.compensated_by or 'unknown'} at {iso(a.compensated_at)}" for a in undone]
    parts += [f"undoing {a.action_id} failed (retry from Replay)" for a in failed]
    parts += [f"undoing {a.action_id} is in progress" for a in running]
    return {"outcome": outcome, "reported_outcome": r.outcome, "compensation": "; ".join(parts) or None}


def build_packet(r: Reconstruction, *, generated_by: str, generated_at: float, audit_head: dict,
                 key: anchor.Key | None = None) -> dict:
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
        "task": {"task_id": r.task_id, "request_id": r.request_id, "agent": r.agent, **outcome_of(r),
                 "started": iso(r.started), "ended": iso(r.ended), "steps": len(r.steps)},
        "timeline": [{"seq": s.seq, "ts": iso(s.ts), "kind": s.kind, "title": s.title} for s in r.steps],
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
    if key is not None:
        packet["anchor"] = {"key_id": key.key_id, "mac": key.sign(ANCHOR_PURPOSE, packet["digest"]["value"])}
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


# ---- formats ------------------------------------------------------------------------------


def render(packet: dict, fmt: str) -> str:
    if fmt == "md":
        return render_md(packet)
    return json.dumps(packet, sort_keys=True, indent=2, ensure_ascii=True) + "\n"


# ---- export and verification ------------------------------------------------------------


def format_for(fmt: str | None, out: Path | None) -> str:
    """The format to write: the one asked for, else inferred from -o's extension, else JSON.

    Raises ``EvidenceError`` when they disagree (``--format json -o x.md``) or the format is unknown.
    """
    inferred = FORMAT_FOR_SUFFIX.get(out.suffix.lower()) if out is not None else None
    if fmt is None:
        return inferred or "json"
    if fmt not in FORMATS:
        raise EvidenceError(f"unknown format {fmt!r} (use one of {', '.join(FORMATS)})")
    if out is not None and inferred is not None and inferred != fmt:
        raise EvidenceError(f"--format {fmt} does not match {out}: a {out.suffix} file holds {inferred}; "
                            f"drop --format or change the file name")
    return fmt


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
    The packet is signed with the store's audit key (``store/anchor.py``), so an edit is caught even without the store.
    """
    if fmt not in FORMATS:
        raise EvidenceError(f"unknown format {fmt!r} (use one of {', '.join(FORMATS)})")
    try:
        key = anchor.key_for_writing(anchor.key_path(store_path(conn)))
    except (anchor.AnchorError, OSError) as exc:
        raise EvidenceError(f"cannot sign the packet: {exc}") from None
    with atomic(conn):  # a stable snapshot and audit head while we build and record
        r = reconstruct(conn, task_or_request_id)
        if r is None:
            raise EvidenceError(f"no task or request {task_or_request_id!r} in the store")
        if fmt == "scenario":
            lines, redactions = scenario_lines(conn, r.task_id)
            text = "".join(line + "\n" for line in lines)
            detail = {"format": fmt, "task_id": r.task_id, "events": len(lines), "redactions": redactions,
                      "sha256": hashlib.sha256(text.encode()).hexdigest()}
        else:
            packet = build_packet(r, generated_by=operator, generated_at=now, audit_head=audit.head(conn), key=key)
            text = render(packet, fmt)
            detail = {"format": fmt, "task_id": r.task_id, "digest": packet["digest"]["value"],
                      "audit_head": packet["audit_head"], "redactions": packet["redactions"]}
        detail["path"] = str(out) if out is not None else "-"
        # The record first, then the file, both inside the transaction: a file that cannot be written
        # rolls the record back, so there is never a record of an export that did not happen.
        audit.append(conn, ts=now, actor=operator, kind="evidence.export", subject=r.task_id, detail=detail)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, out)
    audit.checkpoint(conn)
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


class _Anchor(BaseModel):
    key_id: StrictStr
    mac: StrictStr


def load_packet(text: str) -> tuple[dict, str]:
    """Parse a JSON or Markdown packet → (packet, format). Raises EvidenceError naming what is wrong."""
    fmt = "json"
    body = text
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped.startswith("{"):
        fmt = "md"
        try:
            body = embedded_json(text)
        except NotAPacket as exc:
            if "agentdeck-evidence" in text:
                raise EvidenceError(f"not a complete evidence packet: {exc}") from None
            raise EvidenceError("not an evidence packet: neither a JSON packet nor a Markdown packet (a Markdown "
                                "packet ends with an agentdeck-evidence block; this file has none)") from None
    try:
        packet = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        what = "its machine-readable block" if fmt == "md" else "the file"
        raise EvidenceError(f"not an evidence packet: {what} is not valid JSON "
                            f"({clean(exc, 200, single_line=True)})") from None
    if not isinstance(packet, dict) or packet.get("format") != FORMAT:
        raise EvidenceError(f"not an evidence packet (expected format {FORMAT})")
    try:
        PacketShape.model_validate(packet)
        if "anchor" in packet:
            _Anchor.model_validate(packet["anchor"])
    except ValidationError as exc:
        raise EvidenceError(f"not a well-formed evidence packet: {_shape_problem(exc)}") from None
    return packet, fmt


@dataclass(frozen=True)
class PacketCheck:
    integrity: list[str]  # the packet was changed after export
    provenance: list[str]  # the packet's export cannot be confirmed (by its signature or by this store)
    unchecked: list[str] = field(default_factory=list)  # what could not be checked, and what to pass to check it
    signed_by: str | None = None  # the key id whose signature matched

    @property
    def ok(self) -> bool:
        return not self.integrity and not self.provenance and not self.unchecked


def check_packet(text: str, conn: sqlite3.Connection | None = None, *, key: anchor.Key | None = None) -> PacketCheck:
    """Is the packet untouched (digest, signature, and for Markdown its text)? With a store: exported from it?"""
    packet, fmt = load_packet(text)
    if key is None and conn is not None:
        try:
            key = anchor.load_key(anchor.key_path(store_path(conn)))
        except anchor.AnchorError:
            key = None  # reported below as "key not found"
    integrity: list[str] = []
    provenance: list[str] = []
    unchecked: list[str] = []
    signed_by = None
    shape = PacketShape.model_validate(packet)  # load_packet checked it: typed access from here on
    recorded = shape.digest.value
    if recorded != digest(packet):
        integrity.append("the packet's content does not match its sha256 digest (edited)")
    elif fmt == "md" and not renders_as(packet, text):
        integrity.append("the Markdown text differs from the packet it embeds (edited)")
    if "anchor" in packet:
        sig = _Anchor.model_validate(packet["anchor"])
        if key is None:
            unchecked.append(f"the packet is signed with audit key {clean(sig.key_id, 40, single_line=True)}, "
                             "but that key was not found: pass --key (or check it where the store is)")
        elif sig.key_id != key.key_id:
            unchecked.append(f"the packet is signed with audit key {clean(sig.key_id, 40, single_line=True)}, "
                             f"not with {key.key_id} ({key.path}): pass the exporting store's key with --key")
        elif not key.check(ANCHOR_PURPOSE, recorded, sig.mac):
            integrity.append("the packet's signature does not match its digest (edited, and the digest recomputed)")
        else:
            signed_by = key.key_id
    confirmed_by_store = False
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
        confirmed_by_store = not provenance
    if "anchor" not in packet and not confirmed_by_store and not integrity:
        provenance.append("the packet is not signed (exported before packets were signed, or its signature was "
                          "removed): only the store that exported it can confirm it")
    return PacketCheck(integrity, provenance, unchecked, signed_by)


def verify_packet(text: str, conn: sqlite3.Connection | None = None, *, key: anchor.Key | None = None) -> list[str]:
    """All problems with a packet (empty: untampered, signature checked, and with a store: exported from it)."""
    check = check_packet(text, conn, key=key)
    return check.integrity + check.provenance + check.unchecked
