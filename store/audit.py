"""The audit trail: every human act (decision, compensation, export, reveal), hash-chained and signed.

Each record's hash covers its own fields and the previous record's hash, so
editing, deleting or reordering any record breaks the chain from there on.
Since the trail has a key (``store/anchor.py``: a file outside the database),
that hash is an HMAC-SHA256 with the key (``hmac:<key id>:<hex>``): whoever
can write the database but not read the key cannot recompute it after an
edit. Records written before the store had a key keep their plain sha256
(``<hex>``) and are reported as not anchored.

After every audited act commits, the caller appends a signed checkpoint of
the head to the checkpoint file (``checkpoint``): removing the newest records
and rewinding the head is caught by any copy of that file.

``verify`` walks the chain, checks the signatures and the checkpoints, and
cross-checks the tables the records are about (``store/audit_crosscheck.py``):
a decided escalation or a compensation with no record is tampering too.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentdeck.store import anchor
from agentdeck.store.txn import atomic, store_path

GENESIS = "0" * 64
SIGNED_PREFIX = "hmac:"


def _body(rec_id: int, ts: float, actor: str, kind: str, subject: str, detail: str) -> str:
    return json.dumps([rec_id, repr(float(ts)), actor, kind, subject, detail], separators=(",", ":"), ensure_ascii=False)


def _digest(prev_hash: str, rec_id: int, ts: float, actor: str, kind: str, subject: str, detail: str) -> str:
    body = _body(rec_id, ts, actor, kind, subject, detail)
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _signed(key: anchor.Key, prev_hash: str, rec_id: int, ts: float, actor: str, kind: str, subject: str,
            detail: str) -> str:
    mac = key.sign("audit-record", prev_hash + _body(rec_id, ts, actor, kind, subject, detail))
    return f"{SIGNED_PREFIX}{key.key_id}:{mac}"


def _store_key(conn: sqlite3.Connection) -> anchor.Key | None:
    return anchor.key_for_writing(anchor.key_path(store_path(conn)))


def append(conn: sqlite3.Connection, *, ts: float, actor: str, kind: str, subject: str, detail: dict[str, Any]) -> dict:
    """Add one record. Call inside the caller's transaction, so the act and its record commit together.

    After the transaction commits, call ``checkpoint(conn)`` to anchor the new head outside the store.
    """
    if not conn.in_transaction:
        raise RuntimeError("audit.append must run inside the transaction that makes the change")
    key = _store_key(conn)
    last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    rec_id = (last[0] + 1) if last else 1
    prev = last[1] if last else GENESIS
    detail_json = json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    if key is not None:
        h = _signed(key, prev, rec_id, ts, actor, kind, subject, detail_json)
    else:  # an in-memory store has no place for a key
        h = _digest(prev, rec_id, ts, actor, kind, subject, detail_json)
    conn.execute(
        "INSERT INTO audit (id, ts, actor, kind, subject, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (rec_id, ts, actor, kind, subject, detail_json, prev, h),
    )
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('audit:head', ?)", (f"{rec_id}:{h}",))
    return {"id": rec_id, "hash": h, "prev_hash": prev}


def checkpoint(conn: sqlite3.Connection, *, now: float | None = None) -> str | None:
    """Append the committed head, signed, to the checkpoint file. Call after the audited act commits.

    Never raises for the file (the act is committed and recorded already): returns what went wrong, or None.
    ``verify`` reports records newer than the last checkpoint, so a failed checkpoint stays visible.
    """
    if conn.in_transaction:
        # Inside a caller's larger transaction the head may still roll back: a rolled-back record must never
        # be anchored. Skip; the next checkpoint after a commit covers it.
        return None
    store = store_path(conn)
    path = anchor.checkpoints_path(store)
    try:
        key = anchor.key_for_writing(anchor.key_path(store))
        if key is None or path is None:
            return None
        h = head(conn)
        if h["id"] == 0 or _last_checkpointed(path) == (h["id"], h["hash"]):
            return None
        anchor.append_checkpoint(path, key, h["id"], h["hash"], time.time() if now is None else now)
    except (OSError, anchor.AnchorError) as exc:
        return f"could not write the audit checkpoint to {path}: {exc}"
    return None


def _last_checkpointed(path: Path) -> tuple[int, str] | None:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 512))
            tail = f.read().splitlines()
        last = json.loads(tail[-1]) if tail else None
        return (int(last["id"]), str(last["hash"])) if isinstance(last, dict) else None
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def head(conn: sqlite3.Connection) -> dict:
    """The newest record's id and hash (``{"id": 0, "hash": GENESIS}`` for an empty trail)."""
    last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    return {"id": last[0], "hash": last[1]} if last else {"id": 0, "hash": GENESIS}


def contains(conn: sqlite3.Connection, rec_id: int, rec_hash: str) -> bool:
    """Is record ``rec_id`` with this hash part of the trail (e.g. a packet's recorded head)?"""
    if rec_id == 0:
        return rec_hash == GENESIS
    row = conn.execute("SELECT hash FROM audit WHERE id = ?", (rec_id,)).fetchone()
    return row is not None and row[0] == rec_hash


@dataclass(frozen=True)
class Problem:
    record_id: int | None
    what: str


@dataclass
class Report:
    """What ``check`` found. ``problems``: tampering. ``unchecked``: why part of it could not be checked."""

    records: int = 0
    problems: list[Problem] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    key_path: Path | None = None
    checkpoints_path: Path | None = None
    checkpoints: int = 0

    @property
    def intact(self) -> bool:
        return not self.problems and not self.unchecked


def _walk(conn: sqlite3.Connection, key: anchor.Key | None, report: Report) -> dict[int, str]:
    problems = report.problems
    prev = GENESIS
    expected_id = 1
    hashes: dict[int, str] = {}
    unsigned: list[int] = []
    signed = 0
    other_keys: set[str] = set()
    for row in conn.execute("SELECT id, ts, actor, kind, subject, detail, prev_hash, hash FROM audit ORDER BY id"):
        rec_id, ts, actor, kind, subject, detail, prev_hash, h = tuple(row)
        report.records += 1
        hashes[rec_id] = h
        if rec_id != expected_id:
            problems.append(Problem(rec_id, f"records {expected_id}..{rec_id - 1} are missing (deleted)"))
        if prev_hash != prev:
            problems.append(Problem(rec_id, "does not follow the previous record (deleted or reordered before it)"))
        if isinstance(h, str) and h.startswith(SIGNED_PREFIX):
            signed += 1
            key_id, _, _mac = h[len(SIGNED_PREFIX):].partition(":")
            if key is None:
                pass
            elif key_id != key.key_id:
                other_keys.add(key_id)
            elif _signed(key, prev_hash, rec_id, ts, actor, kind, subject, detail) != h:
                problems.append(Problem(rec_id, "contents do not match its signature (edited)"))
        else:
            if signed:
                problems.append(Problem(rec_id, "is not signed although records before it are "
                                                "(rewritten by someone without the key)"))
            elif _digest(prev_hash, rec_id, ts, actor, kind, subject, detail) != h:
                problems.append(Problem(rec_id, "contents do not match its hash (edited)"))
            else:
                unsigned.append(rec_id)
        prev = h
        expected_id = rec_id + 1
    meta = conn.execute("SELECT value FROM meta WHERE key = 'audit:head'").fetchone()
    if meta is not None:
        head_id, _, head_hash = str(meta[0]).partition(":")
        if not head_id.isdigit():
            problems.append(Problem(None, "the chain head in meta is unreadable (edited)"))
        elif int(head_id) != expected_id - 1 or head_hash != prev:
            problems.append(Problem(int(head_id), f"the trail should end at record {head_id}; newer records were removed or replaced"))
    elif report.records:
        problems.append(Problem(None, "the chain head is missing from meta"))
    if signed and key is None:
        report.unchecked.append(f"{signed} records are signed, but there is no audit key at {report.key_path}: "
                                "an edit cannot be told from the original (pass --key with the store's key)")
    if other_keys:
        mine = key.key_id if key else "none"
        report.unchecked.append(f"records are signed with key {', '.join(sorted(other_keys))}, not with the key at "
                                f"{report.key_path} ({mine}): the wrong key file? (pass --key)")
    if key is not None and report.records and not signed:
        problems.append(Problem(None, f"none of the {report.records} records is signed, though the audit key at "
                                      f"{report.key_path} exists and every record is signed once a store has its key: "
                                      "rewritten by someone without the key (or that key belongs to another store: "
                                      "pass --key)"))
    elif unsigned:
        span = f"record {unsigned[0]}" if len(unsigned) == 1 else f"records {unsigned[0]}..{unsigned[-1]}"
        report.notes.append(f"{span} predate signing: their hash chain is checked, but they are not anchored "
                            "(whoever can write the store could rewrite them)")
    return hashes


def _read_checkpoints(report: Report) -> list[anchor.Checkpoint] | None:
    """The checkpoint file's lines (None: no file). Read *before* the store: every checkpoint is written after
    its record commits, so each one read here names a record the store's snapshot taken next must hold."""
    path = report.checkpoints_path
    if path is None or not path.exists():
        return None
    try:
        found, bad = anchor.read_checkpoints(path)
    except OSError as exc:
        report.unchecked.append(f"cannot read the checkpoint file {path}: {exc.strerror or exc}")
        return []
    report.problems += [Problem(None, f"checkpoint file {path}: {b}") for b in bad]
    return found


def _check_checkpoints(key: anchor.Key | None, found: list[anchor.Checkpoint] | None, hashes: dict[int, str],
                       report: Report) -> None:
    signed = any(h.startswith(SIGNED_PREFIX) for h in hashes.values())
    if found is None:
        if signed and report.checkpoints_path is not None:
            report.problems.append(Problem(None, f"the checkpoint file {report.checkpoints_path} is missing although "
                                                 "the trail is signed (deleted? if you keep a copy elsewhere, pass "
                                                 "--checkpoints)"))
        return
    if key is None:
        if found:
            report.unchecked.append(f"{len(found)} checkpoints cannot be checked without the audit key")
        return
    latest = 0
    for cp in found:
        if cp.key_id != key.key_id:
            report.unchecked.append(f"checkpoint line {cp.line} is signed with key {cp.key_id}, not {key.key_id}")
            continue
        if not cp.signed_by(key):
            report.problems.append(Problem(None, f"checkpoint line {cp.line} is not signed by the audit key (forged or edited)"))
            continue
        report.checkpoints += 1
        latest = max(latest, cp.id)
        have = hashes.get(cp.id)
        if have is None:
            report.problems.append(Problem(cp.id, f"was anchored by the checkpoint of {cp.at} but is gone from the trail (deleted)"))
        elif have != cp.hash:
            report.problems.append(Problem(cp.id, f"differs from its checkpoint of {cp.at} (the trail was rewritten)"))
    newest = max(hashes, default=0)
    if newest > latest:
        first = latest + 1
        span = f"record {newest}" if first == newest else f"records {first}..{newest}"
        report.notes.append(f"{span} are newer than the last checkpoint: checked by the chain and signatures only")


def check(conn: sqlite3.Connection, *, key_file: str | Path | None = None,
          checkpoints_file: str | Path | None = None) -> Report:
    """Everything ``agentdeck verify`` checks about the store's trail."""
    from agentdeck.store.audit_crosscheck import crosscheck

    store = store_path(conn)
    report = Report(key_path=anchor.key_path(store, str(key_file) if key_file else None),
                    checkpoints_path=anchor.checkpoints_path(store, str(checkpoints_file) if checkpoints_file else None))
    key = None
    try:
        key = anchor.load_key(report.key_path)
    except anchor.AnchorError as exc:
        report.unchecked.append(str(exc))
    if key is not None and key.loosely_readable:
        report.notes.append(f"the audit key {key.path} can be read by other users: make it private (chmod 600)")
    checkpoints = _read_checkpoints(report)
    # One read snapshot for the trail, the head and the rows it is about: a decision committed by a console
    # meanwhile is either wholly in it (row and record) or wholly not.
    with atomic(conn, immediate=False):
        hashes = _walk(conn, key, report)
        report.problems += crosscheck(conn)
    _check_checkpoints(key, checkpoints, hashes, report)
    return report


def verify(conn: sqlite3.Connection) -> tuple[int, list[Problem]]:
    """Walk and cross-check the trail; returns (records checked, problems). No problems means intact."""
    report = check(conn)
    return report.records, report.problems + [Problem(None, u) for u in report.unchecked]
