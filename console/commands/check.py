"""Check recorded traces against the agents' operating contracts (exit 1 on violations).

Every task in the given JSONL files or folders (searched recursively) is
checked exactly as ingestion checks it: the same decoder, the same
post-commit contract check, in a throwaway in-memory store (--db is not
used). Contracts come from --contracts (else $AGENTDECK_CONTRACTS), then a
contracts/ folder beside the traces, then the bundled sample contracts.

With --store, the tasks already in the store (--db) are checked again
instead, and their recorded violations replaced: run it after changing a
contract, which otherwise applies to tasks as their next events arrive.

A last line without a newline is not read (tailing waits for the newline);
check says how many bytes at the end of which file it did not read, and
fails, so a gate never passes a file it did not read to the end.

Exit status: 0 no violations, 1 violations, unreadable lines, a file not read
to its end (no newline after its last line, or unreadable) (or, with
--strict, tasks whose agent has no contract), 2 usage error or nothing to
check: a missing path or one that is not a file or folder, a file none of
whose lines is a trace event (e.g. README.md), no trace events at all, an
unusable contract file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="PATH", help="trace files or folders (e.g. recorded incident scenarios)")
    p.add_argument("--store", action="store_true", help="re-check every task in the store (--db) instead of files")
    p.add_argument("--contracts", action="append", metavar="DIR",
                   help="folder of contract .toml files (repeatable; default: $AGENTDECK_CONTRACTS)")
    p.add_argument("--strict", action="store_true", help="fail when a task's agent has no contract")
    p.add_argument("--diff", action="store_true",
                   help="with --store and --contracts NEW_DIR: backtest the new contracts against the stored tasks "
                        "and list the tasks whose violations or required escalations would change (writes nothing; "
                        "exit 1 when any would)")


def trace_files(paths: list[Path]) -> list[Path]:
    """The trace files under ``paths``: each file given, and matching files in each folder and its subfolders."""
    from agentdeck.console.tracefolders import expand
    from agentdeck.store.tailer import PATTERNS

    files: list[Path] = []
    for p in expand(paths):
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files += sorted(f for f in p.iterdir() if f.is_file() and any(f.match(pat) for pat in PATTERNS))
    return files


def clean(text: object, limit: int | None = None, *, single_line: bool = False) -> str:
    from agentdeck.console.safe import clean as _clean  # rich: only when there is something to print

    return _clean(text, limit, single_line=single_line)


def _err(msg: str) -> None:
    print(f"agentdeck check: {clean(msg)}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from agentdeck.store import contract as ct
    from agentdeck.store.db import connect
    from agentdeck.store.tailer import Tailer
    from agentdeck.store.unread import unread_tails

    if args.diff:
        if not (args.store and args.contracts):
            _err("--diff backtests a contract change: use it with --store and --contracts NEW_DIR")
            return 2
        return _backtest(args)
    if args.store:
        return _recheck_store(args)
    if not args.paths:
        _err("give trace files or folders to check, or --store")
        return 2
    paths = [Path(p) for p in args.paths]
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        _err(f"{p}: no such file or directory")
    if missing:
        return 2
    odd = [p for p in paths if not (p.is_file() or p.is_dir())]  # e.g. a FIFO: never read to an end
    for p in odd:
        _err(f"{p}: not a regular file or folder")
    if odd:
        return 2
    dirs = ct.contract_dirs(args.contracts, paths)
    book = ct.load_book(dirs)
    if book.problems:
        for problem in book.problems:
            _err(problem)
        return 2
    files = trace_files(paths)
    if not files:
        from agentdeck.store.tailer import PATTERNS

        _err(f"no trace files ({', '.join(PATTERNS)}) in {', '.join(map(str, paths))}: nothing to check")
        return 2
    conn = connect(Path(":memory:"))
    hook = ct.ContractCheck(dirs)
    tailer = Tailer(conn, files, post_commit=[hook])
    tailer.poll()
    # What the pass could not read (a file's problem, a failed contract check)
    # or left for later (a last line with no newline): never "no violations".
    unread = [f"{path}: {problem}" for path, problem in tailer.problems.items()]
    unread += [tail.describe() for tail in unread_tails(conn, files)]
    return report(conn, book, args.strict, f"{len(files)} files", unread)


def _recheck_store(args: argparse.Namespace) -> int:
    from agentdeck.store import config
    from agentdeck.store import contract as ct
    from agentdeck.store.db import connect

    db = config.db_path(args.db)
    if not db.exists():
        _err(f"no store at {db}")
        return 2
    conn = connect(db)
    book = ct.book_for_store(conn, args.contracts)
    if book.problems:
        for problem in book.problems:
            _err(problem)
        return 2
    ids = [r[0] for r in conn.execute("SELECT task_id FROM tasks ORDER BY task_id")]
    for i in range(0, len(ids), 500):
        ct.recheck(conn, book, ids[i:i + 500])
    return report(conn, book, args.strict, str(db), from_files=False)


def _backtest(args: argparse.Namespace) -> int:
    from agentdeck.store import backtest
    from agentdeck.store import config
    from agentdeck.store import contract as ct
    from agentdeck.store.db import connect

    db = config.db_path(args.db)
    if not db.exists():
        _err(f"no store at {db}")
        return 2
    missing = [d for d in args.contracts if not Path(d).is_dir()]
    for d in missing:
        _err(f"{d}: not a folder of contracts")
    if missing:
        return 2
    conn = connect(db, readonly=True)
    old = ct.book_for_store(conn)
    new = ct.load_book(Path(d) for d in args.contracts)
    if old.problems or new.problems:
        for problem in old.problems + new.problems:
            _err(problem)
        return 2
    result = backtest.backtest(conn, old, new)
    for c in result.changes:
        who = f"{clean(c.task_id, 200, single_line=True)} ({clean(c.agent, 80, single_line=True)} " \
              f"{clean(c.version, 40, single_line=True)})"
        for v in c.added:
            print(f"{who}: + seq {v.seq} {v.rule}: {clean(v.detail, 300, single_line=True)}")
        for v in c.removed:
            print(f"{who}: - seq {v.seq} {v.rule}: {clean(v.detail, 300, single_line=True)}")
        for seq, name, why in c.newly_gated:
            print(f"{who}: + seq {seq} {clean(name, 120, single_line=True)} would need an approved escalation "
                  f"({clean(why, 200, single_line=True)})")
        for seq, name, why in c.no_longer_gated:
            print(f"{who}: - seq {seq} {clean(name, 120, single_line=True)} would no longer need approval "
                  f"(was: {clean(why, 200, single_line=True)})")
    agents = ", ".join(sorted(clean(a, 80, single_line=True) for a in result.agents_changed)) or "none"
    added = sum(len(c.added) for c in result.changes)
    removed = sum(len(c.removed) for c in result.changes)
    gated = sum(len(c.newly_gated) for c in result.changes)
    ungated = sum(len(c.no_longer_gated) for c in result.changes)
    print(f"{len(result.changes)} of {result.tasks} tasks would change under {', '.join(args.contracts)} "
          f"(contracts changed: {agents}): +{added} -{removed} violations, +{gated} -{ungated} required escalations")
    return 1 if result.changes else 0


def not_trace_files(conn) -> list[tuple[str, int, str]]:
    """``(path, lines, first error)`` of each file whose every line was rejected."""
    return [(r[0], r[1], r[2] or "") for r in conn.execute(
        """SELECT s.path, s.lines, (SELECT error FROM rejects j WHERE j.source_id = s.id ORDER BY offset LIMIT 1)
           FROM sources s WHERE s.lines > 0 AND s.rejects >= s.lines ORDER BY s.path""")]


def report(conn, book, strict: bool, where: str, unread: list[str] | None = None, *, from_files: bool = True) -> int:
    """Print every violation, unreadable line and part not read (``unread``); the exit status."""
    unread = unread or []
    tasks = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    rows = conn.execute(
        """SELECT v.task_id, v.seq, v.rule, v.detail,
                  (SELECT s.path FROM events e JOIN sources s ON s.id = e.source_id
                   WHERE e.task_id = v.task_id AND e.seq = v.seq LIMIT 1) AS path
           FROM violations v ORDER BY path, v.task_id, v.seq, v.rule"""
    ).fetchall()
    for r in rows:
        print(f"{clean(r['path'] or '?')}: task {clean(r['task_id'], 200, single_line=True)} seq {r['seq']} "
              f"{r['rule']}: {clean(r['detail'], 500, single_line=True)}")
    # A file none of whose lines is a trace event (README.md, a CSV): said once, not line by line.
    not_traces = not_trace_files(conn) if from_files else []  # (the store's history is not this run's input)
    for path, lines, first in not_traces:
        _err(f"{path}: not a trace file: none of its {lines} line{'s' * (lines != 1)} is a trace event "
             f"(first: {clean(first, 200, single_line=True)})")
    skip = {path for path, _, _ in not_traces}
    rejects = [r for r in conn.execute("SELECT path, offset, error FROM rejects ORDER BY path, offset")
               if r["path"] not in skip]
    for r in rejects:
        print(f"{clean(r['path'])}: rejected line at byte {r['offset']}: {clean(r['error'], 300, single_line=True)}")
    unchecked = conn.execute(
        "SELECT coalesce(agent, '(no task_start)') AS agent, count(*) AS n FROM tasks GROUP BY agent ORDER BY agent"
    ).fetchall()
    unchecked = [(r["agent"], r["n"]) for r in unchecked if book.get(r["agent"]) is None]
    for agent, n in unchecked:
        _err(f"no contract for agent {agent} ({n} task{'s' * (n != 1)} unchecked)")
    for problem in unread:
        _err(problem)

    failed_tasks = len({r["task_id"] for r in rows})
    if not_traces or not (tasks or unread):
        # Never "0 tasks: no violations": a gate that checked nothing must not look like a pass.
        print(f"nothing checked in {where}: no trace events" if not tasks else
              f"{len(rows)} violation{'s' * (len(rows) != 1)} in {failed_tasks} of {tasks} tasks ({where}), "
              f"but {len(not_traces)} file{'s' * (len(not_traces) != 1)} not traces (see above)")
        return 2
    if rows:
        print(f"{len(rows)} violation{'s' * (len(rows) != 1)} in {failed_tasks} of {tasks} tasks ({where})")
    elif unread:
        print(f"{tasks} tasks in {where}: no violations in what was read, "
              f"but {len(unread)} part{'s' * (len(unread) != 1)} not read (see above)")
    else:
        print(f"{tasks} tasks in {where}: no violations")
    if rows or rejects or unread or (strict and unchecked):
        return 1
    return 0
