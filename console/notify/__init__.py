"""Notifications: rules over the store, routes to people, each sent once (``docs/notify.md``).

No textual imports here: the console calls ``tick`` from a worker and
``agentdeck notify`` calls it headless.

    tick(conn, settings, now) -> TickResult      evaluate rules, send what is due
    ack(conn, notification_id, by, now)          acknowledge (audited; PagerDuty told)
    view(conn) -> list[ViewRow]                  what was sent where, and how it went
    retry(conn, send_id, by=..., now=...)        a failed or blocked send, again
"""

from agentdeck.console.notify.engine import TickResult, tick
from agentdeck.console.notify.local import LocalRoutes
from agentdeck.console.notify.queue import AckOutcome, UnknownNotification, ViewRow, ack, counts, retry, view
from agentdeck.console.notify.settings import NotifySettings, RouteSettings, RuleSettings, parse_route

__all__ = ["AckOutcome", "LocalRoutes", "NotifySettings", "RouteSettings", "RuleSettings", "TickResult",
           "UnknownNotification", "ViewRow", "ack", "counts", "parse_route", "retry", "tick", "view"]
