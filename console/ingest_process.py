"""The console's ingest process: follows trace paths into the store, beside the UI.

    python -m agentdeck.console.ingest_process --db DB [--heartbeat S] [--with-parent] [--no-canary]
                                               [--wake-fd FD] PATH...

The console starts one of these (console/ingest_service.py) so the tailer's
parsing and commits never compete with Textual for one interpreter. It
records its health in the store (store/ingest_status.py), where every
console on the store reads it. No textual import here: it starts fast.

Beside the tailer, a child process keeps the latest canary reports in the
store (store/canary_reports.py: after commits, throttled), so the
Canary screen reads one row instead of computing on open.

Ends on SIGTERM or SIGINT (between batches: what was read is committed),
and with ``--with-parent`` when its stdin closes, i.e. when the console
that started it is gone, even by kill -9. Exit status: 0 stopped when asked,
1 the tailer failed, 2 the store cannot be opened.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import threading
import time
import traceback
from pathlib import Path

from agentdeck.console.argtypes import positive_float
from agentdeck.store.ingest_status import HEARTBEAT_S, StatusRecorder

TICK_S = 0.2  # how often problems are looked at (a new one is in the store within this)
EXPAND_S = 1.0  # how often folders are searched for new subfolders
ANALYST_RESTART_S = 10.0  # a canary analyst that died is started again at most this often
# The analyst in a session of its own, not this process's. Linux schedules each session as one group
# (autogroup, on by default): CPU is shared fairly between sessions first, then between the processes of
# each. In our session the analyst's rounds (seconds of CPU) use up the share the tailer needs to commit,
# and the tailer then waits behind every other session on the machine. Its own session: append ->
# committed p95 51-67 ms against 71-107 ms in two interleaved pairs of runs (load 9, bench/README.md).
# (The 574-1117 ms p95 bench/console.py printed before was the bench starting its fleet before this
# process was up, not this.) It still ends when our end of its stdin closes (we exit, even by kill -9),
# which does not depend on the session.
ANALYST_OWN_SESSION = True


def _say(text: str) -> None:
    print(f"agentdeck ingest: {text}", file=sys.stderr, flush=True)


analyst_started: dict[str, float] = {}

# bench/live.py sets it for the console's ingest process it cannot pass flags to (the console starts it).
COMMIT_TRACE_ENV = "AGENTDECK_BENCH_COMMIT_TRACE"


def _traced(on_batch, tailer, path: str):
    """``on_batch`` that also appends one JSON line per commit to ``path``: woken, committed (wall times), tasks."""
    import json

    out = open(path, "a", buffering=1)

    def traced(batch) -> None:
        out.write(json.dumps({"woke": tailer.woke_at, "committed": tailer.committed_at, "told": time.time(), "tasks": sorted(batch.tasks)}) + "\n")
        on_batch(batch)

    return traced


def _start_analyst(db: str, ingester: str):
    """The canary analyst as a child process (store/canary_reports.py ``main``): a round
    is seconds of CPU on a large store, which must not hold this process's interpreter while the tailer
    commits. It ends when our end of its stdin closes (we exit, even by kill -9)."""
    import subprocess

    analyst_started["at"] = time.monotonic()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "agentdeck.store.canary_reports", "--db", db,
                                 "--ingester", ingester], stdin=subprocess.PIPE, start_new_session=ANALYST_OWN_SESSION)
    except OSError as exc:
        note = f"canary reports not kept (the analyst did not start: {exc}); the Canary screen computes them"
        _say(note)
        return None, note
    return proc, ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="agentdeck-ingest")
    p.add_argument("--db", required=True)
    p.add_argument("--heartbeat", type=positive_float, default=HEARTBEAT_S)
    p.add_argument("--with-parent", action="store_true", help="stop when stdin closes (the parent is gone)")
    p.add_argument("--no-canary", action="store_true", help="do not keep canary reports in the store")
    p.add_argument("--batch-wait", type=positive_float, default=None,
                   help="seconds appends are gathered at most before a commit (the tailer's default if not given)")
    p.add_argument("--wake-fd", type=int, default=None, metavar="FD",
                   help="write a byte to this descriptor after each commit (the console's store watcher waits on it)")
    p.add_argument("--commit-trace", default=os.environ.get(COMMIT_TRACE_ENV) or None, metavar="FILE",
                   help="append a line per commit to FILE: when the tailer woke, committed, and was done with it (hooks), the tasks "
                        "(bench/live.py's hop budget; default from $" + COMMIT_TRACE_ENV + ")")
    p.add_argument("paths", nargs="+")
    args = p.parse_args(argv)

    from agentdeck.store.db import connect
    from agentdeck.store.tailer import Tailer

    stop = threading.Event()
    from agentdeck.store.processes import stop_on_signals

    stop_on_signals(stop)
    if args.with_parent:
        from agentdeck.store.processes import stop_when_parent_goes

        stop_when_parent_goes(stop)

    from agentdeck.console.tracefolders import expand

    given = [Path(x) for x in args.paths]
    paths = expand(given)  # folders and their subfolders, as `agentdeck ingest` reads them
    try:
        conn = connect(args.db)
        status_conn = connect(args.db)
    except (sqlite3.Error, OSError) as exc:
        _say(f"cannot open the store {args.db}: {exc}")
        return 2
    recorder = StatusRecorder(status_conn, given, heartbeat=args.heartbeat)
    try:
        recorder.start()
    except sqlite3.Error as exc:
        _say(f"cannot write to the store {args.db}: {exc}")
        return 2

    pool = None
    from agentdeck.console.commands.ingest import BULK_BYTES, _total_bytes

    if _total_bytes(paths) > BULK_BYTES:
        from agentdeck.store.parallel import ParsePool, default_workers

        pool = ParsePool(default_workers())  # forked now, before any thread starts
    from agentdeck.store.checkpointer import Checkpointer, hand_over

    # Checkpoints off the commit path (store/checkpointer.py): no tailer commit pays for one.
    # (Measured against SQLite's default in bench/README.md, "30 Nov, loop 2".) Started after the
    # parse processes are forked: a fork must not copy a thread's half-held SQLite state.
    for writer in (conn, status_conn):
        hand_over(writer)
    checkpointer = Checkpointer(args.db, stop)
    checkpointer.start()
    failure: list[str] = []

    def follow() -> None:
        try:
            if args.batch_wait is None:
                tailer.run(stop)
            else:
                tailer.run(stop, debounce_ms=max(1, round(args.batch_wait * 1000)))
        except BaseException as exc:  # noqa: BLE001 - said in the store and on stderr, then exit 1
            failure.append(f"{type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
            stop.set()

    from agentdeck.console.commit_wake import committer

    tailer = Tailer(conn, paths, on_batch=recorder.on_batch, on_commit=committer(args.wake_fd), parse_pool=pool)
    if args.commit_trace:
        tailer.on_batch = _traced(recorder.on_batch, tailer, args.commit_trace)
    worker = threading.Thread(target=follow, name="tailer", daemon=True)
    worker.start()
    analyst = None
    analyst_note = ""
    if not args.no_canary:
        analyst, analyst_note = _start_analyst(args.db, recorder.ingester)
    reported: dict[str, str] = {}
    expanded_at = time.monotonic()
    while worker.is_alive():
        worker.join(TICK_S)
        if time.monotonic() - expanded_at >= EXPAND_S:
            # Subfolders created since: the tailer re-establishes its watch when its paths change.
            expanded_at = time.monotonic()
            now_paths = expand(given)
            if now_paths != tailer.paths:
                tailer.paths = now_paths
        problems = dict(tailer.problems)
        if analyst is not None and analyst.poll() is not None:
            # It died (it never exits on its own while we run): say so, and start another (not in a loop).
            analyst_note = (f"the canary analyst stopped (exit {analyst.returncode}); restarted (at most every "
                            f"{ANALYST_RESTART_S:.0f} s); the Canary screen computes reports itself meanwhile")
            if time.monotonic() - analyst_started.get("at", 0) >= ANALYST_RESTART_S:
                analyst, _ = _start_analyst(args.db, recorder.ingester)
        if analyst_note:
            problems["(canary)"] = analyst_note
            if analyst is not None and analyst.poll() is None and \
                    time.monotonic() - analyst_started.get("at", 0) > 60:
                analyst_note = ""  # running a minute again: the problem is over
        if recorder.error:
            problems["(status)"] = f"cannot record ingest status: {recorder.error}"
        checkpoints = checkpointer.problem()
        if checkpoints:
            problems["(checkpoints)"] = checkpoints
        recorder.tick(problems)
        for source, detail in problems.items():
            if reported.get(source) != detail:
                _say(f"{source}: {detail}")
        reported = problems
    checkpointer.join(5)  # its last round copies what the tailer committed last
    if pool is not None:
        pool.close()
    if analyst is not None:
        analyst.terminate()
        try:
            analyst.wait(5)
        except Exception:  # noqa: BLE001 - it also ends when our stdin pipe to it closes at exit
            analyst.kill()
    if failure:
        recorder.finish("failed", failure[0])
        _say(f"the tailer failed: {failure[0]}")
        return 1
    recorder.finish("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
