"""Named compensation handlers the operator registers.

An action's compensation hook may name a handler instead of an HTTP request
(``{"type": "handler", "handler": "crm.restore_field", "args": {...},
"idempotency_key": "..."}``). Only handlers registered here can run; a trace
naming anything else is refused. Register in a module your deployment imports
before starting the console (e.g. a ``sitecustomize`` or a wrapper script)::

    from agentdeck.replay.handlers import register

    @register("crm.restore_field", system="crm", description="put the old value back")
    def restore_field(args: dict, idempotency_key: str) -> dict:
        ...  # call your system; must itself be idempotent by the key
        return {"status": 200, "body": {"restored": True}}

A handler returns ``{"status": int, "body": ...}`` (status < 400 is success)
or raises to report a failure. It runs in a worker thread, never on the UI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

HandlerFn = Callable[[dict, str], dict]


@dataclass(frozen=True)
class Handler:
    name: str
    fn: HandlerFn
    system: str | None = None
    description: str = ""


HANDLERS: dict[str, Handler] = {}


def register(name: str, *, system: str | None = None, description: str = "") -> Callable[[HandlerFn], HandlerFn]:
    """Decorator: make ``fn`` available to compensation hooks as ``name``."""

    def deco(fn: HandlerFn) -> HandlerFn:
        doc = (fn.__doc__ or "").strip().splitlines()
        HANDLERS[name] = Handler(name, fn, system, description or (doc[0] if doc else ""))
        return fn

    return deco


def unregister(name: str) -> None:
    HANDLERS.pop(name, None)


def get(name: str) -> Handler | None:
    return HANDLERS.get(name)


def call(name: str, args: dict[str, Any], idempotency_key: str) -> dict:
    handler = HANDLERS[name]
    result = handler.fn(dict(args), idempotency_key)
    if not isinstance(result, dict):
        result = {"status": 200, "body": result}
    return result
