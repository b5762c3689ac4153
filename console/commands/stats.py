"""Show the store's size by table, its growth per day and what the retention rules would free.

Sizes are measured with SQLite's dbstat table when available (indexes
counted with their table), else estimated (marked so). Growth is the tasks
that started on each of the last --days days and their events, times what an
event costs in this store. "Would free" applies the retention rules (same
settings as `agentdeck prune`) without changing anything. Read-only.

Exit codes: 0 shown; 2 no store, or bad retention settings.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from dataclasses import asdict

from agentdeck.store import config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--days", type=int, default=7, metavar="N", help="growth over the last N days (default 7)")
    p.add_argument("--config", metavar="FILE", help="TOML file whose [retention] table holds the rules")
    p.add_argument("--raw-days", type=float, metavar="N", help="as for prune (default 30)")
    p.add_argument("--notable-days", type=float, metavar="N", help="as for prune (default 365)")
    p.add_argument("--json", action="store_true", help="as JSON on standard output")


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return str(n)


def run(args: argparse.Namespace) -> int:
    from agentdeck.store.db import connect
    from agentdeck.store.retention import PolicyError, load_policy
    from agentdeck.store.store_stats import collect

    db = config.db_path(args.db)
    if not db.exists():
        print(f"agentdeck stats: no store at {db}", file=sys.stderr)
        return 2
    if args.days < 1:
        print("agentdeck stats: --days must be at least 1", file=sys.stderr)
        return 2
    try:
        policy = load_policy(args.config, raw_days=args.raw_days, notable_days=args.notable_days)
    except PolicyError as exc:
        print(f"agentdeck stats: {exc}", file=sys.stderr)
        return 2
    try:
        conn = connect(db, readonly=True)
        s = collect(conn, policy, time.time(), days=args.days)
    except sqlite3.Error as exc:
        print(f"agentdeck stats: cannot read the store {db}: {exc}", file=sys.stderr)
        return 2
    conn.close()
    if args.json:
        json.dump({**asdict(s), "per_day": s.per_day}, sys.stdout, indent=2)
        print()
        return 0
    print(f"store {db}: {_size(s.file_bytes + s.wal_bytes)} (file {_size(s.file_bytes)}, WAL {_size(s.wal_bytes)}); "
          f"{s.free_pages:,} free pages ({_size(s.free_pages * s.page_size)}); auto_vacuum {s.auto_vacuum}")
    how = "measured with dbstat" if s.measured else "ESTIMATED (this SQLite has no dbstat)"
    print(f"\n{'table':<20} {'rows':>12} {'size':>11}   ({how}; indexes counted with their table)")
    for t in s.tables:
        print(f"{t.name:<20} {t.rows:>12,} {_size(t.bytes):>11}")
    print(f"\ngrowth (tasks by the day they started, last {args.days} days; ≈ {_size(s.bytes_per_event)} an event):")
    for g in s.growth:
        print(f"  {g.day}  {g.tasks:>9,} tasks {g.events:>11,} events  ≈ {_size(g.bytes)}")
    if not s.growth:
        print("  (no tasks started in that time)")
    print(f"  average ≈ {_size(s.per_day)} a day over the days with tasks")
    print(f"\nretention (raw {policy.raw_days:g} days, notable {policy.notable_days:g} days, audit forever): "
          f"would remove {s.would_remove_tasks:,} tasks ({s.would_remove_events:,} events), "
          f"freeing ≈ {_size(s.would_free_bytes)}; keeps {sum(s.kept.values()):,} tasks")
    for reason, n in sorted(s.kept.items(), key=lambda kv: -kv[1]):
        print(f"  {n:>9,}  {reason}")
    if s.archive_files:
        print(f"  archives written so far: {s.archive_files:,} files, {_size(s.archive_bytes)} (docs/retention.md)")
    if s.auto_vacuum != "incremental":
        print("  (freed pages are reused by new data; the file shrinks after one `agentdeck prune --compact`)")
    return 0
