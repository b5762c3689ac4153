"""Export a task's Evidence Packet (JSON or Markdown) or its events as a regression scenario.

The task is named by its task id or its request id. Secrets in payloads are
redacted; the packet carries a sha256 digest and the audit chain head
(check it with ``agentdeck verify --packet FILE``). Every export is an audit
record. The format follows ``-o``'s extension (``.md``, ``.json``,
``.jsonl`` for a scenario) unless ``--format`` names one. ``--format scenario`` writes the task's events as JSON Lines for a
regression folder (``agentdeck check``).

Exit codes: 0 written, 2 unknown task, bad or mismatched format, or unwritable file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from agentdeck.store import config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", metavar="TASK_OR_REQUEST_ID", help="task id or request id")
    p.add_argument("--format", choices=("json", "md", "scenario", "case"), default=None,
                   help="packet format (default: from -o's extension: .md, .json, .jsonl for scenario; else json); "
                        "case: a regression-suite case whose expectation is what the human decided or the "
                        "compensation that was needed (docs/suite.md)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (default: standard output)")
    p.add_argument("--user", help="who exports (default: $AGENTDECK_USER, else the OS user)")


def run(args: argparse.Namespace) -> int:
    from agentdeck.console.safe import clean
    from agentdeck.replay.evidence import EvidenceError, export, format_for
    from agentdeck.store.db import connect

    db = config.db_path(args.db)
    if not db.exists():
        return _fail(f"no store at {db}")
    out = Path(args.output) if args.output else None
    if args.format == "case":
        return _export_case(args, db, out)
    try:
        fmt = format_for(args.format, out)
    except EvidenceError as exc:
        return _fail(str(exc))
    conn = connect(db)
    try:
        text, detail = export(conn, args.task, fmt=fmt, out=out, operator=config.operator(args.user),
                              now=time.time())
    except EvidenceError as exc:
        # Not in the store: a pruned task is rebuilt from its archive (store/archive_evidence.py).
        from agentdeck.store.archive import ArchiveError
        from agentdeck.store.archive_evidence import export_pruned, pruned_note

        note = pruned_note(conn, args.task)
        try:
            done = export_pruned(conn, args.task, fmt=fmt, out=out, operator=config.operator(args.user),
                                 now=time.time()) if note else None
        except (ArchiveError, EvidenceError, OSError) as why:
            note, done = f"{note}; but {why}", None
        if note:
            print(f"agentdeck evidence: {clean(note, 1000, single_line=True)}", file=sys.stderr)
        if done is None:
            return _fail(clean(exc, 500, single_line=True))
        text, detail = done
    except OSError as exc:
        return _cannot_write(out, exc)
    finally:
        conn.close()
    if out is None:
        sys.stdout.write(text)
    else:
        what = f"digest {detail['digest'][:16]}…" if "digest" in detail else f"{detail['events']} events"
        # The task id comes from a trace: never echo its control characters to the terminal.
        print(f"wrote {detail['format']} for {clean(detail['task_id'], 200, single_line=True)} to {out} ({what}, "
              f"{detail['redactions']} secrets redacted)", file=sys.stderr)
    return 0


def _fail(message: str) -> int:
    """Every refusal of this command: one line on stderr, exit 2 (docs/cli.md)."""
    print(f"agentdeck evidence: {message}", file=sys.stderr)
    return 2


def _cannot_write(out: Path | None, exc: OSError) -> int:
    return _fail(f"cannot write {out}: {exc.strerror or exc}")


def _export_case(args: argparse.Namespace, db: Path, out: Path | None) -> int:
    """The incident as a suite case: written, then recorded in the audit trail like every export."""
    import json

    from agentdeck.console.safe import clean
    from agentdeck.replay.suite.incident import IncidentError, case_from_task
    from agentdeck.store import audit
    from agentdeck.store.db import connect
    from agentdeck.store.txn import atomic

    conn = connect(db)
    try:
        with atomic(conn):
            try:
                case, redactions = case_from_task(conn, args.task)
            except IncidentError as exc:
                return _fail(clean(exc, 500, single_line=True))
            text = json.dumps(case.model_dump(), indent=2, ensure_ascii=True) + "\n"
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_name(out.name + ".tmp")
                tmp.write_text(text, encoding="utf-8")
                tmp.replace(out)
            detail = {"format": "case", "task_id": case.source.get("incident"), "case_id": case.id,
                      "redactions": redactions, "path": str(out) if out is not None else "-"}
            audit.append(conn, ts=time.time(), actor=config.operator(args.user), kind="evidence.export",
                         subject=str(case.source.get("incident")), detail=detail)
        audit.checkpoint(conn)  # anchor the export record outside the store (docs/evidence.md)
    except OSError as exc:
        return _cannot_write(out, exc)
    finally:
        conn.close()
    if out is None:
        sys.stdout.write(text)
    else:
        print(f"wrote case {clean(case.id, 200, single_line=True)} to {out} ({redactions} secrets redacted); "
              f"add it to a suite folder and run `agentdeck suite run`", file=sys.stderr)
    return 0
