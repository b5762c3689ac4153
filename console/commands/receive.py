"""Receive OpenTelemetry traces over OTLP/HTTP (POST /v1/traces) into the store.

Listens on loopback by default. Point an OpenTelemetry SDK or a Collector's
otlphttp exporter at http://HOST:PORT (the SDK adds /v1/traces); spans are
mapped through the GenAI semantic conventions as docs/otel.md describes, and
each request is answered only after its spans are committed.

To listen on any other address the receiver needs a way to know its senders:
bearer tokens (--token-file) or client certificates (--tls-client-ca), or an
explicit --insecure. SIGHUP reloads the token file. Exit status: 0 stopped by SIGTERM; 2 a usage error or an
unusable environment (bad flag, unreadable token/certificate file, the port in
use, a store that cannot be opened); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import threading

from agentdeck.store.processes import stop_on_signals
from agentdeck.store import config


def add_arguments(p: argparse.ArgumentParser) -> None:
    from agentdeck.console.argtypes import port, positive_float, positive_int

    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1); any other needs --token-file or --tls-client-ca, or --insecure")
    p.add_argument("--port", type=port, default=4318, help="port (default 4318, the OTLP/HTTP port; 0 picks a free one)")
    p.add_argument("--max-body", type=positive_int, default=None, metavar="BYTES",
                   help="largest request body accepted, after decompression (default 20 MiB)")
    p.add_argument("--token-file", metavar="FILE",
                   help="senders' bearer tokens, one 'NAME TOKEN [agents=a,b] [rate=N] [bytes=N]' a line (docs/otel.md)")
    p.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate (chain) ...")
    p.add_argument("--tls-key", metavar="PEM", help="... and this private key")
    p.add_argument("--tls-client-ca", metavar="PEM",
                   help="mutual TLS: require client certificates signed by these CAs (their common name is stored as the source)")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback address without tokens or client certificates (anyone who can reach it can write)")
    p.add_argument("--max-connections", type=positive_int, default=None, metavar="N",
                   help="open connections served at once, one thread each (default 64; more are answered 503)")
    p.add_argument("--request-timeout", type=positive_float, default=None, metavar="SECONDS",
                   help="longest a request may take to arrive, first byte to end of body (default 30)")


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
    """A receiver inside the console: each commit is an ``Ingested`` message, like the tailer's
    (through the store watcher's refresh throttle).

    It has no authentication, so it listens on loopback only (use ``agentdeck
    receive`` with tokens or TLS for other addresses)."""
    import time

    from agentdeck.console.messages import Ingested
    from agentdeck.store.otlp_auth import is_loopback
    from agentdeck.store.otlp_receiver import Receiver

    # The console's store watcher posts Ingested within its refresh throttle (console/ingest_service.py): a
    # commit is only a nudge to look now. A bare app (no watcher) is told directly.
    watcher = getattr(getattr(app, "ingest", None), "watcher", None)

    def on_commit(result) -> None:
        if not app.is_running:  # before the app runs, its screens load everything on mount anyway
            return
        if watcher is not None:
            watcher.heard()
        else:
            app.post_message(Ingested(result.events, result.rejects, set(result.tasks), list(result.escalations), time.time()))

    host, port = parse_address(spec)
    if not is_loopback(host):
        raise ValueError(f"{host} is not a loopback address: the console's receiver has no authentication "
                         "(run `agentdeck receive --token-file ...` for other addresses)")
    # In the store as an ingester, as `agentdeck receive` is: what it refuses (a sender on a wrong path) is on
    # Problems.
    return ServedReceiver(Receiver(app.db_path, host, port, on_commit=on_commit), app.db_path).start()


class ServedReceiver:
    """A receiver and its status in the store (store/receiver_status.py: an ingester any console shows, with the
    requests it refused), started and closed together: the status is up before the first request, and says
    "stopped" after the last."""

    def __init__(self, receiver, db_path) -> None:
        from agentdeck.store.receiver_status import ReceiverStatus

        self.receiver = receiver
        self.status = ReceiverStatus(db_path, receiver.endpoint, receiver.stats)
        told = receiver.on_commit

        def on_commit(result) -> None:
            self.status.on_commit(result)
            if told is not None:
                told(result)

        receiver.on_commit = on_commit

    @property
    def endpoint(self) -> str:
        return self.receiver.endpoint

    @property
    def stats(self):
        return self.receiver.stats

    def start(self) -> ServedReceiver:
        try:
            self.status.start()
        except BaseException:
            self.receiver.close()  # (bound, never served: its port is given back)
            raise
        self.receiver.start()
        return self

    def close(self) -> None:
        self.receiver.close()
        self.status.close()


def _reload(receiver, path: str) -> None:
    """SIGHUP: read the token file again (rotate or revoke a token without a restart).
    A file that does not load leaves the tokens in force as they were."""
    from agentdeck.store.otlp_auth import ConfigError, load_tokens

    try:
        tokens = load_tokens(path)
    except ConfigError as exc:
        print(f"agentdeck receive: token file not reloaded, the previous tokens stay in force: {exc}",
              file=sys.stderr, flush=True)
        return
    receiver.set_tokens(tokens)
    print(f"reloaded {len(tokens)} token(s) from {path}", flush=True)


def _usage(message: str) -> int:
    print(f"agentdeck receive: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from agentdeck.store import otlp_receiver as rx
    from agentdeck.store.db import connect
    from agentdeck.store.otlp_auth import ConfigError, is_loopback, load_tokens, tls_context

    if bool(args.tls_cert) != bool(args.tls_key):
        return _usage("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        return _usage("--tls-client-ca needs --tls-cert and --tls-key (client certificates are checked over TLS)")
    if not is_loopback(args.host) and not (args.token_file or args.tls_client_ca or args.insecure):
        return _usage(f"refusing to listen on {args.host or 'every address'} without --token-file or --tls-client-ca: "
                      "anyone who can reach it could write tasks, escalations and compensation hooks "
                      "(add --insecure only on a network you trust)")
    try:
        tokens = load_tokens(args.token_file) if args.token_file else None
        tls = tls_context(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
    except ConfigError as exc:
        return _usage(str(exc))
    if tokens and tls is None and not is_loopback(args.host):
        print("agentdeck receive: warning: without --tls-cert, tokens cross the network in clear text", file=sys.stderr)

    db = config.db_path(args.db)
    try:
        connect(db).close()
    except (OSError, sqlite3.Error) as exc:
        return _usage(f"cannot open the store {db}: {getattr(exc, 'strerror', None) or exc}")
    try:
        receiver = rx.Receiver(
            db, args.host, args.port, max_body=args.max_body or rx.MAX_BODY, tokens=tokens, tls=tls,
            max_connections=args.max_connections or rx.MAX_CONNECTIONS,
            request_timeout=args.request_timeout or rx.REQUEST_TIMEOUT,
        )
    except OSError as exc:
        return _usage(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    # In the store as an ingester: any console on it shows what this receiver refuses, and that it died.
    served = ServedReceiver(receiver, db)
    who = (f"{len(tokens)} token(s)" if tokens else "no tokens") + (", client certificates" if args.tls_client_ca else "")
    print(f"receiving OTLP/HTTP traces at {receiver.endpoint} into {db} ({who}; Ctrl-C to stop)", flush=True)
    stop = threading.Event()
    # A service manager stops us with SIGTERM: close as cleanly as on Ctrl-C, exit 0.
    stop_on_signals(stop, (signal.SIGTERM,))
    if args.token_file:
        signal.signal(signal.SIGHUP, lambda *_: _reload(receiver, args.token_file))
    served.start()
    status = 0
    try:
        stop.wait()
    except KeyboardInterrupt:
        status = 130
    finally:
        served.close()
        s = receiver.stats
        logs = f", {s.log_records} log records" if s.log_records or s.rejected_log_records else ""
        logs_rejected = f", {s.rejected_log_records} log records" if s.rejected_log_records else ""
        print(f"{s.requests} requests, {s.spans} spans{logs}, {s.events} events stored; {s.rejected} requests and "
              f"{s.rejected_spans} spans{logs_rejected} rejected; {s.unauthorized} unauthorized, "
              f"{s.throttled} over budget")
    return status
