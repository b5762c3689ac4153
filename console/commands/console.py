"""Open the console on a store, following a trace directory."""

from __future__ import annotations

import argparse

from agentdeck.store import config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--traces", action="append", help="trace file or directory to follow (repeatable; default: $AGENTDECK_TRACES, else var/traces)")
    p.add_argument("--no-follow", action="store_true", help="do not tail traces, only browse the store")
    p.add_argument("--user", help="approver identity (default: $AGENTDECK_USER, else the OS user)")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST[:PORT]",
                   help="host the console may call for callbacks and compensations (repeatable; also $AGENTDECK_ALLOW_HOSTS)")
    p.add_argument("--on-expiry", choices=("deny", "approve", "keep"),
                   help="what happens to escalations past their deadline (default: $AGENTDECK_ON_EXPIRY, else deny)")
    p.add_argument("--outbox", metavar="PATH|off",
                   help="decisions outbox file (default: <first trace folder>/outbox/decisions.jsonl; 'off' to disable)")
    p.add_argument("--receive", metavar="[HOST:]PORT",
                   help="also receive OTLP/HTTP traces on this port (loopback unless HOST is given; see docs/otel.md)")


def run(args: argparse.Namespace) -> int:
    import sys

    from agentdeck.console.app import AgentDeck
    from agentdeck.store import decisions, outbox

    try:
        on_expiry = decisions.on_expiry_policy(args.on_expiry)
    except ValueError as exc:
        print(f"agentdeck: {exc}", file=sys.stderr)
        return 2
    from agentdeck.store.db import connect

    # Open (and migrate) the store before the screen takes over the terminal:
    # a full disk, a read-only or locked store, a file that is not a store is
    # then a one-line message (the CLI's handler, exit 2), not a broken screen.
    connect(config.db_path(args.db)).close()
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
        outbox=outbox.resolve(args.outbox, traces),
        on_expiry=on_expiry,
    )
    receiver = None
    if args.receive:
        from agentdeck.console.commands import receive

        try:
            receiver = receive.start_for_app(app, args.receive)
        except (OSError, ValueError) as exc:
            print(f"agentdeck: --receive {args.receive}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
            return 2
    try:
        app.run()
    finally:
        if receiver is not None:
            receiver.close()
    return 0
