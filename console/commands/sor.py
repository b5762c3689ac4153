"""Run the sample system of record (the HTTP service the demo agents change and compensations undo).

Listens on loopback only (127.0.0.1). Loads the successful actions found in
the given trace files or folders first (the bundled sample data by default),
so their compensations really undo something. Ctrl-C stops it.

Endpoints (JSON in, JSON out):
  POST /actions          {action_id, system, operation, params, amount?, before?, after?}
                         applies an action; repeating an action_id returns the first result
  POST /compensate       {action_id, system, operation, params} with an Idempotency-Key
                         header: undoes it, never twice (a repeated key answers the first
                         result with Idempotent-Replayed: true; another key is a 409)
  GET  /actions/<id>     one action's state (404 if unknown)
  GET  /health           {"ok": true, "actions": N}
  POST /_faults          {"fail_next": n}: the next n compensations fail with 503
                         (to show failure and retry)

Exit status: 0 stopped with Ctrl-C; 2 the port is in use or cannot be bound.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# replay.sor.DEFAULT_PORT, spelled out so --help does not import http.server;
# tests/test_cli_errors.py keeps the two equal.
DEFAULT_PORT = 8765
SAMPLE_TRACES = Path(__file__).resolve().parents[2] / "sample_data" / "traces"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from agentdeck.console.argtypes import port

    p.add_argument("--port", type=port, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks one)")
    p.add_argument("--seed", action="append", metavar="PATH",
                   help="trace file or folder whose actions to load first (repeatable; default: the bundled sample data)")
    p.add_argument("--no-seed", action="store_true", help="start empty")


def run(args: argparse.Namespace) -> int:
    import threading

    from agentdeck.replay.sor import SorService, seed_from_traces

    try:
        service = SorService(port=args.port)
    except (OSError, OverflowError) as exc:
        print(f"agentdeck sor: cannot listen on 127.0.0.1:{args.port}: {getattr(exc, 'strerror', None) or exc}",
              file=sys.stderr)
        return 2
    loaded = 0 if args.no_seed else seed_from_traces(service.sor, [Path(p) for p in (args.seed or [SAMPLE_TRACES])])
    service.start()
    print(f"system of record on {service.url} ({loaded} actions loaded); allow it with --allow-host {service.allow_entry}",
          flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
    return 0
