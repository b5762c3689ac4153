"""Run the sample system of record (the HTTP service the demo agents change and compensations undo).

Listens on loopback only. Loads the successful actions found in the given
trace files or folders first (the bundled sample data by default), so their
compensations really undo something. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from agentdeck.replay.sor import DEFAULT_PORT

SAMPLE_TRACES = Path(__file__).resolve().parents[2] / "sample_data" / "traces"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks one)")
    p.add_argument("--seed", action="append", metavar="PATH",
                   help="trace file or folder whose actions to load first (repeatable; default: the bundled sample data)")
    p.add_argument("--no-seed", action="store_true", help="start empty")


def run(args: argparse.Namespace) -> int:
    from agentdeck.replay.sor import SorService, seed_from_traces

    try:
        service = SorService(port=args.port)
    except OSError as exc:
        print(f"agentdeck sor: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}")
        return 2
    loaded = 0 if args.no_seed else seed_from_traces(service.sor, [Path(p) for p in (args.seed or [SAMPLE_TRACES])])
    service.start()
    print(f"system of record on {service.url} ({loaded} actions loaded); allow it with --allow-host {service.allow_entry}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
    return 0
