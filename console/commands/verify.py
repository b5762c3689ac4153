"""Check the audit trail (and optionally an evidence packet) for tampering.

Without ``--packet``: walks the store's hash-chained audit trail and reports
every record that was edited, deleted or reordered. With ``--packet FILE``:
checks the packet's sha256 digest (and, for Markdown, its text); if the store
exists, also that the audit head the packet was exported at is still in the
trail and that the export was recorded.

Exit codes: 0 intact, 1 tampering found (or, for a packet, its export is not
confirmed by the store), 2 could not check (no store, unreadable file, or not
a well-formed packet).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agentdeck.store import config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--packet", metavar="FILE", help="an evidence packet (.json or .md) to check")


def _packet(args: argparse.Namespace) -> int:
    from agentdeck.console.safe import clean
    from agentdeck.replay.evidence import EvidenceError, check_packet
    from agentdeck.store.db import connect

    path = Path(args.packet)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"agentdeck verify: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    db = config.db_path(args.db)
    conn = connect(db, readonly=True) if db.exists() else None
    try:
        check = check_packet(text, conn)
    except EvidenceError as exc:
        print(f"agentdeck verify: {path}: {clean(exc, 500, single_line=True)}", file=sys.stderr)
        return 2
    finally:
        if conn is not None:
            conn.close()
    if check.integrity:
        print(f"TAMPERED: {path}")
        for p in check.integrity + check.provenance:
            print(f"  - {clean(p, single_line=True)}")
        return 1
    if check.provenance:
        print(f"NOT CONFIRMED: {path} is unchanged since export, but {db} does not confirm the export")
        for p in check.provenance:
            print(f"  - {clean(p, single_line=True)}")
        return 1
    against = f"; exported from {db} and its audit head is in the trail" if conn is not None else \
        " (no store to check the export against)"
    print(f"OK: {path} is intact (digest matches{against})")
    return 0


def _trail(args: argparse.Namespace) -> int:
    from agentdeck.store import audit
    from agentdeck.store.db import connect

    db = config.db_path(args.db)
    if not db.exists():
        print(f"agentdeck verify: no store at {db}", file=sys.stderr)
        return 2
    conn = connect(db, readonly=True)
    try:
        count, problems = audit.verify(conn)
    finally:
        conn.close()
    if problems:
        print(f"TAMPERED: the audit trail in {db} is broken ({len(problems)} problem(s) in {count} records)")
        for p in problems:
            where = f"record {p.record_id}" if p.record_id is not None else "trail"
            print(f"  - {where}: {p.what}")
        return 1
    print(f"OK: the audit trail in {db} is intact ({count} records, hash chain and head verified)")
    return 0


def run(args: argparse.Namespace) -> int:
    return _packet(args) if args.packet else _trail(args)
