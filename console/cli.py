"""The ``agentdeck`` command line.

Each command lives in ``console/commands/<name>.py`` with a one-line
docstring, ``add_arguments(parser)`` and ``run(args) -> int``; add its name
to ``COMMANDS`` to make it appear.

Building the parser imports every command module, so a module may import at
its top only what is cheap (argparse, pathlib, ``store.config``): anything
heavier (pydantic models, textual, httpx, rich, the store) is imported inside
``run()``. ``agentdeck --help`` then costs a few milliseconds more than
starting Python (``bench/cli.py`` measures it; ``tests/test_cli_errors.py``
checks that no heavy module is imported).

Exit status, the same for every command (``docs/cli.md``): 0 success; 1 the
command ran and found what it looks for (violations, tampering, failures);
2 a usage error or unusable input or environment; 130 interrupted. ``canary``
keeps its own documented release-gate codes.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Collection
from pathlib import Path
import re
import sys

COMMANDS = ["console", "ingest", "demo", "schema", "check", "canary", "evidence", "verify", "receive", "sor", "suite",
            "prune", "stats", "notify", "config"]

EXIT_OK, EXIT_FOUND, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")


class Parser(argparse.ArgumentParser):
    """argparse, but an unknown flag is named even when a required argument is also missing.

    Plain argparse checks required arguments first, so ``ingest --bogus``
    says "PATH is required" and never mentions ``--bogus``.
    """

    _seen: list[str]
    # A command whose exit codes give 2 another meaning (canary: roll back) sets its own.
    usage_exit = EXIT_USAGE

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        self._seen = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def unknown_flags(self) -> list[str]:
        unknown = []
        for token in getattr(self, "_seen", []):
            if token == "--":
                break
            if not token.startswith("-") or token == "-" or _NUMBER.match(token):
                continue
            name = token.split("=", 1)[0]
            known = self._option_string_actions
            if name in known or (not name.startswith("--") and name[:2] in known):
                continue
            if name.startswith("--") and self.allow_abbrev and any(o.startswith(name) for o in known):
                continue
            unknown.append(token)
        return unknown

    def error(self, message: str):  # type: ignore[override]
        if message.startswith("the following arguments are required"):
            unknown = self.unknown_flags()
            if unknown:
                message = f"unrecognized arguments: {' '.join(unknown)}"
        self.print_usage(sys.stderr)
        self.exit(self.usage_exit, f"{self.prog}: error: {message}\n")


class _Version(argparse.Action):
    """``--version``: the installed distribution's version, looked up only when asked (importlib.metadata is slow)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("agentdeck")
        except PackageNotFoundError:
            text = "unknown (not installed)"
        print(f"agentdeck {text}")
        parser.exit()


def common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="SQLite store (default: $AGENTDECK_DB, else var/agentdeck.db)")


def build_parser(only: Collection[str] | None = None, *,
                 others: bool = True) -> tuple[Parser, dict[str, argparse.ArgumentParser]]:
    """The command line; with ``only``, just those commands get their arguments (the others are listed).

    ``agentdeck --help`` needs no command's arguments and ``agentdeck X`` only X's:
    building all of them was a third of the time ``--help`` took. With ``others``
    False the other commands are not even listed: ``agentdeck X`` with X a known
    command never shows that list (argparse's own sub-parser per command, ~1 ms
    each, was ~15 ms of CPU before the console's first frame).
    """
    parser = Parser(
        prog="agentdeck",
        description="Terminal operations console for AI agents that act in real systems.",
        epilog="Exit status: 0 success, 1 found what it checks for (violations, tampering, failures), "
               "2 usage error or unusable input, 130 interrupted; canary: 0 promote, 1 hold, 2 roll back, "
               "3 error. See docs/cli.md.",
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    parsers: dict[str, argparse.ArgumentParser] = {}
    for name in COMMANDS:
        if only is not None and name not in only:
            if not others:
                continue
            # Listed, not built: its one-line help from its source, without importing (and compiling) it.
            p = sub.add_parser(name, help=_summary(name))
            p.set_defaults(_run=None)
            parsers[name] = p
            continue
        module = importlib.import_module(f"agentdeck.console.commands.{name.replace('-', '_')}")
        doc = (module.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.splitlines()[0], description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        common(p)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
        parsers[name] = p
    return parser, parsers


_DOC = re.compile(r'\A\s*(?:#[^\n]*\n\s*)*[rRuU]?"""\s*([^\n]*?)\s*(?:"""|\n)')


def _summary(name: str) -> str:
    """The first line of command ``name``'s docstring, read from its source file (imported only if that fails)."""
    try:
        head = (Path(__file__).parent / "commands" / f"{name.replace('-', '_')}.py").read_text("utf-8")[:2000]
        match = _DOC.match(head)
        if match and match.group(1):
            return match.group(1)
    except OSError:
        pass
    module = importlib.import_module(f"agentdeck.console.commands.{name.replace('-', '_')}")
    return (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["console", *argv]
    # A known command's run lists no other command (an unknown one gets the list in its error).
    parser, parsers = build_parser(only=argv[:1], others=argv[0] not in COMMANDS)
    args, extras = parser.parse_known_args(argv)
    if extras:
        parsers[args.command].error(f"unrecognized arguments: {' '.join(extras)}")
    # An unusable input or environment exits 2, or the command's own error code (canary: 3, as 2 means roll back).
    unusable = getattr(parsers[args.command], "usage_exit", EXIT_USAGE)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except OSError as exc:
        # A folder that cannot be created, a file that cannot be written: the
        # environment, not a bug, so a message and not a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"agentdeck: {where}{exc.strerror or exc}", file=sys.stderr)
        return unusable
    except Exception as exc:
        import sqlite3  # (here, not at the top: --help does not need it)

        if not isinstance(exc, sqlite3.Error):
            raise
        # A full disk, a read-only or locked store, a file that is not a store: named, never a traceback.
        print(f"agentdeck: {store_problem(exc, getattr(args, 'db', None))}", file=sys.stderr)
        return unusable


def store_problem(exc: Exception, db: str | None) -> str:
    """What went wrong with the store, named (full disk, read-only, locked, damaged) when it can be."""
    from agentdeck.store import config
    from agentdeck.store.txn import StoreError, classify

    named = classify(exc, None)
    store = named.path if isinstance(named, StoreError) and named.path else str(config.db_path(db))
    if isinstance(named, StoreError):
        todo = f"; {named.todo}" if named.todo else ""
        return f"cannot use the store {store}: {named.what} ({named.detail}){todo}"
    return f"cannot use the store {store}: {exc}"


if __name__ == "__main__":
    sys.exit(main())
