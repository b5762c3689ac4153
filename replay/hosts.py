"""Is a URL on the operator's allowlist? (entries ``host`` or ``host:port``)."""

from __future__ import annotations

import httpx

DEFAULT_PORTS = {"http": 80, "https": 443}


def check_url(url: str, allow_hosts: frozenset[str] | set[str]) -> str | None:
    """None if the console may call ``url``; otherwise why not, in one sentence."""
    try:
        parsed = httpx.URL(url)
    except Exception:
        return "the URL cannot be parsed"
    if parsed.scheme not in DEFAULT_PORTS:
        return f"only http and https URLs can be called, not {parsed.scheme or 'a relative URL'!r}"
    host = (parsed.host or "").lower()
    if not host:
        return "the URL has no host"
    if parsed.userinfo:
        return "URLs with credentials in them are not called"
    port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    allowed = {h.lower() for h in allow_hosts}
    if host in allowed or f"{host}:{port}" in allowed:
        return None
    return f"host {host}:{port} is not on the operator's allowlist (--allow-host / $AGENTDECK_ALLOW_HOSTS)"
