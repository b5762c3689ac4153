"""The ``agentdeck`` command line.

Each command lives in ``console/commands/<name>.py`` with a one-line
docstring, ``add_arguments(parser)`` and ``run(args) -> int``; add its name
to ``COMMANDS`` to make it appear.
"""

from __future__ import annotations

import argparse
import importlib
import sqlite3
import sys

COMMANDS = ["console", "ingest", "demo", "schema", "check", "canary", "evidence", "verify", "receive", "sor", "prune", "stats"]


def common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="SQLite store (default: $AGENTDECK_DB, else var/agentdeck.db)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentdeck",
        description="Terminal operations console for AI agents that act in real systems.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"agentdeck.console.commands.{name.replace('-', '_')}")
        doc = (module.__doc__ or "").strip().splitlines()[0]
        p = sub.add_parser(name, help=doc, description=(module.__doc__ or "").strip())
        common(p)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["console", *argv]
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except sqlite3.Error as exc:
        # A file that is not an agentdeck store (or not SQLite at all, or
        # locked or read-only) is a message, not a traceback.
        from agentdeck.store import config

        store = config.db_path(getattr(args, "db", None))
        print(f"agentdeck: cannot use the store {store}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
