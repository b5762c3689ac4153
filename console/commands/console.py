"""Open the console on a store, following a trace directory."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="settings file (TOML; default: $AGENTDECK_CONFIG, else $XDG_CONFIG_HOME/agentdeck/config.toml "
                        "if present). Flags win over the environment, which wins over the file")
    p.add_argument("--traces", action="append", help="trace file or directory to follow (repeatable; default: $AGENTDECK_TRACES, else var/traces)")
    p.add_argument("--no-follow", action="store_true", help="do not tail traces, only browse the store")
    p.add_argument("--user", help="approver identity (default: $AGENTDECK_USER, else the OS user)")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST[:PORT]",
                   help="host the console may call for callbacks and compensations (repeatable; also $AGENTDECK_ALLOW_HOSTS)")
    p.add_argument("--on-expiry", choices=("deny", "approve", "keep"),
                   help="what happens to escalations past their deadline (default: $AGENTDECK_ON_EXPIRY, else deny)")
    p.add_argument("--outbox", metavar="PATH|off",
                   help="decisions outbox file (default: <first trace folder>/outbox/decisions.jsonl; 'off' to disable)")
    p.add_argument("--prune-every", metavar="SECONDS",
                   help="apply the retention rules ([retention] in the config file) every SECONDS from the "
                        "console, off the UI thread (default: off; 0 or 'off' keeps it off; docs/retention.md)")
    p.add_argument("--receive", metavar="[HOST:]PORT",
                   help="also receive OTLP/HTTP traces on this port (loopback unless HOST is given; see docs/otel.md)")
    p.add_argument("--notify", action="append", default=[], metavar="URL",
                   help="send notifications here (repeatable): a JSON webhook URL, slack+URL, pagerduty+URL?routing_key=K, "
                        "bell or desktop; its host must be allowed (--allow-host); rules in docs/notify.md")
    p.add_argument("--abandon-after", metavar="SECONDS",
                   help="show a task with no task_end and no event for SECONDS as abandoned, not running "
                        "(default 1800; 0 = never; also $AGENTDECK_ABANDON_AFTER, config key abandon_after)")
    p.add_argument("--read-only", action="store_true", default=None,
                   help="watch, never act: every acting key and palette command is refused (also $AGENTDECK_READ_ONLY)")


def settings_from(args: argparse.Namespace, **extra):
    """The one ``Settings`` for this run: flags, then environment, then config file, then defaults."""
    from agentdeck.console.service.settings import resolve

    flags = {
        "db": args.db,
        "traces": getattr(args, "traces", None),
        "follow": False if getattr(args, "no_follow", False) else None,
        "user": args.user,
        "allow_hosts": getattr(args, "allow_host", None),
        "on_expiry": args.on_expiry,
        "outbox": getattr(args, "outbox", None),
        "prune_every": getattr(args, "prune_every", None),
        "notify_routes": getattr(args, "notify", None),
        "read_only": getattr(args, "read_only", None),
        "abandon_after": getattr(args, "abandon_after", None),
        **extra,
    }
    return resolve(flags, config=getattr(args, "config", None))


def setup_logging(settings) -> None:
    """Send the console's log (``log.exception`` in workers included) to a file beside the store.

    The terminal belongs to the TUI, so nothing may print there; the file is
    where "see the log" in an error message points.
    """
    import logging

    path = settings.log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()  # an unwritable folder must not stop the console
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def prepare_traces(settings) -> None:
    for t in settings.traces:
        if not t.exists() and not t.suffix:
            t.mkdir(parents=True, exist_ok=True)


def run(args: argparse.Namespace) -> int:
    from agentdeck.store import gc_pause

    # The garbage collector waits for the first frame (store/gc_pause.py, phase 1): the settings' models,
    # Textual and the console are built on the way. Resumed by the app after that frame, or here if it never came.
    gc_pause.pause_for_start_up()
    try:
        return _run(args)
    finally:
        gc_pause.resume_after_start_up()


def _run(args: argparse.Namespace) -> int:
    import sys

    from agentdeck.console.service.settings import SettingsError

    try:
        settings = settings_from(args)
    except SettingsError as exc:
        print(f"agentdeck: {exc}", file=sys.stderr)
        return 2
    prepare_traces(settings)
    setup_logging(settings)

    from agentdeck.store.db import connect

    # Open (and migrate) the store before the screen takes over the terminal:
    # a full disk, a read-only or locked store, a file that is not a store is
    # then a one-line message (the CLI's handler, exit 2), not a broken screen.
    connect(settings.db).close()

    from agentdeck.console.app import AgentDeck

    app = AgentDeck(settings)
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
