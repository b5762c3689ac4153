"""Run the live sample fleet and open the console on it (with the bundled sample data)."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from store import config

SAMPLE_TRACES = Path(__file__).resolve().parents[2] / "sample_data" / "traces"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--traces", help="folder the fleet writes to (default: $AGENTDECK_TRACES, else var/traces)")
    p.add_argument("--rate", type=float, default=8.0, help="events per second the fleet writes (default 8)")
    p.add_argument("--agents", type=int, default=4, help="agent instances (one trace file each)")
    p.add_argument("--user", help="approver identity (default: $AGENTDECK_USER, else the OS user)")
    p.add_argument("--no-sample", action="store_true", help="do not load the bundled sample data set")
    p.add_argument("--headless", type=float, metavar="SECONDS", help="only run the fleet for SECONDS, no console")


def run(args: argparse.Namespace) -> int:
    from sample_data.fleet import Fleet

    traces = config.traces_path(args.traces)
    traces.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(traces, rate=args.rate, agents=args.agents)
    if args.headless is not None:
        fleet.run(duration=args.headless)
        print(f"wrote {fleet.written} events to {traces}")
        return 0
    from console.app import AgentDeck

    paths = [traces] if args.no_sample else [SAMPLE_TRACES, traces]
    worker = threading.Thread(target=fleet.run, name="fleet", daemon=True)
    worker.start()
    app = AgentDeck(config.db_path(args.db), paths, operator=config.operator(args.user),
                    allow_hosts=config.allowed_hosts())
    try:
        app.run()
    finally:
        fleet.stop.set()
        worker.join(timeout=2)
    return 0
