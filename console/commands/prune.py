"""Apply the retention rules: archive old tasks, remove them from the store, give the space back.

An ordinary task goes --raw-days (30) after its newest activity; a task that
carries an escalation, an action, a compensation or a violation goes
--notable-days (365) after it; the audit trail is never removed. Pruned
tasks' events are first written to <archive dir>/YYYY-MM-DD.jsonl.gz (our
trace format: `agentdeck ingest FILE` reads them back) and recorded in the
store with a digest. Settings come from the [retention] table of --config,
then the flags. See docs/retention.md.

Exit codes: 0 done (or, with --dry-run, planned); 2 no store, bad settings,
an archive that cannot be written as recorded, another prune is running, or
--compact could not run (the prune itself is done);
130 interrupted (what was done is consistent; run it again to go on).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys

from agentdeck.store import config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="say what would be removed and kept; change nothing")
    p.add_argument("--config", metavar="FILE", help="TOML file whose [retention] table holds the rules")
    p.add_argument("--raw-days", type=float, metavar="N", help="keep ordinary tasks N days (default 30)")
    p.add_argument("--notable-days", type=float, metavar="N",
                   help="keep tasks with an escalation, action, compensation or violation N days (default 365)")
    p.add_argument("--archive-dir", metavar="DIR", help="where archives go (default: <store>-archive beside it)")
    p.add_argument("--no-archive", action="store_true", help="remove without writing an archive (digests are still recorded)")
    p.add_argument("--batch-events", type=int, metavar="N", help="events archived per step (default 2000)")
    p.add_argument("--compact", action="store_true",
                   help="afterwards rewrite the file once (VACUUM; blocks writers while it runs) and switch the "
                        "store to incremental vacuum so later prunes shrink it as they go")
    p.add_argument("--list", action="store_true", help="name every task removed (or that would be)")
    p.add_argument("--json", action="store_true", help="the report as JSON on standard output")
    p.add_argument("--user", help="who prunes, for the audit trail (default: $AGENTDECK_USER, else the OS user)")


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def report_dict(r) -> dict:
    return {
        "dry_run": r.dry_run, "db": r.db, "archive_dir": r.archive_dir,
        "rules": {"raw_days": r.policy.raw_days, "notable_days": r.policy.notable_days, "audit": r.policy.audit,
                  "archive": r.policy.archive},
        "removed": {"tasks": r.removed_tasks, "events": r.removed_events, "notable_tasks": r.notable_removed},
        "archives": dict(r.archives), "kept": dict(r.kept),
        "changed_while_pruning": [{"task_id": t, "why": why} for t, why in r.changed],
        "resumed": r.resumed, "truncated_archives": r.truncated,
        "size": {"before": r.size_before, "after": r.size_after, "free_pages_before": r.free_pages_before,
                 "free_pages_after": r.free_pages_after, "page_size": r.page_size, "auto_vacuum": r.auto_vacuum},
        "seconds": round(r.seconds, 3), "interrupted": r.interrupted, "compact_error": r.compact_error, "problems": r.problems,
    }


def print_report(r, *, list_tasks: bool = False, out=None) -> None:
    from agentdeck.console.safe import clean

    def say(text: str) -> None:
        print(text, file=out or sys.stdout)

    verb = "would remove" if r.dry_run else "removed"
    say(f"{verb} {r.removed_tasks:,} tasks ({r.removed_events:,} events; {r.notable_removed:,} of them notable)")
    say(f"  rules: raw events {r.policy.raw_days:g} days, notable tasks {r.policy.notable_days:g} days, "
        "audit trail forever")
    if r.dry_run:
        where = f"archived to {r.archive_dir}/" if r.policy.archive else "NOT archived (--no-archive)"
        say(f"  they would be {where}")
    for path, n in sorted(r.archives.items()):
        say(f"  archived {n:,} tasks to {path}")
    if not r.dry_run and not r.policy.archive and r.removed_tasks:
        say("  no archive written (--no-archive): their digests are in archived_tasks and the audit trail")
    if r.resumed:
        say(f"  finished {r.resumed:,} tasks an earlier, stopped prune had archived")
    for path in r.truncated:
        say(f"  cut an earlier, stopped prune's unrecorded bytes off {path}")
    if list_tasks:
        changed = {task for task, _ in r.changed}
        for c in r.removed:
            if c.task_id in changed:
                continue
            say(f"    {clean(c.task_id, 200, single_line=True)}  {c.events} events  ({c.reason})")
    kept = sum(r.kept.values()) + len(r.changed)
    say(f"kept {kept:,} tasks:")
    for reason, n in r.kept.most_common():
        say(f"  {n:>8,}  {reason}")
    for task, why in r.changed:
        say(f"  {clean(task, 200, single_line=True)}: archived, then kept: {why}")
    if not r.dry_run:
        freed = (r.free_pages_after - r.free_pages_before) * r.page_size
        say(f"store: {_size(r.size_before)} -> {_size(r.size_after)} (file and WAL) in {r.seconds:.2f} s")
        if r.auto_vacuum != "incremental" and r.removed_tasks:
            say(f"  freed space ({_size(max(freed, 0))} in whole pages) is reused by new data; the file")
            say("  shrinks only after one `agentdeck prune --compact` (a full VACUUM: run it when")
            say("  little else writes; later prunes then shrink it as they go)")
    if r.compact_error:
        say(f"  --compact did not run: {r.compact_error}; the prune itself is done")
    for problem in r.problems:
        say(f"  {problem}")
    if r.interrupted:
        say("interrupted: what was done is consistent; run prune again to go on")


def run(args: argparse.Namespace) -> int:
    from agentdeck.store.archive import ArchiveError
    from agentdeck.store.db import connect
    from agentdeck.store.prune import PruneBusy, run_prune
    from agentdeck.store.retention import PolicyError, load_policy

    def fail(text: str) -> int:
        print(f"agentdeck prune: {text}", file=sys.stderr)
        return 2

    db = config.db_path(args.db)
    if not db.exists():
        return fail(f"no store at {db}")
    try:
        policy = load_policy(args.config, raw_days=args.raw_days, notable_days=args.notable_days,
                             archive_dir=args.archive_dir, batch_events=args.batch_events,
                             archive=False if args.no_archive else None)
    except PolicyError as exc:
        return fail(str(exc))
    try:
        conn = connect(db)
    except (sqlite3.Error, OSError) as exc:
        return fail(f"cannot open the store {db}: {exc}")
    try:
        report = run_prune(conn, policy, dry_run=args.dry_run, actor=config.operator(args.user), compact=args.compact)
    except PruneBusy as exc:
        return fail(str(exc))
    except ArchiveError as exc:
        return fail(f"{exc}; nothing was removed that is not archived")
    except OSError as exc:
        return fail(f"cannot write the archive: {exc}; nothing was removed that is not archived")
    except KeyboardInterrupt:
        print("agentdeck prune: interrupted; what was done is consistent; run it again to go on", file=sys.stderr)
        return 130
    finally:
        conn.close()
    if args.json:
        json.dump(report_dict(report), sys.stdout, indent=2)
        print()
    else:
        print_report(report, list_tasks=args.list)
    if report.interrupted:
        return 130
    return 2 if report.compact_error else 0
