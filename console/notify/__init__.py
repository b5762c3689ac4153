"""Notifications: rules over the store, routes to people, each sent once (``docs/notify.md``).

No textual imports here: the console calls ``tick`` from a worker and
``agentdeck notify`` calls it headless.

    tick(conn, settings, now) -> TickResult      evaluate rules, send what is due
    ack(conn, notification_id, by, now)          acknowledge (audited; PagerDuty told)
    view(conn) -> list[ViewRow]                  what was sent where, and how it went
    retry(conn, send_id, by=..., now=...)        a failed or blocked send, again
"""

import importlib
from typing import Any

# Loaded on first use: the console's Settings import NotifySettings at start-up,
# and the engine (httpx, the rules' queries) is only needed once a route exists.
_WHERE = {
    "TickResult": "engine", "tick": "engine", "LocalRoutes": "local",
    "AckOutcome": "queue", "UnknownNotification": "queue", "ViewRow": "queue", "ack": "queue", "counts": "queue",
    "retry": "queue", "view": "queue",
    "NotifySettings": "settings", "RouteSettings": "settings", "RuleSettings": "settings", "parse_route": "settings",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"agentdeck.console.notify.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_WHERE)
