"""An OTLP/HTTP trace receiver that answers only once the spans are in the store.

``POST /v1/traces`` with ``application/x-protobuf`` or ``application/json``
bodies, plain or gzip, as any OpenTelemetry SDK or the Collector's
``otlphttp`` exporter sends them. Each request is one transaction
(``store.ingest.apply_batch``); the 200 and its ExportTraceServiceResponse
go out after the commit, so a client that got its answer never loses the
spans, and a client that retries (no answer, or 503) cannot duplicate them:
span parts are deduplicated in the same transaction (``store.otlp.claim``).

Errors follow the OTLP/HTTP specification: a ``google.rpc.Status`` body in
the request's encoding, and a status the client knows not to retry for a
bad request (400 bad body, 413 too large, 415 unsupported content type or
encoding, 404 other paths, 405 other methods) and to retry for 503 (the
store was busy). Rejected bodies are also kept in the ``rejects`` table.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import sqlite3
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from collections.abc import Callable
from urllib.parse import urlsplit

from agentdeck.store import otlp, postcommit
from agentdeck.store.db import connect
from agentdeck.store.ingest import MAX_REJECT_RAW, BatchResult, apply_batch

log = logging.getLogger(__name__)

PATH = "/v1/traces"
JSON = "application/json"
PROTOBUF = "application/x-protobuf"
# The Collector's own OTLP receiver accepts 20 MiB by default.
MAX_BODY = 20 * 1024 * 1024

# google.rpc.Code values for the Status body.
INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, UNIMPLEMENTED, UNAVAILABLE = 3, 5, 8, 12, 14


class HttpError(Exception):
    def __init__(self, status: int, code: int, message: str, *, record: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.record = record  # keep the body in the rejects table


@dataclass
class ReceiverStats:
    requests: int = 0
    spans: int = 0
    events: int = 0
    rejected: int = 0


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


def _gunzip(data: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise HttpError(400, INVALID_ARGUMENT, f"bad gzip body: {exc}", record=True) from None
    if len(out) > limit:
        raise HttpError(413, RESOURCE_EXHAUSTED, f"body too large once decompressed (limit {limit} bytes)", record=True)
    if not d.eof:
        raise HttpError(400, INVALID_ARGUMENT, "bad gzip body: truncated", record=True)
    return out


class Receiver:
    """Owns the HTTP server and a small pool of store connections (one a request thread at a time)."""

    def __init__(
        self,
        db_path: str | Path,
        host: str = "127.0.0.1",
        port: int = 4318,
        *,
        max_body: int = MAX_BODY,
        on_commit: Callable[[BatchResult], None] | None = None,
        post_commit: list | None = None,
    ) -> None:
        self.db_path = Path(db_path)
        self.max_body = max_body
        self.on_commit = on_commit
        self._post_commit = post_commit
        self.stats = ReceiverStats()
        self._lock = threading.Lock()
        self._pool: queue.SimpleQueue = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        connect(self.db_path).close()  # create and migrate the store before serving
        self.server = ThreadingHTTPServer((host, port), _Handler)
        self.server.daemon_threads = True
        self.server.receiver = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.server.server_address[:2]

    @property
    def endpoint(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}{PATH}"

    # -- lifecycle -----------------------------------------------------------

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def start(self) -> Receiver:
        self._thread = threading.Thread(target=self.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
        self.server.server_close()
        for conn in self._all:
            conn.close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing -------------------------------------------------------------

    def _checkout(self) -> tuple[sqlite3.Connection, list]:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            conn = connect(self.db_path)
            with self._lock:
                self._all.append(conn)
            hooks = list(postcommit.default() if self._post_commit is None else self._post_commit)
            return conn, hooks

    def ingest(self, body: bytes, content_type: str) -> tuple[int, int]:
        """Decode and commit one request body; returns (spans, events). Raises HttpError."""
        try:
            items = otlp.decode_protobuf(body) if content_type == PROTOBUF else otlp.decode_json(body)
        except otlp.OtlpError as exc:
            raise HttpError(400, INVALID_ARGUMENT, str(exc), record=True) from None
        conn, hooks = self._checkout()
        try:
            try:
                result = apply_batch(conn, None, items, [])
            except sqlite3.OperationalError as exc:  # locked or busy beyond the timeout: the client retries
                raise HttpError(503, UNAVAILABLE, f"store unavailable: {exc}") from None
            for hook in hooks:
                try:
                    hook(conn, result)
                except Exception:  # derived work must never fail a delivery that is committed
                    log.exception("post-commit hook %r failed", hook)
        finally:
            self._pool.put((conn, hooks))
        spans = otlp.count_spans(items)
        with self._lock:
            self.stats.requests += 1
            self.stats.spans += spans
            self.stats.events += result.events
        if self.on_commit is not None and (result.events or result.rejects):
            self.on_commit(result)
        return spans, result.events

    def record_reject(self, error: str, body: bytes) -> None:
        with self._lock:
            self.stats.rejected += 1
        conn, hooks = self._checkout()
        try:
            conn.execute(
                "INSERT INTO rejects (source_id, path, offset, error, raw, raw_length, ts) VALUES (NULL, ?, 0, ?, ?, ?, ?)",
                (f"POST {self.endpoint}", error[:1000], body[:MAX_REJECT_RAW].decode("utf-8", "replace"),
                 len(body), time.time()),
            )
        except sqlite3.Error:
            log.warning("could not record a rejected OTLP request: %s", error)
        finally:
            self._pool.put((conn, hooks))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as OTLP clients expect
    server_version = "agentdeck-otlp"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle's
        # algorithm holds the body back for the client's delayed ACK (40 ms).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def receiver(self) -> Receiver:
        return self.server.receiver  # type: ignore[attr-defined]

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        log.debug("%s " + format, self.address_string(), *args)

    def _reply(self, status: int, body: bytes, content_type: str, *, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if close:
            # The request body may be unread: the connection cannot carry another request.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _fail(self, err: HttpError, content_type: str, body: bytes = b"") -> None:
        if err.record:
            self.receiver.record_reject(f"HTTP {err.status}: {err.message}", body)
        reply_type = PROTOBUF if content_type == PROTOBUF else JSON
        self._reply(err.status, status_body(err.code, err.message, reply_type), reply_type, close=True)

    def _read_body(self) -> bytes:
        limit = self.receiver.max_body
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        length = self.headers.get("Content-Length")
        if length is None:
            raise HttpError(411, INVALID_ARGUMENT, "Content-Length required")
        try:
            n = int(length)
        except ValueError:
            raise HttpError(400, INVALID_ARGUMENT, "bad Content-Length") from None
        if n < 0:
            raise HttpError(400, INVALID_ARGUMENT, "bad Content-Length")
        if n > limit:
            raise HttpError(413, RESOURCE_EXHAUSTED, f"body too large ({n} bytes, limit {limit})", record=True)
        return self.rfile.read(n)

    def _read_chunked(self, limit: int) -> bytes:
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise HttpError(400, INVALID_ARGUMENT, "bad chunked encoding") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > limit:
                raise HttpError(413, RESOURCE_EXHAUSTED, f"body too large (limit {limit} bytes)", record=True)
            parts.append(self.rfile.read(size))
            self.rfile.readline(16)

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        content_type = self.headers.get_content_type()
        body = b""
        try:
            if urlsplit(self.path).path != PATH:
                raise HttpError(404, NOT_FOUND, f"no such path: {self.path[:100]} (traces go to {PATH})")
            if content_type not in (JSON, PROTOBUF):
                raise HttpError(415, UNIMPLEMENTED, f"unsupported content type {content_type!r} (use {PROTOBUF} or {JSON})", record=True)
            encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("gzip", "identity", ""):
                raise HttpError(415, UNIMPLEMENTED, f"unsupported content encoding {encoding!r} (use gzip or none)", record=True)
            body = self._read_body()
            if encoding == "gzip":
                body = _gunzip(body, self.receiver.max_body)
            self.receiver.ingest(body, content_type)
        except HttpError as err:
            self._fail(err, content_type, body)
            return
        except Exception:  # never a dropped connection without an answer
            log.exception("OTLP request failed")
            self._fail(HttpError(500, 13, "internal error (see the receiver's log)"), content_type)
            return
        # An ExportTraceServiceResponse with nothing rejected: empty in both encodings.
        self._reply(200, b"" if content_type == PROTOBUF else b"{}", content_type)

    def _not_allowed(self) -> None:
        if urlsplit(self.path).path == PATH:
            err = HttpError(405, UNIMPLEMENTED, f"method {self.command} not allowed (use POST)")
        else:
            err = HttpError(404, NOT_FOUND, f"no such path: {self.path[:100]}")
        self._fail(err, JSON)

    do_GET = do_PUT = do_DELETE = do_PATCH = _not_allowed  # noqa: N815
