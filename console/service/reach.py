"""Where a decision on an escalation will go, said before it is taken — and whether anyone is left to get it.

An escalation is *orphaned* when its decision cannot reach the agent that
asked (docs/decisions.md, "Orphaned escalations"): this console has no outbox
AND the escalation has no callback URL, or the URL's host is not on the
allowlist (``--allow-host``), or the latest attempted delivery to that same
callback origin (scheme, host and port) failed as unreachable (connection
refused, no route, connect timeout). A later successful delivery to that
origin clears it: the agent is back.

Plain functions over stored rows; no I/O of their own. The sentences quote
URLs and paths from traces or the operator: screens show them literally
(rich Text, ``console.safe``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# How delivery.py records a callback POST that never reached a listening
# server: httpx's connect-phase errors (refused, unreachable, connect timeout).
# A reply of any kind (even HTTP 500) or a read timeout means someone is there.
UNREACHABLE_PREFIXES = ("ConnectError:", "ConnectTimeout:")
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Reach:
    """Where one decision goes: ``orphaned`` when nobody will receive it; ``sentence`` says it plainly."""

    orphaned: bool
    sentence: str
    why: str = ""  # for an orphaned one: why nobody receives it (no outbox, host not allowed, ...)


@lru_cache(maxsize=4096)  # the queue asks for the same few URLs on every refresh
def origin(url: str | None) -> str | None:
    """``scheme://host:port`` of a callback URL (lower case, default port filled in); None if it has none."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not host:
        return None
    port = port if port is not None else DEFAULT_PORTS.get(scheme)
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}" if port is not None else f"{scheme}://{host}"


def unreachable(error: str | None) -> bool:
    """Did this stored delivery error mean the callback server was not there at all?"""
    return bool(error) and str(error).startswith(UNREACHABLE_PREFIXES)


def unreachable_origins(deliveries: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """Callback origins whose latest attempted delivery failed as unreachable.

    ``deliveries``: decided escalations with ``callback_url``, ``delivery``,
    ``delivery_error``, newest decision first (``store.decisions.callback_deliveries``).
    Only ``delivered`` and ``failed`` count as attempts (``blocked`` never called anyone).
    """
    seen: set[str] = set()
    gone: set[str] = set()
    for r in deliveries:
        key = origin(r["callback_url"])
        if key is None or key in seen or r["delivery"] not in ("delivered", "failed"):
            continue
        seen.add(key)
        if r["delivery"] == "failed" and unreachable(r["delivery_error"]):
            gone.add(key)
    return frozenset(gone)


def reach(callback_url: str | None, outbox: Path | None, callback_problem: str | None,
          gone: frozenset[str] = frozenset()) -> Reach:
    """Where a decision on an escalation with this callback will go.

    ``callback_problem``: ``replay.hosts.check_url``'s answer for the URL
    (None: allowed); ``gone``: ``unreachable_origins`` of the store.
    """
    parts = []
    if outbox is not None:
        parts.append(f"written to {outbox}")
    url_ok = bool(callback_url) and callback_problem is None
    if url_ok:
        parts.append(f"POSTed to {callback_url}")
    dead = url_ok and origin(callback_url) in gone
    if outbox is not None:
        sentence = "Your decision will be " + " and ".join(parts) + "."
        if callback_url and not url_ok:
            sentence += f" The callback is not called: {callback_problem}."
        elif dead:
            sentence += f" Earlier deliveries to {origin(callback_url)} found nobody listening."
        return Reach(False, sentence)
    if not callback_url:
        why = "the escalation has no callback URL and there is no outbox"
    elif not url_ok:
        why = f"the callback is not called: {callback_problem}, and there is no outbox"
    elif dead:
        why = f"earlier deliveries to {origin(callback_url)} found nobody listening and there is no outbox"
        return Reach(True, f"Nobody will receive it: {why}; it is recorded, and POSTed to {callback_url} "
                           "once more in case the agent is back.", why)
    else:
        return Reach(False, "Your decision will be " + parts[0] + ".")
    return Reach(True, f"Nobody will receive it: {why}; it is only recorded.", why)
