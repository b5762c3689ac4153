"""HTTP clients for the calls the console makes: decision callbacks, release hooks, compensations.

Making an ``httpx.Client`` costs 0.1-0.3 s of CPU (its TLS context reads and parses the CA bundle), and every
call made one. A ``ClientPool`` keeps one client per timeout, made on first use and shared by every call after
(from any thread: httpx's client and its connection pool are safe to share), until ``close`` (the console's
service owns one and closes it when the console exits).

A client is made as each call made its own: the timeout given, no redirect followed (a 3xx is an answer, never
a way to another host), nothing from the environment (``trust_env=False``: no proxy, no netrc credentials).
It also keeps no cookies: a Set-Cookie in one answer is never sent with a later call, as when no client outlived
its call. Which hosts may be called is not the client's business: each call asks ``replay.hosts.check_url``
first, as before.

httpx is imported on first use: the console's start-up does not pay for it.
"""

from __future__ import annotations

import threading
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


def new_client(timeout: float) -> httpx.Client:
    """One client, made as every call the console makes needs it (see the module's docstring)."""
    import httpx

    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))  # no domain may set one
    return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, cookies=no_cookies)


class ClientPool:
    """One client per timeout, shared; ``close`` closes them (a call after it gets a new one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[float, httpx.Client] = {}

    def get(self, timeout: float) -> httpx.Client:
        with self._lock:
            client = self._clients.get(timeout)
            if client is None or client.is_closed:
                client = self._clients[timeout] = new_client(timeout)
            return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
