"""Import trace files or folders into the store (headless), optionally following them.

Each line is committed exactly once: run it again, or kill it and run it
again, and only what is new is read. A folder's *.jsonl, *.ndjson and *.json
files are read, and those in its subfolders (as `check` does; contracts/,
outbox/ and hidden folders are skipped; with --follow, subfolders created
later are picked up too); a file path is read whatever its name. Lines that
are not valid events go to the store's 'rejects' table (exit status 0: they
are kept, not lost).

A last line without a newline is left for later (a writer may be in the
middle of it): a one-shot run says how many bytes at the end of which file
it did not import; run it again once the line is finished.

Exit status: 0 everything given was read to its end; 1 something was read
but not imported: a file ends in a line with no newline yet, or a
post-commit check failed; 2 usage error, a path missing or unreadable (e.g.
a FIFO, no permission; the other paths are still read), or the store cannot
be used (full, read-only, locked, damaged), or a file none of whose lines is
a trace event (e.g. README.md given by mistake), or a damaged .jsonl.gz archive; 130 interrupted (Ctrl-C; what
was committed stays). With --follow, Ctrl-C is how it stops: 0.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from pathlib import Path

from agentdeck.store.processes import stop_on_signals
from agentdeck.store import config


# Above this much to read, parsing is spread over worker processes.
BULK_BYTES = 16 * 1024 * 1024


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="trace files or folders")
    p.add_argument("--follow", action="store_true",
                   help="keep following the paths for new lines and new files (Ctrl-C to stop)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--workers", type=_workers, metavar="N",
                   help="processes that parse a large backlog in parallel (default: one per core, at most four; 0: none)")


def _workers(text: str) -> int:
    from agentdeck.console.argtypes import positive_int

    return 0 if text.strip() == "0" else positive_int(text)


def _total_bytes(paths: list[Path]) -> int:
    total = 0
    for p in paths:  # (folders already expanded to their subfolders)
        try:
            if p.is_file():
                total += p.stat().st_size
            elif p.is_dir():
                total += sum(f.stat().st_size for f in p.iterdir() if f.is_file())
        except OSError:
            pass  # the tailer reports what it cannot read
    return total


def _also(first, then):
    def both(batch) -> None:
        first(batch)
        then(batch)

    return both


def _not_traces(conn, paths: set[str]) -> list[tuple[str, int]]:
    """Files read in this run none of whose lines was a trace event (README.md given by mistake)."""
    found = []
    for path in sorted(paths):
        for lines, rejects in conn.execute("SELECT lines, rejects FROM sources WHERE path = ? AND inode > 0", (path,)):
            if lines > 0 and rejects >= lines:
                found.append((path, lines))
    return found


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from agentdeck.console.safe import clean
    from agentdeck.console.tracefolders import expand
    from agentdeck.store.db import connect
    from agentdeck.store.tailer import TailStats, Tailer
    from agentdeck.store.unread import unread_tails

    err = Console(stderr=True, highlight=False)

    def say(text: str) -> None:
        # File names and tailer messages may hold control characters: shown as visible escapes.
        err.print(f"agentdeck: {clean(text)}", markup=False, highlight=False, soft_wrap=True)

    given = [Path(p) for p in args.paths]
    missing = [p for p in given if not p.exists()]
    for p in missing:
        say(f"{p}: no such file or directory" + (" (waiting for it)" if args.follow else ""))
    if missing and not args.follow:
        given = [p for p in given if p.exists()]
        if not given:
            return 2
    paths = expand(given)
    db = config.db_path(args.db)
    try:
        conn = connect(db)
    except OSError as exc:  # (an unusable store file is named by the CLI's handler: full, read-only, locked, damaged)
        say(f"cannot open the store {db}: {exc.strerror or exc}")
        return 2
    totals = TailStats()
    started = time.perf_counter()
    # Tasks this run wrote are counted in the store at the end (every task row
    # written takes the time as updated_at), not kept in memory as ids.
    began = time.time()
    # Archives `agentdeck prune` wrote (*.jsonl.gz): read back here, each line stored once (store/archive.py).
    from agentdeck.store.archive import restore_paths

    paths, archives_failed = restore_paths(conn, paths, totals, say)
    backlog = _total_bytes(paths)
    pool = None
    if backlog > BULK_BYTES and args.workers != 0:
        from agentdeck.store.parallel import ParsePool, default_workers

        # Before any thread starts (the progress bar's): the workers are forked now.
        pool = ParsePool(args.workers or default_workers())
    progress = Progress(TextColumn("ingesting"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                        TextColumn("{task.fields[events]:,} events"), console=err,
                        disable=args.quiet or not err.is_terminal, transient=True)
    reported: dict[str, str] = {}
    interrupted = False

    def report_problems(problems: dict[str, str]) -> None:
        for path, problem in problems.items():
            if reported.get(path) != problem and not (Path(path) in missing and "no such file" in problem):
                say(f"{path}: {problem}")
        reported.clear()
        reported.update(problems)

    with progress:
        bar = progress.add_task("ingest", total=backlog or None, events=0)

        def on_batch(batch: TailStats) -> None:
            totals.events += batch.events
            totals.rejects += batch.rejects
            totals.files |= batch.files
            progress.update(bar, advance=batch.bytes, events=totals.events)

        # A large backlog is read with the tasks' secondary indexes built after it
        # (store/deferred_indexes.py); any read-write open of the store builds them at once.
        tailer = Tailer(conn, paths, on_batch=on_batch, parse_pool=pool, defer_indexes=True, keep_ids=False)
        if args.follow:
            # The tailer follows on a thread; this one reports problems as
            # they come and turns Ctrl-C into a clean stop.
            # Its health goes to the store too, for every console on it (store/ingest_status.py).
            from agentdeck.store.ingest_status import StatusRecorder

            status = StatusRecorder(connect(db), paths)
            status.tick({})
            tailer.on_batch = _also(status.on_batch, on_batch)
            stop = threading.Event()
            # SIGTERM (systemctl stop, kill, a supervisor) stops it as Ctrl-C does: between batches, and
            # its record in the store then says it stopped. Killed by the default action, it kept saying
            # "running" with a fresh heartbeat until consoles called it stalled, and counted as a live
            # ingester meanwhile.
            if threading.current_thread() is threading.main_thread():  # (only there can it take a signal)
                stop_on_signals(stop, (signal.SIGTERM,))
            worker = threading.Thread(target=tailer.run, args=(stop,), name="ingest", daemon=True)
            worker.start()
            try:
                while worker.is_alive():
                    worker.join(0.5)
                    report_problems(tailer.problems)
                    status.tick(tailer.problems)
                    # Subfolders created since: the tailer re-establishes its watch when its paths change.
                    now_paths = expand(given)
                    if now_paths != tailer.paths:
                        tailer.paths = now_paths
            except KeyboardInterrupt:
                pass
            finally:
                stop.set()
                # The tailer stops between batches: wait for the one in hand so
                # the summary counts everything committed. A second Ctrl-C
                # leaves at once (what was committed stays committed).
                try:
                    worker.join()
                except KeyboardInterrupt:
                    pass
                status.finish("stopped")
        else:
            try:
                tailer.poll()
            except KeyboardInterrupt:  # what was committed stays; a rerun reads on from there
                interrupted = True
    if pool is not None:
        pool.close()
    report_problems(tailer.problems)
    seconds = time.perf_counter() - started
    rate = totals.events / seconds if seconds > 0 else 0.0
    tasks = conn.execute("SELECT count(*) FROM tasks WHERE updated_at >= ?", (began,)).fetchone()[0]
    print(f"{totals.events} events, {tasks} tasks, {totals.rejects} rejects "
          f"in {seconds:.2f} s ({rate:,.0f} events/s) into {db}")
    if totals.rejects:
        print(f"rejected lines are in the 'rejects' table: sqlite-utils {db} 'select path, offset, error from rejects'")
    if interrupted:
        say("interrupted; run the same command again to read on from where it stopped")
        return 130
    tails = [] if args.follow else unread_tails(conn, [path for path, _, _ in tailer.files()])
    for tail in tails:
        say(tail.describe())
    not_traces = _not_traces(conn, totals.files)
    for path, lines in not_traces:
        say(f"{path}: not a trace file: none of its {lines} line{'s' * (lines != 1)} is a trace event "
            "(they are in the rejects table)")
    # (Problems were printed above; a follow run's are transient and end with Ctrl-C.)
    if not_traces and not args.follow:
        return 2
    if missing and not args.follow:
        return 2
    if not args.follow:
        hooks = [k for k in tailer.problems if k.startswith("(post-commit")]
        if len(hooks) < len(tailer.problems):
            return 2  # a path that could not be read, or the store refused a write
        if hooks:
            return 1
    if archives_failed:
        return 2  # a damaged archive (what came before the damage was stored)
    return 1 if tails else 0
