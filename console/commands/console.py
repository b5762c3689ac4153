"""Open the console on a store, following a trace directory."""

from __future__ import annotations

import argparse

from store import config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--traces", action="append", help="trace file or directory to follow (repeatable; default: $AGENTDECK_TRACES, else var/traces)")
    p.add_argument("--no-follow", action="store_true", help="do not tail traces, only browse the store")
    p.add_argument("--user", help="approver identity (default: $AGENTDECK_USER, else the OS user)")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST[:PORT]",
                   help="host the console may call for callbacks and compensations (repeatable; also $AGENTDECK_ALLOW_HOSTS)")


def run(args: argparse.Namespace) -> int:
    from console.app import AgentDeck

    traces = [config.traces_path(t) for t in (args.traces or [None])]
    for t in traces:
        if not t.exists() and not t.suffix:
            t.mkdir(parents=True, exist_ok=True)
    app = AgentDeck(
        config.db_path(args.db),
        traces,
        operator=config.operator(args.user),
        allow_hosts=config.allowed_hosts(args.allow_host),
        follow=not args.no_follow,
    )
    app.run()
    return 0
