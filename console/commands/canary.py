"""Compare an agent's canary version with its baseline; exit 0 promote, 1 hold, 2 roll back, 3 error.

The release gate: prints the same table as the Canary screen (or JSON with
--json) and exits with the verdict, so a deploy pipeline can act on it.

Exit status: 0 promote, 1 hold (including "not enough data"), 2 roll back,
3 usage error, no store, an unusable contract, or no tasks at all for the
agent's baseline or canary version in the window.
"""

from __future__ import annotations

import argparse
import sys

from agentdeck.store import config

EXIT_ERROR = 3
# store.canary.WINDOWS, spelled out so --help does not import the analysis
# (scipy-free but heavy); tests/test_cli_errors.py keeps the two equal.
WINDOWS = ("15m", "1h", "24h", "all")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--agent", required=True, help="agent name, as in its traces")
    p.add_argument("--baseline", required=True, metavar="VERSION", help="baseline version label, e.g. v1")
    p.add_argument("--canary", required=True, metavar="VERSION", help="canary version label, e.g. v2")
    p.add_argument("--window", default="all", choices=list(WINDOWS), help="tasks started within this long before now (default: all)")
    p.add_argument("--now", metavar="TIME", help="judge as of this time (RFC 3339 or epoch seconds; default: now)")
    p.add_argument("--contracts", action="append", metavar="DIR", help="contract folder (default: as ingestion finds them)")
    p.add_argument("--method", default="sequential", choices=["sequential", "fixed"],
                   help="sequential (default): always-valid tests, safe to re-run while the canary runs; "
                        "fixed: fixed-horizon tests, valid for one look only (docs/canary.md)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--differences", type=int, default=8, metavar="N",
                   help="list the N tools, sequences, policy outcomes, escalation reasons and actions whose share "
                        "of tasks differs most between the versions (default 8; 0: none)")
    p.add_argument("--enqueue", action="store_true",
                   help="also put a promote or roll back verdict (or a hold past the contract's escalate_hold_after) "
                        "in the Escalations queue, once per version and transition; a roll back demotes the canary "
                        "to assisted at once (docs/canary.md)")
    p.add_argument("--outbox", metavar="PATH",
                   help="with --enqueue: the decisions outbox; stage changes are published to autonomy.jsonl beside "
                        "it (default: not published here; a running console publishes them on its next tick)")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST[:PORT]",
                   help="with --enqueue --outbox: a host the contract's release_hook may be called on")
    # argparse exits 2 on a usage error, which here means "roll back": the CLI's parser uses this instead.
    p.usage_exit = EXIT_ERROR  # type: ignore[attr-defined]


def parse_time(text: str) -> float:
    from datetime import UTC, datetime

    try:
        return float(text)
    except ValueError:
        pass
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.timestamp()


def _fail(message: str) -> int:
    from agentdeck.console.safe import clean

    print(f"agentdeck canary: {clean(message, 500, single_line=True)}", file=sys.stderr)
    return EXIT_ERROR


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from agentdeck.console.safe import plain

    from agentdeck.console.widgets import canary_format as fmt
    from agentdeck.store import canary, contract
    from agentdeck.store.db import connect

    db = config.db_path(args.db)
    if not db.exists():
        return _fail(f"no store at {db} (ingest traces first, or pass --db)")
    try:
        now = parse_time(args.now) if args.now else time.time()
    except ValueError:
        return _fail(f"--now: not a time: {args.now}")
    conn = connect(db)
    book = contract.book_for_store(conn, args.contracts)
    if book.problems:
        for problem in book.problems:
            _fail(problem)
        return EXIT_ERROR
    report = canary.analyse(conn, args.agent, args.baseline, args.canary, window=args.window, now=now,
                            contract=book.get(args.agent), sparklines=False, method=args.method)
    empty = [v for v, n in ((args.baseline, report.n_baseline), (args.canary, report.n_canary)) if n == 0]
    if empty:
        known = [r[0] for r in conn.execute("SELECT DISTINCT version FROM tasks WHERE agent = ? ORDER BY 1", (args.agent,))]
        hint = f"versions of {args.agent}: {', '.join(known)}" if known else f"no tasks for agent {args.agent}"
        return _fail(f"no tasks for version {', '.join(empty)} in window {args.window} ({hint})")
    code = canary.EXIT_CODES[report.verdict]
    if args.enqueue:
        _enqueue(conn, report, book.get(args.agent), now, args)
    diff = None
    if args.differences > 0:
        from agentdeck.store import canary_diff

        diff = canary_diff.differences(conn, args.agent, args.baseline, args.canary, since=report.since,
                                       until=report.until, top=args.differences)
    if args.json:
        data = report.to_json()
        if diff is not None:
            data["differences"] = [dict(vars(d), delta=d.delta) for d in diff.differences]
        print(json.dumps(data, indent=2, default=str, allow_nan=False))
        return code
    out = Console(highlight=False, soft_wrap=False, width=max(Console().width, 120))
    out.print(fmt.headline(report))
    table = Table(*fmt.HEADERS, box=None, pad_edge=False, header_style="bold")
    for m in report.metrics:
        table.add_row(*fmt.row(m))
    out.print(table)
    out.print(fmt.verdict_line(report))
    for version in (report.baseline, report.canary):
        if version in report.agreement:
            out.print(Text("shadow agreement ").append_text(plain(report.agreement[version], 300, single_line=True)))
    if diff is not None and diff.differences:
        out.print(f"\nWhere the versions differ (share of tasks; latest {diff.n_baseline:,} baseline and "
                  f"{diff.n_canary:,} canary tasks; open examples with `agentdeck evidence TASK`):")
        table = Table(*fmt.DIFF_HEADERS, box=None, pad_edge=False, header_style="bold")
        for d in diff.differences:
            table.add_row(*fmt.diff_row(d))
        out.print(table)
    return code


def _enqueue(conn, report, contract, now: float, args: argparse.Namespace) -> None:
    """Raise the verdict's item (store/release.py), as the console's tick would; say what happened on stderr."""
    from pathlib import Path

    from agentdeck.console.safe import clean
    from agentdeck.store import release

    for version in (report.baseline, report.canary):
        release.sync_contract(conn, contract, report.agent, version, now=now)
    raised = release.enqueue(conn, report, contract, now=now,
                             suite=release.suite_summary(conn, report.agent, report.canary))
    if raised is not None:
        said = f"queued {raised.escalation_id}: {raised.title}"
        if raised.demoted:
            said += f"; {report.canary} demoted to assisted until a person decides"
    elif release.wanted(conn, report, contract, now) is not None:
        said = "already in the queue (raised once per version and transition)"
    else:
        said = f"nothing to queue (verdict {report.verdict})"
    print(f"agentdeck canary: {clean(said, 300, single_line=True)}", file=sys.stderr)
    if args.outbox:
        from agentdeck.console.service.delivery import DeliverySettings
        from agentdeck.console.service.release_delivery import autonomy_path, publish_pending

        publish_pending(conn, autonomy_path(Path(args.outbox)), DeliverySettings(Path(args.outbox),
                                                                                  frozenset(args.allow_host)))
