"""Run an agent on a regression suite of recorded cases before it meets any traffic (exit 1 when a case fails).

    agentdeck suite run SUITE_DIR --agent-cmd CMD [-j N] [--repeat N] [--timeout S]
                        [--baseline-cmd CMD2] [--json] [--junit FILE] [--out DIR] [--contracts DIR]

Each case (a JSON file; docs/suite.md) is given to a fresh process of CMD on
its stdin; the agent's tool calls are answered from the case (a call the case
does not cover fails the run: nothing live is called); the agent's trace is
ingested into a throwaway store and judged against the case's expectation
and the agent's contract. Traces are kept under --out (default
var/suite/<time>/) so a failing case can be replayed.

The results are recorded in the store (--db; --no-record skips it) under
the agent and version the traces reported, so the console's Canary screen
shows them beside that version (docs/suite.md, "In the console").

Exit status: 0 every case passed (every run, with --repeat); 1 a case failed
or is flaky, or regressed against --baseline-cmd; 2 usage error (no suite, an
unusable case file, an agent command that cannot start).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="suite_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="run the agent on every case of a suite",
                         description="Run the agent on every case of a suite and judge each run.")
    run.add_argument("suite", metavar="SUITE_DIR", help="folder of case files (*.json, searched recursively)")
    run.add_argument("--agent-cmd", required=True, metavar="CMD",
                     help="the agent under test, as a command line (started once a run, no shell)")
    run.add_argument("--baseline-cmd", metavar="CMD",
                     help="also run this version and list the cases that regressed and improved")
    run.add_argument("-j", "--jobs", type=_positive, default=1, metavar="N", help="cases run at once (default 1)")
    run.add_argument("--repeat", type=_positive, default=1, metavar="N",
                     help="run each case N times and report pass rates with an interval (default 1)")
    run.add_argument("--timeout", type=float, default=30.0, metavar="S",
                     help="seconds a run may take before the agent is killed and the run fails (default 30)")
    run.add_argument("--contracts", action="append", metavar="DIR",
                     help="contract folder (default: $AGENTDECK_CONTRACTS, then the bundled contracts)")
    run.add_argument("--out", metavar="DIR", help="where traces go (default var/suite/<time>/)")
    run.add_argument("--json", action="store_true", help="print the results as JSON")
    run.add_argument("--junit", metavar="FILE", help="also write JUnit XML for CI systems")
    # Also accepted after "run" (the parent's --db must come before it otherwise).
    run.add_argument("--db", default=argparse.SUPPRESS, help="the store the results are recorded in")
    run.add_argument("--no-record", action="store_true",
                     help="do not record the results in the store (--db); the Canary screen shows recorded runs")
    run.set_defaults(_suite_run=run_suite_command)
    schema = sub.add_parser("schema", help="print the case format's JSON Schema",
                            description="Print the JSON Schema of a suite case (docs/suite-case-schema.json).")
    schema.set_defaults(_suite_run=print_schema)


def print_schema(args: argparse.Namespace) -> int:
    from agentdeck.replay.suite.case import schema

    print(json.dumps(schema(), indent=2))
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _err(message: str) -> None:
    from agentdeck.console.safe import clean

    print(f"agentdeck suite: {clean(message, 1000, single_line=True)}", file=sys.stderr)


def _record(db: str | None, result, started: float, finished: float) -> None:
    """Keep the run's verdicts in the store for the Canary screen; a store that refuses is said, not fatal."""
    import sqlite3

    from agentdeck.console.cli import store_problem
    from agentdeck.replay.suite.record import record
    from agentdeck.store import config
    from agentdeck.store.db import connect

    path = config.db_path(db)
    try:
        conn = connect(path)
        try:
            run_id = record(conn, result, started=started, finished=finished)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        _err(f"results not recorded: {store_problem(exc, db)} (rerun, or pass --no-record)")
        return
    agent, version = result.tested()
    print(f"recorded as suite run {run_id} of {agent or '?'} {version or '?'} in {path}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:  # the subcommand sets its own _run
    return args._suite_run(args)


def run_suite_command(args: argparse.Namespace) -> int:
    import shlex
    import shutil

    from agentdeck.console.safe import clean
    from agentdeck.replay.suite import report, runner
    from agentdeck.replay.suite.case import load_suite
    from agentdeck.store import contract as ct

    folder = Path(args.suite)
    if not folder.is_dir():
        _err(f"{folder}: not a folder of cases")
        return 2
    cases, problems = load_suite(folder)
    for problem in problems:
        _err(problem)
    if problems:
        return 2
    if not cases:
        _err(f"{folder}: no case files (*.json) in it")
        return 2
    if args.timeout <= 0:
        _err("--timeout must be more than 0 seconds")
        return 2
    commands = [("candidate", args.agent_cmd)] + ([("baseline", args.baseline_cmd)] if args.baseline_cmd else [])
    for _, cmd in commands:
        try:
            argv = shlex.split(cmd)
        except ValueError as exc:
            _err(f"cannot parse the command {cmd!r}: {exc}")
            return 2
        if not argv or shutil.which(argv[0]) is None:
            _err(f"cannot start {cmd!r}: {argv[0] if argv else '(empty)'} not found")
            return 2
    out = Path(args.out) if args.out else Path("var") / "suite" / time.strftime("%Y%m%d-%H%M%S")
    dirs = ct.contract_dirs(args.contracts)
    book = ct.load_book(dirs)
    if book.problems:
        for problem in book.problems:
            _err(problem)
        return 2
    results = {}
    for label, cmd in commands:
        where = out / label if len(commands) > 1 else out
        started = time.time()
        results[label] = runner.run_suite(cmd, cases, where, jobs=args.jobs, repeat=args.repeat,
                                          timeout=args.timeout, contract_dirs=dirs)
        if not args.no_record:
            _record(args.db, results[label], started, time.time())
    candidate = results["candidate"]
    regressed, improved = runner.compare(results["baseline"], candidate) if "baseline" in results else ([], [])
    if args.junit:
        report.write_junit(candidate, Path(args.junit))
    if args.json:
        data = report.to_json(candidate)
        if "baseline" in results:
            data["baseline"] = report.to_json(results["baseline"])
            data["regressed"], data["improved"] = regressed, improved
        print(json.dumps(data, indent=2))
    else:
        if "baseline" in results:
            print(f"baseline: {args.baseline_cmd}")
            for line in report.table_lines(results["baseline"], clean)[-4:]:
                print(f"  {line}" if line else "")
            print(f"\ncandidate: {args.agent_cmd}")
        for line in report.table_lines(candidate, clean):
            print(line)
        if "baseline" in results:
            print(f"\nregressed against the baseline: {', '.join(regressed) or 'none'}")
            print(f"improved on the baseline: {', '.join(improved) or 'none'}")
    return 0 if candidate.passed and not regressed else 1
