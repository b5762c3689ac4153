"""Send notifications without a console open: escalations, deadlines, canary, ingest, failures.

Evaluates the notification rules over the store and sends what is due to
each route, exactly as an open console does (and alongside consoles: each
notification is sent once whoever runs). Routes come from --notify
(repeatable: URL, slack+URL, pagerduty+URL?routing_key=KEY) and the config
file's [notify] table; only hosts on the allowlist (--allow-host,
$AGENTDECK_ALLOW_HOSTS, allow_hosts in the config file or its [notify]
table) are called. See docs/notify.md.

Exit status: 0 every due notification was sent (or none was due); 1 some
failed or were blocked (--once); 2 usage error, a bad route or config, or
no store; 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys

from agentdeck.store import config


def add_arguments(p: argparse.ArgumentParser) -> None:
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="evaluate and send once, then exit (default)")
    mode.add_argument("--follow", action="store_true", help="keep going every --interval seconds until interrupted")
    p.add_argument("--notify", action="append", default=[], metavar="ROUTE",
                   help="where to send: URL (JSON webhook), slack+URL, pagerduty+URL?routing_key=KEY (repeatable)")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST[:PORT]",
                   help="host routes may call (repeatable; also $AGENTDECK_ALLOW_HOSTS)")
    p.add_argument("--config", metavar="FILE",
                   help="config file (default: $XDG_CONFIG_HOME/agentdeck/config.toml when it exists)")
    p.add_argument("--interval", type=float, default=5.0, metavar="SECONDS", help="--follow: seconds between ticks (default 5)")
    p.add_argument("--now", metavar="TIME", help="--once: evaluate as of this time (RFC 3339 or epoch seconds; for testing)")


def _fail(message: str) -> int:
    from agentdeck.console.safe import clean

    print(f"agentdeck notify: {clean(message, 800, single_line=True)}", file=sys.stderr)
    return 2


def load_settings(args: argparse.Namespace, env=None):
    """NotifySettings from the config file's [notify] table plus --notify and --allow-host."""
    import os
    import tomllib
    from pathlib import Path

    from agentdeck.console.notify.settings import NotifySettings

    env = os.environ if env is None else env
    path: Path | None
    if args.config or env.get("AGENTDECK_CONFIG"):
        path = Path(args.config or env["AGENTDECK_CONFIG"])
        if not path.is_file():
            raise ValueError(f"config file {path} does not exist")
    else:
        base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
        path = Path(base) / "agentdeck" / "config.toml"
        path = path if path.is_file() else None
    table: dict = {}
    hosts: list[str] = []
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config file {path} is not valid TOML: {exc}") from exc
        table = data.get("notify") or {}
        top = data.get("allow_hosts") or []
        hosts += top.split(",") if isinstance(top, str) else [str(h) for h in top]
    settings = NotifySettings.model_validate(table)
    return settings.with_routes(args.notify, config.allowed_hosts(args.allow_host) | {h.strip() for h in hosts if h.strip()})


def _describe_error(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err["loc"]) or "notify"
            parts.append(f"{where}: {str(err['msg']).removeprefix('Value error, ')}")
        return "; ".join(parts)
    return str(exc)


def run(args: argparse.Namespace) -> int:
    import sqlite3
    import time

    from agentdeck.console.commands.canary import parse_time
    from agentdeck.console.notify import LocalRoutes, tick
    from agentdeck.console.safe import clean
    from agentdeck.store.db import connect

    try:
        settings = load_settings(args)
    except Exception as exc:
        return _fail(f"bad notification settings: {_describe_error(exc)}")
    remote = [r for r in settings.routes if not r.local]
    if not settings.routes:
        return _fail("no route to send to: give --notify URL (or routes in the config file's [notify] table)")
    db = config.db_path(args.db)
    if not db.exists():
        return _fail(f"no store at {db} (ingest traces first, or pass --db)")
    try:
        fixed = parse_time(args.now) if args.now else None
    except ValueError:
        return _fail(f"--now: not a time: {args.now}")
    allow = settings.allow_hosts
    for route in remote:
        from agentdeck.console.notify.queue import refusal

        why = refusal(route, allow)
        if why:
            print(f"agentdeck notify: route {route.label} will not be called: {why}", file=sys.stderr)
    conn = connect(db)
    local = LocalRoutes()
    bad = 0
    while True:
        try:
            result = tick(conn, settings, fixed if fixed is not None else time.time(), local=local)
        except sqlite3.OperationalError as exc:
            if not args.follow:
                raise
            # A locked or briefly unavailable store must not end on-call paging: say so and try again.
            print(f"agentdeck notify: {clean(str(exc), 300, single_line=True)}; retrying", file=sys.stderr, flush=True)
            time.sleep(max(args.interval, 0.2))
            continue
        for problem in result.problems:
            print(f"agentdeck notify: {clean(problem, 300, single_line=True)}", file=sys.stderr)
        if result.changed:
            print(f"notify: {len(result.fired)} new, {result.sent} sent, {result.retrying} to retry, "
                  f"{result.failed} failed, {result.blocked} blocked, {result.resolved} resolved", flush=True)
        if result.bell and sys.stdout.isatty():  # a bell route, headless: ring this terminal
            print("\a", end="", flush=True)
        bad += result.failed + result.blocked
        if not args.follow:
            return 1 if bad else 0
        time.sleep(max(args.interval, 0.2))
