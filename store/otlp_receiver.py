"""An OTLP/HTTP trace receiver that answers only once the spans are in the store.

``POST /v1/traces`` (and ``/api/public/otel/v1/traces``, Langfuse's default
export path) with ``application/x-protobuf`` or ``application/json`` bodies,
plain or gzip, as any OpenTelemetry SDK or the Collector's ``otlphttp``
exporter sends them. The 200 and its ExportTraceServiceResponse go out after
the commit, so a client that got its answer never loses the spans, and a
client that retries (no answer, or 503) cannot duplicate them: span parts are
deduplicated in the same transaction (``store.otlp.claim``).

One bad span does not lose its request: spans that cannot be read or mapped,
or that their sender may not write, are left out and reported with OTLP
partial success (``partial_success.rejected_spans`` and ``error_message``,
status 200) and a ``rejects`` row each; the rest are committed. Errors of
the whole request follow the OTLP/HTTP specification: a ``google.rpc.Status``
body in the request's encoding, with a status the client knows not to retry
(400 bad body, 401 no or wrong token, 413 too large, 415 unsupported type or
encoding, 404 other paths, 405 other methods) or to retry (429 over the
sender's budget and 503 busy, both with ``Retry-After``).

Resources are bounded: at most ``max_connections`` open connections, each
served by one thread (more are answered 503 and closed); every read waits at
most ``idle_timeout`` and a whole request (from its first byte to the end of
its body) at most ``request_timeout`` (then 408); at most ``max_bodies``
bodies are read, decoded and committed at once (memory); at most
``store_connections`` SQLite connections, shared by all request threads.
Writes go one at a time: requests that queue while another is written are
committed together in the next transaction (``Receiver._write``).

Senders (``store/otlp_auth.py``): with ``tokens``, every request needs a
bearer token (401 otherwise, no detail); a token's name is stored with the
spans it wrote, its budgets give 429 + Retry-After, and its agent list keeps
it from writing other agents' tasks. With ``tls`` the receiver speaks HTTPS
only; a TLS context that requires client certificates names the sender
``cert:<common name>`` when there are no tokens.
"""

from __future__ import annotations

from typing import Any

import io
import json
import logging
import math
import queue
import socket
import sqlite3
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from agentdeck.store import otlp, otlp_logs, postcommit
from agentdeck.store.db import connect
from agentdeck.store.ingest import MAX_REJECT_RAW, BatchResult, apply_batch, describe_error
from agentdeck.store.otlp_auth import Authenticator, RefusalLog, Token, peer_name
from agentdeck.store.txn import atomic

log = logging.getLogger(__name__)

PATH = "/v1/traces"
LANGFUSE_PATH = "/api/public/otel/v1/traces"  # Langfuse SDKs export here by default
LOGS_PATH = "/v1/logs"  # model messages as log records (store/otlp_logs.py)
PATHS = frozenset({PATH, LANGFUSE_PATH, LOGS_PATH})
JSON = "application/json"
PROTOBUF = "application/x-protobuf"
# The Collector's own OTLP receiver accepts 20 MiB by default.
MAX_BODY = 20 * 1024 * 1024
MAX_CONNECTIONS = 64
# Request bodies read, decoded and committed at once (the others wait): what
# bounds memory, at most this many times (body + decompressed + decoded).
MAX_BODIES = 8
STORE_CONNECTIONS = 4
IDLE_TIMEOUT = 10.0
REQUEST_TIMEOUT = 30.0

# ReceiverStats.refusals' key for refused spans or bodies whose raw text could not be kept in rejects (no store
# connection in time): counted with the HTTP statuses so the receiver's status shows them as a problem.
NOT_KEPT = -1

# google.rpc.Code values for the Status body.
INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, UNIMPLEMENTED, UNAVAILABLE, UNAUTHENTICATED = 3, 5, 8, 12, 14, 16
DEADLINE_EXCEEDED = 4

# A batch that fails to commit for a reason in its data (a number SQLite
# cannot hold, say) is split until the spans at fault are found and refused.
_DATA_ERRORS = (OverflowError, ValueError, TypeError, sqlite3.IntegrityError, sqlite3.InterfaceError,
                sqlite3.DataError, sqlite3.ProgrammingError)


class HttpError(Exception):
    def __init__(self, status: int, code: int, message: str, *, record: bool = False,
                 retry_after: float | None = None, reply: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.record = record  # keep the body in the rejects table
        self.retry_after = retry_after
        self.reply = message if reply is None else reply  # what the sender is told (``message`` may be internal)


@dataclass
class ReceiverStats:
    requests: int = 0  # answered 200
    spans: int = 0  # accepted
    log_records: int = 0  # accepted at /v1/logs (model messages)
    rejected_log_records: int = 0
    events: int = 0  # stored
    rejected: int = 0  # requests refused as a whole
    rejected_spans: int = 0  # spans left out of accepted requests
    unauthorized: int = 0
    throttled: int = 0
    timeouts: int = 0
    busy: int = 0  # connections refused: too many open
    connections: int = 0  # connections served
    peak_connections: int = 0  # most served at once
    # Every answer other than 200, by status, and the newest of each ("message (from peer)"): what the
    # receiver's status in the store (store/receiver_status.py) shows the console's operator.
    refusals: dict[int, int] = field(default_factory=dict)
    # Newest last (each status moved to the end as it recurs): "newest" names the status refused last.
    latest_refusal: dict[int, str] = field(default_factory=dict)

    def noted(self, status: int, message: str) -> None:
        """``message`` is the newest refusal (the receiver's lock held)."""
        self.latest_refusal.pop(status, None)
        self.latest_refusal[status] = message


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def status_body(code: int, message: str, content_type: str) -> bytes:
    """A google.rpc.Status, encoded by hand (two fields) to avoid a dependency."""
    if content_type == PROTOBUF:
        text = message.encode("utf-8")
        return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text
    return json.dumps({"code": code, "message": message}).encode("utf-8")


def export_response(rejected: int, message: str, content_type: str, logs: bool = False) -> bytes:
    """An ExportTraceServiceResponse (ExportLogsServiceResponse for ``logs``): empty when all
    was accepted, else with partial_success."""
    if not rejected and not message:
        return b"" if content_type == PROTOBUF else b"{}"
    from google.protobuf import json_format

    response: Any
    if logs:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as lpb

        response = lpb.ExportLogsServiceResponse(
            partial_success=lpb.ExportLogsPartialSuccess(rejected_log_records=rejected, error_message=message))
    else:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb

        response = pb.ExportTraceServiceResponse(
            partial_success=pb.ExportTracePartialSuccess(rejected_spans=rejected, error_message=message))
    if content_type == PROTOBUF:
        return response.SerializeToString()
    return json_format.MessageToJson(response, indent=None).encode("utf-8")


def gunzip(data: bytes, limit: int) -> bytes:
    """Every member of a gzip body (RFC 1952 allows several, and ``gzip``
    reads them all), at most ``limit`` bytes in all."""
    out: list[bytes] = []
    total = 0
    while True:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = d.decompress(data, limit - total + 1)
        except zlib.error as exc:
            what = "after the first member" if out else ""
            raise HttpError(400, INVALID_ARGUMENT, f"bad gzip body{' ' + what if what else ''}: {exc}", record=True) from None
        total += len(chunk)
        out.append(chunk)
        if total > limit:
            raise HttpError(413, RESOURCE_EXHAUSTED, f"body too large once decompressed (limit {limit} bytes)", record=True)
        if not d.eof:
            raise HttpError(400, INVALID_ARGUMENT, "bad gzip body: truncated", record=True)
        data = d.unused_data
        if not data:
            return b"".join(out)


class _StorePool:
    """At most ``size`` store connections, made when first needed, shared by request threads."""

    def __init__(self, db_path: Path, size: int, post_commit: list | None) -> None:
        self.db_path = db_path
        self.size = size
        self._post_commit = post_commit
        self._free: queue.LifoQueue = queue.LifoQueue()
        self._made: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def opened(self) -> int:
        return len(self._made)

    def get(self, timeout: float) -> tuple[sqlite3.Connection, list]:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            make = len(self._made) < self.size and not self._closed
            if make:
                conn = connect(self.db_path)
                self._made.append(conn)
        if make:
            hooks = list(postcommit.default() if self._post_commit is None else self._post_commit)
            return conn, hooks
        try:
            return self._free.get(timeout=max(0.0, timeout))
        except queue.Empty:
            raise HttpError(503, UNAVAILABLE, "the store is busy (all its connections are in use)", retry_after=1) from None

    def put(self, item: tuple[sqlite3.Connection, list]) -> None:
        with self._lock:
            if self._closed:
                item[0].close()
                return
        self._free.put(item)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        while True:
            try:
                conn, _hooks = self._free.get_nowait()
            except queue.Empty:
                return
            conn.close()


@dataclass(eq=False)
class _Queued:
    """One request's span groups waiting to be committed (``Receiver._write``), and how it went."""

    groups: list[list[otlp.SpanItem]]
    bad: list[otlp.BadSpan]  # the request's refused spans; ``_commit`` adds those the store refuses
    limited_to: Token | None = None  # a sender with an agent list (``_allowed`` on its turn to write)
    accepted: int = 0  # groups committed
    results: list[BatchResult] = field(default_factory=list)
    error: Exception | None = None
    settled: bool = False  # committed, or found to hold nothing the store takes

    @property
    def done(self) -> bool:
        """Settled or given its error (``_commit_queued`` leaves every request of its batch one or the other)."""
        return self.settled or self.error is not None


class Receiver:
    """Owns the HTTP server, the connection threads and a small pool of store connections."""

    def __init__(
        self,
        db_path: str | Path,
        host: str = "127.0.0.1",
        port: int = 4318,
        *,
        max_body: int = MAX_BODY,
        on_commit: Callable[[BatchResult], None] | None = None,
        post_commit: list | None = None,
        tokens: list[Token] | None = None,
        tls: ssl.SSLContext | None = None,
        max_connections: int = MAX_CONNECTIONS,
        max_bodies: int = MAX_BODIES,
        store_connections: int = STORE_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.db_path = Path(db_path)
        self.max_body = max_body
        self.on_commit = on_commit
        self.auth = Authenticator(tokens) if tokens else None
        self.tls = tls
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.stats = ReceiverStats()
        self.refused = RefusalLog("with a missing or wrong token")
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        # accepted socket -> [its thread, the socket it is served on (TLS wraps it)]
        self._open: dict[socket.socket, list] = {}
        self._bodies = threading.BoundedSemaphore(max_bodies)
        self._writer = threading.Lock()  # the turn to write (``_write``)
        self._queued: list[_Queued] = []  # requests waiting to be committed, in arrival order
        self._queued_lock = threading.Lock()
        connect(self.db_path).close()  # create and migrate the store before serving
        self.pool = _StorePool(self.db_path, store_connections, post_commit)
        self.server = _Server((host, port), self)
        self._thread: threading.Thread | None = None

    def set_tokens(self, tokens: list[Token]) -> None:
        """Replace the senders' tokens (a reloaded token file); requests in progress keep the old ones."""
        self.auth = Authenticator(tokens)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    @property
    def endpoint(self) -> str:
        host, port = self.address
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{port}{PATH}"

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)

    # -- lifecycle -----------------------------------------------------------

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def start(self) -> Receiver:
        self._thread = threading.Thread(target=self.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()
        return self

    def close(self, wait: float = 10.0) -> None:
        """Stop accepting, let requests in progress finish (at most ``wait`` s), close the store."""
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
        self.server.server_close()
        with self._lock:
            open_now = list(self._open.items())
        for _sock, (_thread, served) in open_now:
            try:
                # The reading half only: a request being committed still gets its answer.
                socket.socket.shutdown(served, socket.SHUT_RD)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        for _sock, (thread, _served) in open_now:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.pool.close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- connections -----------------------------------------------------------

    def _admit(self, sock: socket.socket, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.stats.busy += 1
                self.stats.noted(503, f"too many connections open (from {client_address[0]})")
            _refuse_busy(sock, tls=self.tls is not None)
            return
        thread = threading.Thread(target=self._serve_connection, args=(sock, client_address),
                                  name="otlp-connection", daemon=True)
        with self._lock:
            self._open[sock] = [thread, sock]
            self.stats.connections += 1
            self.stats.peak_connections = max(self.stats.peak_connections, len(self._open))
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: refuse this one, keep serving
            with self._lock:
                self._open.pop(sock, None)
                self.stats.connections -= 1
                self.stats.busy += 1
                self.stats.noted(503, f"no thread for another connection (from {client_address[0]})")
            self._slots.release()
            _refuse_busy(sock, tls=self.tls is not None)

    def _serve_connection(self, sock: socket.socket, client_address) -> None:
        conn = sock
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                with self._lock:
                    self._open[sock][1] = conn  # `sock` itself is detached now
                conn.settimeout(self.idle_timeout)
                try:
                    conn.do_handshake()
                except (OSError, ssl.SSLError) as exc:
                    log.debug("TLS handshake with %s failed: %s", client_address[0], exc)
                    return
            self.server.finish_request(conn, client_address)
        except OSError as exc:  # the client went away (reset, broken pipe, TLS alert): nothing to answer
            log.debug("OTLP connection from %s ended: %s", client_address[0], exc)
        except Exception:
            log.exception("OTLP connection from %s failed", client_address[0])
        finally:
            try:
                conn.close()
            except OSError:
                pass
            with self._lock:
                self._open.pop(sock, None)
            self._slots.release()

    # -- writing -------------------------------------------------------------

    def ingest(self, body: bytes, content_type: str, *, source: Token | str | None = None,
               deadline: float | None = None, where: str = "", logs: bool = False) -> tuple[int, list[otlp.BadSpan]]:
        """Decode and commit one request body (of traces, or of ``logs``), leaving out the spans
        or records that cannot be taken. Returns (spans or records accepted, those refused).
        Raises HttpError when the body as a whole is unusable or the store unavailable."""
        with otlp.gc_paused():  # many small objects, no cycles (store/otlp.py gc_paused)
            return self._ingest(body, content_type, source=source, deadline=deadline, where=where, logs=logs)

    def _ingest(self, body: bytes, content_type: str, *, source: Token | str | None,
                deadline: float | None, where: str, logs: bool) -> tuple[int, list[otlp.BadSpan]]:
        token = source if isinstance(source, Token) else None
        name = source.name if isinstance(source, Token) else source
        bad: list[otlp.BadSpan] = []
        try:
            if logs:
                items = otlp_logs.decode_protobuf(body, partial=True) if content_type == PROTOBUF \
                    else otlp_logs.decode_json(body, partial=True)
                bad.extend(otlp.BadSpan(reason) for reason in items.rejected)
            elif content_type == PROTOBUF:
                spans = otlp.spans_from_protobuf(body, bad)
            else:
                spans = otlp.spans_from_json(otlp.load_json(body), bad)
        except otlp.OtlpError as exc:
            raise HttpError(400, INVALID_ARGUMENT, str(exc), record=True) from None
        except RecursionError:  # nesting deeper than the decoder's stack
            raise HttpError(400, INVALID_ARGUMENT, "body nested too deeply", record=True) from None
        if not logs:
            items = otlp.to_events(spans, bad)
        groups: dict[tuple[str, str], list[otlp.SpanItem]] = {}
        for item in items:
            item.source = name
            groups.setdefault(item.key[:2], []).append(item)
        kept = list(groups.values())
        request = _Queued(kept, bad, token if token is not None and token.agents is not None else None)
        if kept:
            self._write(request, deadline)
        results, accepted = request.results, request.accepted
        if bad:
            self._record_refused(bad, where, name, 5.0 if deadline is None else deadline - time.monotonic())
        events = sum(r.events for r in results)
        with self._lock:
            if logs:
                self.stats.log_records += accepted
            else:
                self.stats.spans += accepted
            self.stats.events += events
            if logs:
                self.stats.rejected_log_records += len(bad)
            else:
                self.stats.rejected_spans += len(bad)
        if self.on_commit is not None and results:
            merged = BatchResult(events=events, rejects=sum(r.rejects for r in results))
            for r in results:
                merged.tasks |= r.tasks
                merged.escalations.extend(r.escalations)
            if merged.events or merged.rejects:
                self.on_commit(merged)
        return accepted, bad

    def _write(self, request: _Queued, deadline: float | None) -> None:
        """Commit ``request``'s spans: queued, and written by whichever request thread holds the
        writer's turn, with every request queued meanwhile in one transaction (group commit).

        SQLite takes one writer at a time: request threads each opening their own transaction
        waited for its lock in SQLite's busy handler, which sleeps 1, 2, 5, 10... ms between
        tries, so four clients were served slower than one (bench/otlp.py). Here they wait on
        a lock that wakes them at once, and a request that arrives while another is written
        shares the next transaction instead of paying for its own. Returns when ``request``
        is committed (or has its error); never answers for spans not yet committed.
        """
        with self._queued_lock:
            self._queued.append(request)
        wait = 5.0 if deadline is None else deadline - time.monotonic()
        if not self._writer.acquire(timeout=max(0.0, wait)):
            with self._queued_lock:
                waiting = any(r is request for r in self._queued)
                if waiting:
                    self._queued = [r for r in self._queued if r is not request]
            if waiting:
                raise HttpError(503, UNAVAILABLE, "the store is busy (another write is taking long)", retry_after=1)
            self._writer.acquire()  # a writer took it: it is being committed now (bounded by the busy timeout)
        try:
            if not request.done:
                with self._queued_lock:
                    batch, self._queued = self._queued, []
                self._commit_queued(batch, wait)
        finally:
            self._writer.release()
        if request.error is not None:
            raise request.error

    def _commit_queued(self, batch: list[_Queued], wait: float) -> None:
        """Commit the queued requests in one transaction; if that fails on their data, each in
        its own (``_commit`` then finds the spans at fault). Each request gets its error or
        how many of its spans were committed; the transaction's result goes to the first,
        so every event is counted once."""
        try:
            conn, hooks = self.pool.get(wait)
            try:
                self._commit_together(conn, batch)
                for request in batch:
                    for result in request.results:
                        for hook in hooks:
                            try:
                                hook(conn, result)
                            except Exception:  # derived work must never fail a delivery that is committed
                                log.exception("post-commit hook %r failed", hook)
            finally:
                self.pool.put((conn, hooks))
        except Exception as exc:  # (an HttpError is its answer; any other: each request's thread answers 500, logged)
            for request in batch:
                if not request.settled:
                    request.error = exc
        finally:
            for request in batch:
                if not request.settled and request.error is None:  # (interrupted): never a 200 for it
                    request.error = HttpError(503, UNAVAILABLE, "not stored: the receiver is stopping", retry_after=1)

    def _commit_together(self, conn: sqlite3.Connection, batch: list[_Queued]) -> None:
        # A sender limited to some agents is checked against the tasks as stored right before
        # its own transaction (nothing else of this receiver writes in between), after those of
        # the requests queued before it: in a shared transaction the check would not see the
        # tasks its batch-mates start. A batch holding one is committed a request at a time.
        if len(batch) > 1 and all(r.limited_to is None for r in batch):
            try:
                batch[0].results.append(apply_batch(conn, None, [i for r in batch for g in r.groups for i in g], []))
            except sqlite3.OperationalError as exc:  # locked, full, read-only: not the data's fault
                log.warning("OTLP requests not stored (the clients will retry): %s", exc)
                raise HttpError(503, UNAVAILABLE, f"store unavailable: {exc}", retry_after=1) from None
            except Exception:  # (a data error, or one nobody foresaw: it must not fail the batch-mates)
                pass  # rolled back: each request alone, where its spans at fault are found
            else:
                for request in batch:
                    request.accepted, request.settled = len(request.groups), True
                return
        for request in batch:
            try:
                if request.limited_to is not None:
                    try:
                        request.groups = _allowed(conn, request.limited_to, request.groups, request.bad)
                    except sqlite3.OperationalError as exc:  # locked, full, read-only: not the data's fault
                        raise HttpError(503, UNAVAILABLE, f"store unavailable: {exc}", retry_after=1) from None
                if request.groups:
                    request.accepted = self._commit(conn, request.groups, request.bad, request.results)
            except Exception as exc:  # its own answer (a 500 logged by its thread), not its batch-mates' after it
                request.error = exc
            request.settled = True

    def _commit(self, conn: sqlite3.Connection, groups: list[list[otlp.SpanItem]], bad: list[otlp.BadSpan],
                results: list[BatchResult]) -> int:
        """Commit ``groups`` (a span's items each) in one transaction; if the data
        makes it fail, split the batch until the spans at fault are found.
        Returns how many groups were committed."""
        try:
            results.append(apply_batch(conn, None, [i for g in groups for i in g], []))
            return len(groups)
        except sqlite3.OperationalError as exc:  # locked, full, read-only: not the data's fault
            log.warning("OTLP request not stored (the client will retry): %s", exc)
            raise HttpError(503, UNAVAILABLE, f"store unavailable: {exc}", retry_after=1) from None
        except _DATA_ERRORS as exc:
            if len(groups) == 1:
                first = groups[0][0]
                bad.append(otlp.BadSpan(
                    f"span {first.key[1]} of trace {first.key[0]}: cannot be stored: {describe_error(exc)}",
                    json.dumps({"traceId": first.key[0], "spanId": first.key[1],
                                "events": [json.loads(i[1]) for i in groups[0] if i[1]]}).encode()[:MAX_REJECT_RAW]))
                return 0
            mid = len(groups) // 2
            return self._commit(conn, groups[:mid], bad, results) + self._commit(conn, groups[mid:], bad, results)

    def _record(self, conn: sqlite3.Connection, rows: list[tuple[str, bytes]], where: str, source: str | None) -> None:
        try:
            with atomic(conn):
                conn.executemany(
                    "INSERT INTO rejects (source_id, path, offset, error, raw, raw_length, ts, source) VALUES (NULL, ?, 0, ?, ?, ?, ?, ?)",
                    [(where or f"POST {self.endpoint}", error[:1000], raw[:MAX_REJECT_RAW].decode("utf-8", "replace"),
                      len(raw), time.time(), source) for error, raw in rows],
                )
        except sqlite3.Error as exc:
            self._not_kept(len(rows), f"could not record {len(rows)} rejected OTLP span(s) or request(s): {exc}")

    def _not_kept(self, n: int, why: str) -> None:
        """``n`` refused spans or bodies not kept in rejects: logged, and counted for the receiver's status
        (store/receiver_status.py), which shows them on the console's Problems."""
        log.warning("%s", why)
        with self._lock:
            self.stats.refusals[NOT_KEPT] = self.stats.refusals.get(NOT_KEPT, 0) + n
            self.stats.noted(NOT_KEPT, why)

    def _record_refused(self, bad: list[otlp.BadSpan], where: str, source: str | None, wait: float) -> None:
        # (the request's spans are committed: at least a second to record the refused ones, then answer it)
        self._record_pooled([(f"span refused: {b.reason}", b.raw) for b in bad], where, source, max(wait, 1.0),
                            f"could not record {len(bad)} refused OTLP span(s) (the store is busy)")

    def record_reject(self, error: str, body: bytes, *, where: str = "", source: str | None = None,
                      timeout: float = 5.0) -> None:
        self._record_pooled([(error, body)], where, source, timeout,
                            f"could not record a rejected OTLP request (the store is busy): {error}")

    def _record_pooled(self, rows: list[tuple[str, bytes]], where: str, source: str | None, timeout: float,
                       busy: str) -> None:
        """``_record`` on a connection from the pool; if none comes within ``timeout``, ``busy`` says why (``_not_kept``)."""
        try:
            conn, hooks = self.pool.get(timeout)
        except HttpError:
            self._not_kept(len(rows), busy)
            return
        try:
            self._record(conn, rows, where, source)
        finally:
            self.pool.put((conn, hooks))


def _allowed(conn: sqlite3.Connection, token: Token, groups: list[list[otlp.SpanItem]],
             bad: list[otlp.BadSpan]) -> list[list[otlp.SpanItem]]:
    """The groups (spans) ``token`` may write: no span may start a task for an
    agent not in the token's list, nor add to a task of such an agent (known
    from the store or from an agent span in this request)."""
    tasks = {otlp.task_id(g[0].key[0]) for g in groups}
    owners: dict[str, set[str]] = {t: set() for t in tasks}
    # A stored stand-in agent (the service's name, until a span names an agent:
    # tasks.agent_stand_in) owns nothing; a named agent, or a native task's agent, does.
    for task_id, agent in conn.execute(
        "SELECT task_id, agent FROM tasks WHERE agent IS NOT NULL AND NOT agent_stand_in "
        "AND task_id IN (SELECT value FROM json_each(?))",
        (json.dumps(sorted(tasks)),),
    ):
        owners[task_id].add(agent)
    for g in groups:
        for event, _payload in g:
            if event is not None and event.kind == "task_start":
                owners[event.task_id].add(event.agent)
    allowed = ", ".join(sorted(token.agents or ()))
    kept = []
    for g in groups:
        task_id = otlp.task_id(g[0].key[0])
        foreign = sorted(a for a in owners[task_id] if not token.may_write(a))
        if not foreign:
            kept.append(g)
            continue
        trace_id, span_id, _part = g[0].key
        bad.append(otlp.BadSpan(
            f"span {span_id} of trace {trace_id}: agent {foreign[0]!r} is not one that source {token.name!r} "
            f"may write for ({allowed})",
            json.dumps({"traceId": trace_id, "spanId": span_id, "task_id": task_id, "agent": foreign[0]}).encode()))
    return kept


_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
         b"Connection: close\r\nContent-Length: %d\r\n\r\n")


def _refuse_busy(sock: socket.socket, *, tls: bool) -> None:
    """Too many connections: a best-effort 503 (plain HTTP only), then close."""
    try:
        if not tls:
            body = status_body(UNAVAILABLE, "receiver busy: too many open connections", JSON)
            sock.setblocking(False)
            sock.send(_BUSY % len(body) + body)
    except OSError:
        pass
    finally:
        sock.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of connections waits in the kernel, not refused by it

    def __init__(self, address: tuple[str, int], receiver: Receiver) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.receiver = receiver
        super().__init__(address, _Handler)

    def process_request(self, request, client_address) -> None:  # type: ignore[override]
        self.receiver._admit(request, client_address)


class _DeadlineReader(io.RawIOBase):
    """The connection's reading side: each read waits at most the idle timeout,
    and none goes on past the request's deadline (set when its first byte comes)."""

    def __init__(self, handler: _Handler) -> None:
        self.handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        h = self.handler
        receiver = h.receiver
        if h.deadline is None:
            timeout = receiver.idle_timeout
        else:
            timeout = min(receiver.idle_timeout, h.deadline - time.monotonic())
            if timeout <= 0:
                raise TimeoutError("the request took too long to arrive")
        h.connection.settimeout(timeout)
        n = h.connection.recv_into(buffer)
        if h.deadline is None and n:
            h.deadline = time.monotonic() + receiver.request_timeout
        return n


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as OTLP clients expect
    server_version = "agentdeck-otlp"
    deadline: float | None = None

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle's
        # algorithm holds the body back for the client's delayed ACK (40 ms).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile.close()
        self.rfile = io.BufferedReader(_DeadlineReader(self), 65536)

    def handle_one_request(self) -> None:
        self.deadline = None  # set by the first byte of the request
        super().handle_one_request()

    @property
    def receiver(self) -> Receiver:
        return self.server.receiver  # type: ignore[attr-defined]

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        log.debug("%s " + format, self.address_string(), *args)

    def _reply(self, status: int, body: bytes, content_type: str, *, close: bool = False,
               headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            # The request body may be unread: the connection cannot carry another request.
            self.send_header("Connection", "close")
            self.close_connection = True
        buffered = getattr(self, "_headers_buffer", None)  # (none for an HTTP/0.9 request: no headers)
        if buffered is None:
            self.wfile.write(body)
            return
        # Headers and body in one write (end_headers without its flush): one send a
        # request, and the client reads its answer in one piece.
        buffered.extend((b"\r\n", body))
        self.flush_headers()

    def _fail(self, err: HttpError, content_type: str, body: bytes = b"", source: str | None = None) -> None:
        stats = self.receiver.stats
        with self.receiver._lock:
            if err.status < 500 and err.status not in (401, 404, 405, 429):
                stats.rejected += 1
            stats.refusals[err.status] = stats.refusals.get(err.status, 0) + 1
            stats.noted(err.status, f"{err.message} (from {source or self.client_address[0]})")
        if err.record:
            self.receiver.record_reject(f"HTTP {err.status}: {err.message}", body, where=self._where(),
                                        source=source, timeout=self._left())
        reply_type = PROTOBUF if content_type == PROTOBUF else JSON
        headers = {}
        if err.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(err.retry_after)))
        if err.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="agentdeck"'
        self._reply(err.status, status_body(err.code, err.reply, reply_type), reply_type, close=True, headers=headers)

    def _where(self) -> str:
        host, port = self.receiver.address
        return f"POST {'https' if self.receiver.tls else 'http'}://{host}:{port}{urlsplit(self.path).path[:100]}"

    def _left(self) -> float:
        return 5.0 if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def _read_body(self, limit: int) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        n = self._content_length(limit)
        return self.rfile.read(n)

    def _content_length(self, limit: int) -> int:
        length = self.headers.get("Content-Length")
        if length is None:
            raise HttpError(411, INVALID_ARGUMENT, "Content-Length required")
        try:
            n = int(length)
        except ValueError:
            raise HttpError(400, INVALID_ARGUMENT, "bad Content-Length", record=True) from None
        if n < 0:
            raise HttpError(400, INVALID_ARGUMENT, "bad Content-Length", record=True)
        if n > limit:
            raise HttpError(413, RESOURCE_EXHAUSTED, f"body too large ({n} bytes, limit {limit})", record=True)
        return n

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise HttpError(400, INVALID_ARGUMENT, "bad chunked encoding", record=True) from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > limit:
                raise HttpError(413, RESOURCE_EXHAUSTED, f"body too large (limit {limit} bytes)", record=True)
            parts.append(self.rfile.read(size))
            self.rfile.readline(16)

    def _authenticate(self) -> tuple[Token | None, str | None]:
        """The sender's token and the name its writes are stored under."""
        receiver = self.receiver
        cert_name = None
        if isinstance(self.connection, ssl.SSLSocket):
            cert_name = peer_name(self.connection.getpeercert())
        if receiver.auth is None:
            return None, cert_name
        token = receiver.auth.check(self.headers.get("Authorization"))
        if token is None:
            with receiver._lock:
                receiver.stats.unauthorized += 1
            receiver.refused.add(self.client_address[0])
            raise HttpError(401, UNAUTHENTICATED, "unauthenticated")
        return token, token.name

    def _throttle(self, token: Token | None, nbytes: int | None) -> None:
        if token is None:
            return
        if nbytes is None:
            budget, amount, what = token.requests, 1, "request rate"
        else:
            budget, amount, what = token.body_bytes, nbytes, "body bytes per second"
        if budget is None:
            return
        wait = budget.take(amount)
        if wait == 0:
            return
        if math.isinf(wait):
            raise HttpError(413, RESOURCE_EXHAUSTED,
                            f"body of {nbytes} bytes is over source {token.name!r}'s budget of {budget.burst:.0f} bytes a second",
                            record=True)
        with self.receiver._lock:
            self.receiver.stats.throttled += 1
        raise HttpError(429, RESOURCE_EXHAUSTED, f"over source {token.name!r}'s {what} budget; retry later",
                        retry_after=wait)

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        content_type = self.headers.get_content_type()
        receiver = self.receiver
        logs = urlsplit(self.path).path == LOGS_PATH
        body = b""
        source: str | None = None
        try:
            if urlsplit(self.path).path not in PATHS:
                raise HttpError(404, NOT_FOUND, f"no such path: {self.path[:100]} (traces go to {PATH}, "
                                                f"logs to {LOGS_PATH})")
            token, source = self._authenticate()
            self._throttle(token, None)
            if content_type not in (JSON, PROTOBUF):
                raise HttpError(415, UNIMPLEMENTED, f"unsupported content type {content_type!r} (use {PROTOBUF} or {JSON})", record=True)
            encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("gzip", "identity", ""):
                raise HttpError(415, UNIMPLEMENTED, f"unsupported content encoding {encoding!r} (use gzip or none)", record=True)
            chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            if not chunked:
                self._throttle(token, self._content_length(receiver.max_body))
            if not receiver._bodies.acquire(timeout=self._left()):
                raise HttpError(503, UNAVAILABLE, "receiver busy: too many requests in progress", retry_after=1)
            try:
                body = self._read_body(receiver.max_body)
                if chunked:
                    self._throttle(token, len(body))
                if encoding == "gzip":
                    body = gunzip(body, receiver.max_body)
                accepted, bad = receiver.ingest(body, content_type, source=token or source,
                                                deadline=self.deadline, where=self._where(), logs=logs)
            finally:
                receiver._bodies.release()
            if bad and not accepted:
                # Nothing of the request could be taken: per the OTLP spec that is a
                # permanent failure (400), not a partial success. Each span is in rejects.
                raise HttpError(400, INVALID_ARGUMENT, _summary(bad))
        except HttpError as err:
            self._fail(err, content_type, body, source)
            return
        except TimeoutError:
            with receiver._lock:
                receiver.stats.timeouts += 1
            self._fail(HttpError(408, DEADLINE_EXCEEDED, "request not received in time"), content_type)
            return
        except Exception as exc:  # never a dropped connection without an answer
            log.exception("OTLP request failed")
            # A 500 is not retried by OTLP clients: its body is kept in rejects, so the console's Problems shows it
            # (not only this log) and nothing of it is lost.
            # The sender is told only that it failed: the exception's text is the receiver's (paths, SQL), not theirs.
            self._fail(HttpError(500, 13, f"internal error: {type(exc).__name__}: {exc} (see the receiver's log)",
                                 record=True, reply="internal error: not stored (the receiver's operator can see why)"),
                       content_type, body, source)
            return
        with receiver._lock:
            receiver.stats.requests += 1
        reply_type = PROTOBUF if content_type == PROTOBUF else JSON
        self._reply(200, export_response(len(bad), _summary(bad), reply_type, logs), reply_type)

    def _not_allowed(self) -> None:
        if urlsplit(self.path).path in PATHS:
            err = HttpError(405, UNIMPLEMENTED, f"method {self.command} not allowed (use POST)")
        else:
            err = HttpError(404, NOT_FOUND, f"no such path: {self.path[:100]}")
        self._fail(err, JSON)

    do_GET = do_PUT = do_DELETE = do_PATCH = _not_allowed  # noqa: N815


def _summary(bad: list[otlp.BadSpan], limit: int = 2000) -> str:
    """partial_success.error_message: how many spans were refused and why (the first reasons)."""
    if not bad:
        return ""
    text = f"{len(bad)} span(s) rejected: "
    shown = 0
    for b in bad:
        reason = b.reason if len(b.reason) <= 300 else b.reason[:299] + "\u2026"
        if shown and len(text) + len(reason) > limit:
            break
        text += ("; " if shown else "") + reason
        shown += 1
    if shown < len(bad):
        text += f"; and {len(bad) - shown} more (see the receiver's rejects)"
    return text
