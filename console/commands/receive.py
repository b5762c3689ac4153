"""Receive OpenTelemetry traces over OTLP/HTTP (POST /v1/traces) into the store.

Listens on loopback by default. Point an OpenTelemetry SDK or a Collector's
otlphttp exporter at http://HOST:PORT (the SDK adds /v1/traces); spans are
mapped through the GenAI semantic conventions as docs/otel.md describes, and
each request is answered only after its spans are committed.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import threading

from agentdeck.store import config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; use 0.0.0.0 only on a trusted network: there is no authentication)")
    p.add_argument("--port", type=int, default=4318, help="port (default 4318, the OTLP/HTTP port; 0 picks a free one)")
    p.add_argument("--max-body", type=int, default=None, metavar="BYTES",
                   help="largest request body accepted, after decompression (default 20 MiB)")


def parse_address(spec: str) -> tuple[str, int]:
    """``PORT`` (on loopback) or ``HOST:PORT``."""
    host, _, port = spec.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"not a port or HOST:PORT: {spec!r}") from None
    if not 0 <= number < 65536:
        raise ValueError(f"port out of range: {number}")
    return host.strip("[]") or "127.0.0.1", number


def start_for_app(app, spec: str):
    """A receiver inside the console: each commit is an ``Ingested`` message, like the tailer's."""
    import time

    from agentdeck.console.messages import Ingested
    from agentdeck.store.otlp_receiver import Receiver

    def on_commit(result) -> None:
        if app.is_running:  # before the app runs, its screens load everything on mount anyway
            app.post_message(Ingested(result.events, result.rejects, set(result.tasks), list(result.escalations), time.time()))

    host, port = parse_address(spec)
    return Receiver(app.db_path, host, port, on_commit=on_commit).start()


def run(args: argparse.Namespace) -> int:
    from agentdeck.store.otlp_receiver import MAX_BODY, Receiver

    from agentdeck.store.db import connect

    db = config.db_path(args.db)
    try:
        connect(db).close()
    except (OSError, sqlite3.Error) as exc:
        print(f"agentdeck: cannot open the store {db}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 1
    try:
        receiver = Receiver(db, args.host, args.port, max_body=args.max_body or MAX_BODY)
    except OSError as exc:
        print(f"agentdeck: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"receiving OTLP/HTTP traces at {receiver.endpoint} into {db} (Ctrl-C to stop)", flush=True)
    stop = threading.Event()
    # A service manager stops us with SIGTERM: close as cleanly as on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    receiver.start()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.close()
        s = receiver.stats
        print(f"{s.requests} requests, {s.spans} spans, {s.events} events stored, {s.rejected} requests rejected")
    return 0
