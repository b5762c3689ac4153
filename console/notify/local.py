"""Notifications on this machine while a console is open: the terminal bell and ``notify-send``.

These are per process, not per store: every open console rings for an
alert, and none records it as sent. ``LocalRoutes`` remembers the newest
alert this process has seen (starting from those already in the store when
it first ticks, so opening a console does not ring for old alerts); ``tick`` returns
``bell=True`` when a new alert matches a ``bell`` route (the UI rings it)
and starts ``notify-send`` for a ``desktop`` route when it is installed,
without waiting for it.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from agentdeck.console.notify.settings import NotifySettings
from agentdeck.console.safe import clean

MAX_DESKTOP = 3  # at most this many pop-ups a tick; the rest are summed up in one more


def _markup_escape(text: str) -> str:
    # notification daemons may render a basic HTML subset in the body
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def notify_send(summary: str, body: str, urgency: str) -> bool:
    """Start ``notify-send`` (never waits for it); False when it is not installed or cannot start."""
    exe = shutil.which("notify-send")
    if exe is None:
        return False
    try:
        subprocess.Popen(
            [exe, "--app-name=agentdeck", f"--urgency={urgency}", "--", clean(summary, 120, single_line=True),
             _markup_escape(clean(body, 400, single_line=True))],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
    except OSError:
        return False
    return True


URGENCY = {"critical": "critical", "error": "critical", "warning": "normal", "info": "low"}


@dataclass
class LocalRoutes:
    seen: int | None = None  # newest alert id handled by this process
    desktop: Callable[[str, str, str], bool] = field(default=notify_send)

    def start(self, conn: sqlite3.Connection) -> None:
        if self.seen is None:
            self.seen = conn.execute("SELECT max(id) FROM notify_alerts").fetchone()[0] or 0

    def handle(self, conn: sqlite3.Connection, settings: NotifySettings) -> tuple[bool, int]:
        """(ring the bell?, desktop notifications started) for alerts newer than the last call."""
        self.start(conn)
        assert self.seen is not None
        newest = conn.execute("SELECT max(id) FROM notify_alerts").fetchone()[0] or 0
        if newest <= self.seen:
            return False, 0
        rows = conn.execute("SELECT rule, severity, summary FROM notify_alerts WHERE id > ? AND id <= ? ORDER BY id",
                            (self.seen, newest)).fetchall()
        self.seen = newest
        bells = [r for r in settings.routes if r.type == "bell"]
        desktops = [r for r in settings.routes if r.type == "desktop"]
        ring = any(r["rule"] in route.rules for r in rows for route in bells)
        shown = [r for r in rows if any(r["rule"] in route.rules for route in desktops)]
        started = 0
        for r in shown[:MAX_DESKTOP]:
            started += bool(self.desktop(f"agentdeck: {r['rule']}", r["summary"], URGENCY.get(r["severity"], "normal")))
        if len(shown) > MAX_DESKTOP:
            started += bool(self.desktop("agentdeck", f"{len(shown) - MAX_DESKTOP} more notifications", "normal"))
        return ring, started
