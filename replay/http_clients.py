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
from collections.abc import Iterator
from contextlib import contextmanager
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
    """One client per timeout, shared; ``close`` closes them (a call after it gets a new one).

    A call holds its client with ``lease``: ``close`` (the console exiting) closes a client in use only when its
    last call is done with it. Closed under a call, the call failed ('Cannot send a request, as the client has
    been closed'): a decision approved just before q was recorded as a failed delivery, which no later start
    delivers (it waits for R), where a client of its own finished the call as the console's threads are joined.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[float, httpx.Client] = {}
        self._in_use: dict[httpx.Client, int] = {}  # calls holding each client (lease)
        self._retired: set[httpx.Client] = set()  # closed by close() while in use: closed by its last call

    def get(self, timeout: float) -> httpx.Client:
        with self._lock:
            return self._client(timeout)

    def _client(self, timeout: float) -> httpx.Client:
        client = self._clients.get(timeout)
        if client is None or client.is_closed:
            client = self._clients[timeout] = new_client(timeout)
        return client

    @contextmanager
    def lease(self, timeout: float) -> Iterator[httpx.Client]:
        """The client for ``timeout``, held for one call: ``close`` meanwhile waits for the call to end."""
        with self._lock:  # (one turn: a close between the two would close it before the call)
            client = self._client(timeout)
            self._in_use[client] = self._in_use.get(client, 0) + 1
        try:
            yield client
        finally:
            with self._lock:
                left = self._in_use.pop(client) - 1
                if left:
                    self._in_use[client] = left
                retire = not left and client in self._retired
                if retire:
                    self._retired.discard(client)
            if retire:
                client.close()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            busy = {client for client in clients if client in self._in_use}
            self._retired |= busy
        for client in clients:
            if client not in busy:
                client.close()


@contextmanager
def client_for_call(timeout: float, client: httpx.Client | None = None,
                    clients: ClientPool | None = None) -> Iterator[httpx.Client]:
    """The client one call uses: the caller's own; else the shared pool's, held for the call (``lease``); else
    one made for it and closed after it."""
    if client is not None:
        yield client
    elif clients is not None:
        with clients.lease(timeout) as shared:
            yield shared
    else:
        with new_client(timeout) as own:
            yield own
