"""Check the audit trail (and optionally an evidence packet) for tampering.

Without ``--packet``: walks the store's audit trail — hash chain, signatures
with the audit key, the signed checkpoints kept outside the store — and
cross-checks every decided escalation and every compensation against it.
With ``--packet FILE``: checks the packet's digest, its signature (with the
audit key: works without the store) and, for Markdown, its text; if the store
exists, also that the export was recorded in its trail.

See docs/evidence.md ("What verify proves") for what this can and cannot show.

Exit codes: 0 intact, 1 tampering found or not confirmed, 2 could not check
(no store, unreadable file, not an evidence packet, or the key is missing).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agentdeck.store import config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--packet", metavar="FILE", help="an evidence packet (.json or .md) to check")
    p.add_argument("--key", metavar="FILE",
                   help="the audit key (default: $AGENTDECK_AUDIT_KEY, else audit.key beside the store)")
    p.add_argument("--checkpoints", metavar="FILE",
                   help="a copy of the checkpoint file (default: $AGENTDECK_AUDIT_CHECKPOINTS, "
                        "else audit-checkpoints.log beside the store)")


def _packet(args: argparse.Namespace) -> int:
    from agentdeck.console.safe import clean
    from agentdeck.replay.evidence import EvidenceError, check_packet
    from agentdeck.store import anchor
    from agentdeck.store.db import connect

    path = Path(args.packet)
    try:
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError:
        print(f"agentdeck verify: {path} is a folder; pass one packet file", file=sys.stderr)
        return 2
    except UnicodeDecodeError:
        print(f"agentdeck verify: {path} is not an evidence packet (not UTF-8 text)", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"agentdeck verify: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    db = config.db_path(args.db)
    if args.key and not Path(args.key).is_file():
        print(f"agentdeck verify: no audit key at {args.key}", file=sys.stderr)
        return 2
    try:
        key = anchor.load_key(anchor.key_path(db, args.key))
    except anchor.AnchorError as exc:
        print(f"agentdeck verify: {exc}", file=sys.stderr)
        return 2
    conn = connect(db, readonly=True) if db.exists() else None
    try:
        check = check_packet(text, conn, key=key)
    except EvidenceError as exc:
        print(f"agentdeck verify: {path}: {clean(exc, 500, single_line=True)}", file=sys.stderr)
        return 2
    finally:
        if conn is not None:
            conn.close()

    def lines(items: list[str]) -> None:
        for p in items:
            print(f"  - {clean(p, single_line=True)}")

    if check.integrity:
        print(f"TAMPERED: {path}")
        lines(check.integrity + check.provenance)
        return 1
    if check.provenance:
        print(f"NOT CONFIRMED: {path} matches its digest, but its export cannot be confirmed")
        lines(check.provenance + check.unchecked)
        return 1
    if check.unchecked:
        print(f"CANNOT CHECK: {path} matches its digest, but its signature could not be checked")
        lines(check.unchecked)
        return 2
    signed = f"signed with audit key {check.signed_by}" if check.signed_by else "unsigned"
    against = f"; exported from {db} and its audit head is in the trail" if conn is not None else \
        "; no store to check the export against"
    print(f"OK: {path} is intact (digest matches, {signed}{against})")
    return 0


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _trail(args: argparse.Namespace) -> int:
    from agentdeck.store import audit
    from agentdeck.store.db import connect

    db = config.db_path(args.db)
    if not db.exists():
        print(f"agentdeck verify: no store at {db}", file=sys.stderr)
        return 2
    conn = connect(db, readonly=True)
    try:
        report = audit.check(conn, key_file=args.key, checkpoints_file=args.checkpoints)
    finally:
        conn.close()
    if report.problems:
        print(f"TAMPERED: the audit trail in {db} is broken ({_n(len(report.problems), 'problem')} in "
              f"{_n(report.records, 'record')})")
        for p in report.problems:
            where = f"record {p.record_id}" if p.record_id is not None else "trail"
            print(f"  - {where}: {p.what}")
        for u in report.unchecked:
            print(f"  - not checked: {u}")
        return 1
    if report.unchecked:
        print(f"CANNOT CHECK: the audit trail in {db} could not be fully checked ({_n(report.records, 'record')})")
        for u in report.unchecked:
            print(f"  - {u}")
        return 2
    anchored = (f", signatures checked with {report.key_path}, {_n(report.checkpoints, 'checkpoint')} matched"
                if report.checkpoints else "")
    print(f"OK: the audit trail in {db} is intact ({_n(report.records, 'record')}, hash chain and head verified{anchored}; "
          "every decision and compensation in the store has its record)")
    for n in report.notes:
        print(f"  note: {n}")
    return 0


def run(args: argparse.Namespace) -> int:
    return _packet(args) if args.packet else _trail(args)
