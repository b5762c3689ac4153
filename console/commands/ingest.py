"""Import trace files or folders into the store (headless), optionally following them."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from store import config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="trace files or folders")
    p.add_argument("--follow", action="store_true", help="keep following the paths for new lines (Ctrl-C to stop)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _total_bytes(paths: list[Path]) -> int:
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.iterdir() if f.is_file())
    return total


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from store.db import connect
    from store.tailer import TailStats, Tailer

    err = Console(stderr=True)
    paths = [Path(p) for p in args.paths]
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        err.print(f"agentdeck: {p}: no such file or directory", markup=False, highlight=False)
    if missing and not args.follow:
        paths = [p for p in paths if p.exists()]
        if not paths:
            return 1
    db = config.db_path(args.db)
    conn = connect(db)
    totals = TailStats()
    started = time.perf_counter()
    progress = Progress(TextColumn("ingesting"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                        TextColumn("{task.fields[events]:,} events"), console=err,
                        disable=args.quiet or not err.is_terminal, transient=True)

    with progress:
        bar = progress.add_task("ingest", total=_total_bytes(paths) or None, events=0)

        def on_batch(batch: TailStats) -> None:
            totals.events += batch.events
            totals.rejects += batch.rejects
            totals.tasks |= batch.tasks
            progress.update(bar, advance=batch.bytes, events=totals.events)

        tailer = Tailer(conn, paths, on_batch=on_batch)
        if args.follow:
            stop = threading.Event()
            try:
                tailer.run(stop)
            except KeyboardInterrupt:
                stop.set()
        else:
            tailer.poll()
    seconds = time.perf_counter() - started
    for path, problem in tailer.problems.items():
        err.print(f"agentdeck: {path}: {problem}", markup=False, highlight=False)
    rate = totals.events / seconds if seconds > 0 else 0.0
    print(f"{totals.events} events, {len(totals.tasks)} tasks, {totals.rejects} rejects "
          f"in {seconds:.2f} s ({rate:,.0f} events/s) into {db}")
    if totals.rejects:
        print(f"rejected lines are in the 'rejects' table: sqlite-utils {db} 'select path, offset, error from rejects'")
    return 1 if missing else 0
