"""Is a URL on the operator's allowlist? The one check for every call the console makes.

Entries are ``host`` (any port) or ``host:port``; an IPv6 address is written
bracketed (``[::1]``, ``[::1]:8080``) or bare without a port (``::1``).
Callback delivery and compensation both ask ``check_url`` before calling.
"""

from __future__ import annotations

import ipaddress

import httpx

DEFAULT_PORTS = {"http": 80, "https": 443}

# (host, port) with port None meaning "any port".
Entry = tuple[str, int | None]


def _host(text: str) -> str:
    """A host in one spelling: lower case, and an IP address in its canonical form."""
    text = text.strip().lower()
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return text


def parse_entry(entry: str) -> Entry | None:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare ``v6`` → (host, port); None if malformed."""
    entry = entry.strip()
    if entry.startswith("["):
        inside, close, rest = entry[1:].partition("]")
        if not close or not inside:
            return None
        if not rest:
            return _host(inside), None
        if not rest.startswith(":"):
            return None
        port = _port(rest[1:])
        return (_host(inside), port) if port is not None else None
    if entry.count(":") > 1:  # a bare IPv6 address: no port can be told apart from it
        return (_host(entry), None) if _is_ip(entry) else None
    host, sep, port_text = entry.partition(":")
    if not host:
        return None
    if not sep:
        return _host(host), None
    port = _port(port_text)
    return (_host(host), port) if port is not None else None


def _port(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    return True


def _shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_url(url: str, allow_hosts: frozenset[str] | set[str]) -> str | None:
    """None if the console may call ``url``; otherwise why not, in one sentence."""
    try:
        parsed = httpx.URL(url)
    except Exception:
        return "the URL cannot be parsed"
    if parsed.scheme not in DEFAULT_PORTS:
        return f"only http and https URLs can be called, not {parsed.scheme or 'a relative URL'!r}"
    if not parsed.host:
        return "the URL has no host"
    if parsed.userinfo:
        return "URLs with credentials in them are not called"
    host = _host(parsed.host)  # httpx gives an IPv6 host without its brackets
    port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    for entry in allow_hosts:
        parsed_entry = parse_entry(entry)
        if parsed_entry is not None and parsed_entry[0] == host and parsed_entry[1] in (None, port):
            return None
    return f"host {_shown(host, port)} is not on the operator's allowlist (--allow-host / $AGENTDECK_ALLOW_HOSTS)"
