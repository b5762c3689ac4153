"""The decisions outbox: one JSON line per decision, for agents to read.

The file is ``<traces>/outbox/decisions.jsonl`` by default (see
``docs/decisions.md`` for the line format). Lines are appended whole, with one
``write`` on an ``O_APPEND`` descriptor under an exclusive ``flock``, then
fsynced, so a reader never sees half a line from a finished append and two
consoles never interleave. ``append_once`` skips a decision whose idempotency
key is already in the file: after a crash between the append and the store
recording it, the restart does not write it twice (the store notes an intent
before each append, so only such a retry pays for reading the file). Readers should still
dedup by ``escalation_id`` / ``idempotency_key``.
"""

from __future__ import annotations

import fcntl
import json
import os
from datetime import datetime, UTC
from pathlib import Path
from typing import Any, Literal, Protocol
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from agentdeck.store.outbox_path import RELATIVE_PATH, outbox_for, resolve  # noqa: F401 (the outbox's path, here too)

OUTBOX_VERSION: Literal[1] = 1


class OutboxLine(BaseModel):
    """One decision, as delivered to the agent (outbox line and callback body alike)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = OUTBOX_VERSION
    escalation_id: str = Field(description="The escalation this decides (from the agent's escalation event).")
    task_id: str
    decision: Literal["approve", "deny"]
    decided_by: str = Field(description="Who decided: the approver's identity, or 'expiry-policy'.")
    decided_at: str = Field(description="When, RFC 3339 UTC with milliseconds.")
    reason: str = ""
    expired: bool = Field(False, description="True when the deadline passed and the expiry policy decided.")
    idempotency_key: str = Field(description="Same for every delivery of this decision; dedup on it.")
    # A promotion or roll back item (store/release.py): what was decided about which version. Absent otherwise.
    release: dict[str, Any] | None = Field(None, description="agent, version, action, from and to stage.")

    def to_json(self) -> str:
        # Lines of agents' escalations stay as they were (no "release" key).
        return self.model_dump_json(exclude={"release"} if self.release is None else None)


class Line(Protocol):
    """What ``append_once`` writes: a decision, or a stage change (store/release.py)."""

    @property
    def idempotency_key(self) -> str: ...

    def to_json(self) -> str: ...


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def line_for(row) -> OutboxLine:
    """The outbox line for a decided escalation row (a mapping with the escalations columns)."""
    status = row["status"]
    release = None
    if "kind" in row.keys() and row["kind"] == "release":
        try:
            action = json.loads(row["proposed_action"] or "{}")
            params = action.get("params") or {}
            release = {"agent": params.get("agent"), "version": params.get("version"),
                       "action": action.get("operation"), "from": params.get("from"), "to": params.get("to")}
        except (ValueError, AttributeError):
            release = {}
    return OutboxLine(
        release=release,
        escalation_id=row["escalation_id"],
        task_id=row["task_id"],
        decision="approve" if status == "approved" else "deny",
        decided_by=row["decided_by"] or "",
        decided_at=iso(row["decided_at"]),
        reason=row["decision_reason"] or "",
        expired=row["decided_by"] == "expiry-policy",
        idempotency_key=row["idempotency_key"],
    )


def _lines(data: bytes) -> Iterator[dict]:
    for raw in data.splitlines():
        try:
            item = json.loads(raw)
        except ValueError:
            continue
        if isinstance(item, dict):
            yield item


def read(path: Path) -> list[dict]:
    """Every well-formed line, first occurrence of each idempotency key only."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    seen: set[str] = set()
    out = []
    for item in _lines(data):
        key = str(item.get("idempotency_key") or item.get("escalation_id"))
        if key in seen:
            continue
        seen.add(key)
        out.append(item)
    return out


def append_once(path: Path, line: Line, *, check: bool = True) -> bool:
    """Append the line unless its idempotency key is already there. True if written.

    ``check=False`` skips reading the file for the key: for a decision never
    appended before (the caller knows from the store), the append is O(1).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = line.to_json().encode("utf-8") + b"\n"
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if check and _contains(fd, line.idempotency_key):
                return False
            os.write(fd, payload)
            os.fsync(fd)
            return True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _contains(fd: int, key: str) -> bool:
    # The key is plain ASCII; a byte search narrows it, JSON confirms it.
    needle = key.encode("ascii")
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0) if size else b""
    if needle not in data:
        return False
    return any(item.get("idempotency_key") == key for item in _lines(data))
