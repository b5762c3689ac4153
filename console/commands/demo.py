"""Run the live sample fleet and open the console on it (with the bundled sample data)."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from agentdeck.console.argtypes import port, positive_float, positive_int
from agentdeck.store import config

SAMPLE_TRACES = Path(__file__).resolve().parents[2] / "sample_data" / "traces"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--traces", help="folder the fleet writes to (default: $AGENTDECK_TRACES, else var/traces)")
    p.add_argument("--rate", type=positive_float, default=8.0,
                   help="events per second the fleet writes, whether or not anyone decides (default 8)")
    p.add_argument("--agents", type=positive_int, default=4, help="agent instances (one trace file each)")
    p.add_argument("--wait", type=positive_float, default=300.0, metavar="SECONDS",
                   help="how long an agent waits for a decision before it gives up (its escalations' deadline; default 300)")
    p.add_argument("--user", help="approver identity (default: $AGENTDECK_USER, else the OS user)")
    p.add_argument("--no-sample", action="store_true", help="do not load the bundled sample data set")
    p.add_argument("--headless", type=positive_float, metavar="SECONDS", help="only run the fleet for SECONDS, no console")
    p.add_argument("--sor-port", type=port, default=8765,
                   help="port of the sample system of record on 127.0.0.1 (default 8765, where the sample hooks point)")
    p.add_argument("--on-expiry", choices=("deny", "approve", "keep"),
                   help="what happens to escalations past their deadline (default: $AGENTDECK_ON_EXPIRY, else deny)")
    p.add_argument("--callback-port", type=port, default=8766,
                   help="port on 127.0.0.1 where the agents hear decisions (default 8766; any free port if taken). "
                        "The same port each run: escalations left waiting by an earlier run are still delivered, "
                        "not refused as a host off the allowlist")
    p.add_argument("--no-callback", action="store_true",
                   help="agents read decisions only from the outbox (default: also a local callback on 127.0.0.1)")


def _start_sor(args: argparse.Namespace):
    """The sample system of record on loopback: live agents change it, compensations undo it."""
    import sys

    from agentdeck.replay.sor import SorService, seed_from_traces

    try:
        sor = SorService(port=args.sor_port)
    except OSError as exc:
        # Port taken (another demo?): listen elsewhere. Live tasks' hooks follow it; the bundled
        # sample tasks' hooks name 127.0.0.1:8765, which stays off the allowlist, so they are refused.
        print(f"agentdeck demo: 127.0.0.1:{args.sor_port} unavailable ({exc.strerror or exc}); "
              "system of record on an ephemeral port", file=sys.stderr)
        try:
            sor = SorService(port=0)
        except OSError:
            return None
    if not args.no_sample:
        seed_from_traces(sor.sor, [SAMPLE_TRACES])  # the bundled actions, so their undo really undoes
    return sor.start()


def run(args: argparse.Namespace) -> int:
    from agentdeck.sample_data.fleet import Fleet

    traces = config.traces_path(args.traces)
    traces.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(traces, rate=args.rate, agents=args.agents, wait=args.wait)
    if args.headless is not None:
        fleet.run(duration=args.headless)
        print(f"wrote {fleet.written} events to {traces}")
        return 0
    import sys

    from agentdeck.console.app import AgentDeck
    from agentdeck.console.commands.console import settings_from, setup_logging
    from agentdeck.console.service.settings import SettingsError
    from agentdeck.store import outbox

    allow: frozenset[str] = frozenset()
    if not args.no_callback:
        # The fleet's agents listen on a local port for decisions; the console may call it.
        allow = allow | {fleet.start_callback(args.callback_port)}
    sor = _start_sor(args)
    if sor is not None:
        fleet.sor_url = sor.url
    if sor is not None:
        allow = allow | {sor.allow_entry}
    paths = [traces] if args.no_sample else [SAMPLE_TRACES, traces]
    try:
        settings = settings_from(args, traces=paths, allow_hosts=sorted(allow), outbox=outbox.outbox_for(traces))
    except SettingsError as exc:
        print(f"agentdeck: {exc}", file=sys.stderr)
        fleet.stop.set()
        if sor is not None:
            sor.stop()
        return 2
    setup_logging(settings)
    from agentdeck.store.db import connect

    connect(settings.db).close()  # an unusable store: a message (exit 2), not a broken screen
    worker = threading.Thread(target=fleet.run, name="fleet", daemon=True)
    worker.start()
    app = AgentDeck(settings)
    try:
        app.run()
    finally:
        fleet.stop.set()
        worker.join(timeout=2)
        if sor is not None:
            sor.stop()
    return 0
