"""Evidence for a task that was pruned: built from its archive and the audit trail.

``agentdeck evidence`` calls ``export_pruned`` when the store no longer holds
the task. The task's lines are read from its archive (checked against the
digest recorded when it was pruned) into a scratch in-memory store; the human
decisions on it are taken from the audit trail, which pruning never touches.
The packet is then built as for a live task, with this store's audit head,
and its export is recorded in this store's audit trail, so ``agentdeck
verify --packet`` confirms it like any other. Console compensation attempts
are not rebuilt as rows: their audit records are in the packet.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

from agentdeck.store import audit
from agentdeck.store.archive import ArchiveError, ArchivedTask, apply_audited_decisions, describe, locate, read_task
from agentdeck.store.txn import atomic


def pruned_note(conn: sqlite3.Connection, task_or_request_id: str) -> str | None:
    """Where a pruned task went (one line), or None if the store never pruned it."""
    found = locate(conn, task_or_request_id)
    return None if found is None else describe(found)


def _scratch(conn: sqlite3.Connection, found: ArchivedTask, lines: list[str]) -> sqlite3.Connection:
    from agentdeck.store.db import connect
    from agentdeck.store.events import parse_event
    from agentdeck.store.ingest import apply_batch

    tmp = connect(":memory:")
    apply_batch(tmp, None, [(parse_event(line), line) for line in lines], [])
    subjects = [found.task_id] + ([found.request_id] if found.request_id else [])
    subjects += [r[0] for r in tmp.execute("SELECT escalation_id FROM escalations")]
    subjects += [r[0] for r in tmp.execute("SELECT action_id FROM actions")]
    marks = ",".join("?" * len(subjects))
    records = conn.execute(f"SELECT id, ts, actor, kind, subject, detail, prev_hash, hash FROM audit "
                           f"WHERE subject IN ({marks}) ORDER BY id", subjects).fetchall()
    with atomic(tmp):
        tmp.executemany("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [tuple(r) for r in records])
        # The console's decisions were never events: the audit trail holds them.
        apply_audited_decisions(tmp, conn, [r[0] for r in tmp.execute("SELECT escalation_id FROM escalations")])
    return tmp


def export_pruned(conn: sqlite3.Connection, task_or_request_id: str, *, fmt: str, out: Path | None, operator: str,
                  now: float, archive: Path | None = None) -> tuple[str, dict] | None:
    """As ``replay.evidence.export`` for a pruned task; None if it was never pruned.

    Raises ``ArchiveError`` when the archive is missing, changed or damaged
    (``archive``: where the file is now, if it was moved).
    """
    from agentdeck.replay.evidence import EvidenceError, build_packet, render, scenario_lines
    from agentdeck.replay.reconstruct import reconstruct

    found = locate(conn, task_or_request_id)
    if found is None or found.state == "kept":
        return None
    lines = read_task(found, archive)
    tmp = _scratch(conn, found, lines)
    try:
        with atomic(conn):  # the audit head does not move while we build and record
            r = reconstruct(tmp, found.task_id)
            if r is None:
                raise ArchiveError(f"{found.task_id}'s archive holds no events")
            source = str(archive or found.archive)
            if fmt == "scenario":
                scenario, redactions = scenario_lines(tmp, r.task_id)
                text = "".join(line + "\n" for line in scenario)
                detail = {"format": fmt, "task_id": r.task_id, "events": len(scenario), "redactions": redactions,
                          "sha256": hashlib.sha256(text.encode()).hexdigest()}
            elif fmt in ("json", "md"):
                packet = build_packet(r, generated_by=operator, generated_at=now, audit_head=audit.head(conn))
                text = render(packet, fmt)
                detail = {"format": fmt, "task_id": r.task_id, "digest": packet["digest"]["value"],
                          "audit_head": packet["audit_head"], "redactions": packet["redactions"]}
            else:
                raise EvidenceError(f"unknown format {fmt!r}")
            detail.update(path=str(out) if out is not None else "-", archive=source, archive_digest=found.digest)
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                part = out.with_name(out.name + ".tmp")
                part.write_text(text, encoding="utf-8")
                os.replace(part, out)
            audit.append(conn, ts=now, actor=operator, kind="evidence.export", subject=r.task_id, detail=detail)
    finally:
        tmp.close()
    audit.checkpoint(conn, now=now)  # anchor the new head outside the store, as every audited act does
    return text, detail
