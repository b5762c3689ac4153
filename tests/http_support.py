"""Small pieces for the tests' own HTTP servers on 127.0.0.1."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler


def answer_json(handler: BaseHTTPRequestHandler, status: int, body: bytes,
                headers: tuple[tuple[str, str], ...] = ()) -> None:
    """Send ``status`` with a JSON ``body`` (and ``headers``), its length given (keep-alive servers need it)."""
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
