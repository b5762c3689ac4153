"""A small local "system of record" that the sample agents really change.

``agentdeck demo`` runs it on loopback (port 8765 by default); the tests run
it on an ephemeral port. It keeps, in memory, every action the agents applied
and undoes them on request:

* ``POST /actions`` ``{action_id, system, operation, params, amount?, before?, after?}``
  applies an action (repeating an action_id returns the first result).
* ``POST /compensate`` ``{action_id, system, operation, params}`` with an
  ``Idempotency-Key`` header undoes it. A repeated key returns the first
  result (header ``Idempotent-Replayed: true``) and never undoes twice;
  an action already undone under another key is a 409.
* ``GET /actions/<id>`` shows an action's state; ``GET /health`` says it is up.
* ``POST /_faults`` ``{"fail_next": n}`` makes the next n compensations fail
  with 503 (to show failure and retry in the demo and the tests).

Only successful compensations are remembered under their key, so a failed
attempt can be retried with the same key.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from collections.abc import Iterable

DEFAULT_PORT = 8765
MAX_BODY = 1024 * 1024


@dataclass
class SystemOfRecord:
    """The state behind the HTTP service (usable directly in tests)."""

    actions: dict[str, dict] = field(default_factory=dict)
    by_key: dict[str, tuple[int, dict]] = field(default_factory=dict)
    undo_calls: int = 0  # compensations that actually changed something
    fail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def apply(self, body: dict) -> tuple[int, dict]:
        action_id = body.get("action_id")
        if not isinstance(action_id, str) or not action_id:
            return 400, {"error": "action_id is required"}
        with self.lock:
            existing = self.actions.get(action_id)
            if existing is not None:
                return 200, {"ok": True, "id": action_id, "state": existing["state"], "replayed": True}
            self.actions[action_id] = {
                "action_id": action_id,
                "system": body.get("system"),
                "operation": body.get("operation"),
                "params": body.get("params") or {},
                "amount": body.get("amount"),
                "before": body.get("before"),
                "after": body.get("after"),
                "state": "applied",
                "applied_at": time.time(),
            }
        return 201, {"ok": True, "id": action_id, "state": "applied"}

    def compensate(self, key: str | None, body: dict) -> tuple[int, dict, bool]:
        """Returns (status, body, replayed)."""
        if not key:
            return 400, {"error": "an Idempotency-Key header is required"}, False
        with self.lock:
            if key in self.by_key:
                status, result = self.by_key[key]
                return status, result, True
            if self.fail_next > 0:
                self.fail_next -= 1
                return 503, {"error": "system of record temporarily unavailable"}, False
            action_id = body.get("action_id")
            action = self.actions.get(action_id) if isinstance(action_id, str) else None
            if action is None:
                return 404, {"error": f"unknown action {action_id!r}"}, False
            if action["state"] == "compensated":
                return 409, {"error": "already compensated", "compensated_at": action["compensated_at"],
                             "idempotency_key": action["compensated_key"]}, False
            action.update(state="compensated", compensated_at=time.time(), compensated_key=key,
                          undo_count=action.get("undo_count", 0) + 1)
            self.undo_calls += 1
            result = {"undone": True, "action_id": action_id, "state": "compensated", "restored": action["before"]}
            self.by_key[key] = (200, result)
            return 200, result, False


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the console owns the terminal
        pass

    def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return None
        raw = self.rfile.read(length) if length else b"{}"
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def do_GET(self) -> None:
        sor = self.server.sor
        if self.path == "/health":
            return self._send(200, {"ok": True, "actions": len(sor.actions)})
        if self.path.startswith("/actions/"):
            action = sor.actions.get(self.path.removeprefix("/actions/"))
            return self._send(200, action) if action else self._send(404, {"error": "unknown action"})
        self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        sor = self.server.sor
        body = self._body()
        if body is None:
            return self._send(400, {"error": "body must be a JSON object under 1 MiB"})
        if self.path == "/actions":
            return self._send(*sor.apply(body))
        if self.path == "/compensate":
            status, result, replayed = sor.compensate(self.headers.get("Idempotency-Key"), body)
            return self._send(status, result, {"Idempotent-Replayed": "true"} if replayed else None)
        if self.path == "/_faults":
            with sor.lock:
                sor.fail_next = int(body.get("fail_next", 0))
            return self._send(200, {"fail_next": sor.fail_next})
        self._send(404, {"error": "not found"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sor: SystemOfRecord


class SorService:
    """The HTTP service running in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, sor: SystemOfRecord | None = None) -> None:
        self.sor = sor or SystemOfRecord()
        self._server = _Server((host, port), _Handler)
        self._server.sor = self.sor
        self._thread = threading.Thread(target=self._server.serve_forever, name="sor", daemon=True)

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def allow_entry(self) -> str:
        """What to add to the operator's allowlist for this service."""
        return f"{self.host}:{self.port}"

    def start(self) -> SorService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)

    def __enter__(self) -> SorService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def seed_from_traces(sor: SystemOfRecord, paths: Iterable[Path]) -> int:
    """Apply every successful action found in trace files (the bundled sample data was
    written offline, so its actions are loaded into the service at start) and the
    compensations the agents already did. Returns how many actions were loaded."""
    loaded = 0
    comps = []
    for path in paths:
        files = sorted(Path(path).glob("*.jsonl")) if Path(path).is_dir() else [Path(path)]
        for f in files:
            with open(f, "rb") as fh:
                for line in fh:
                    if b'"action"' not in line and b'"compensation"' not in line:
                        continue
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue
                    if not isinstance(e, dict):
                        continue
                    if e.get("kind") == "action" and e.get("status") == "ok":
                        status, _ = sor.apply(e)
                        loaded += status == 201
                    elif e.get("kind") == "compensation" and e.get("status") == "ok":
                        comps.append(e)
    for e in comps:
        sor.compensate(f"undo-{e.get('action_id')}", {"action_id": e.get("action_id")})
    return loaded
