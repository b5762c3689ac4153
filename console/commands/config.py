"""Print the console's effective settings and where each came from (flag, environment, config file, default).

Takes the same flags as `agentdeck console`, so `agentdeck config --user bob`
shows what `agentdeck console --user bob` would run with. Secrets (webhook
URLs, routing keys) are never printed; notification routes show by label.

Exit status: 0 printed; 2 a setting has a value the console cannot use (the
message names it and where it came from).
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from agentdeck.console.commands import console

    console.add_arguments(p)
    p.add_argument("--json", action="store_true", help="print name, value and source as JSON")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from agentdeck.console.commands.console import settings_from
    from agentdeck.console.safe import clean
    from agentdeck.console.service.settings import SettingsError

    try:
        settings = settings_from(args)
    except SettingsError as exc:
        print(f"agentdeck config: {clean(exc, 1000, single_line=True)}", file=sys.stderr)
        return 2
    rows = settings.describe()
    if args.json:
        print(json.dumps([{"name": n, "value": v, "source": s} for n, v, s in rows], indent=2))
        return 0
    width = max(len(n) for n, _, _ in rows)
    vwidth = min(60, max(len(v) for _, v, _ in rows))
    for name, value, source in rows:
        print(f"{name:{width}}  {clean(value, 200, single_line=True):{vwidth}}  {source}")
    return 0
