"""Who may send traces to the OTLP/HTTP receiver, how much, and for which agents.

A token file (``agentdeck receive --token-file FILE``) holds one sender a line:

    # name    token                              options (all optional)
    host-a    3c1f0a...at-least-16-characters    agents=refund-agent,triage rate=20 bytes=5000000

* ``name`` is what the store keeps with everything the sender wrote
  (``tasks.source``): letters, digits, ``.``, ``_``, ``-``, ``@``, at most 64.
* ``token`` is the secret the sender presents as ``Authorization: Bearer
  <token>`` (what ``OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer <token>``
  and the Collector's ``otlphttp`` ``headers`` send). At least 16 characters.
* ``agents=a,b``: spans may only write tasks of these agents.
* ``rate=N``: requests per second (bursts of up to N, at least 1).
* ``bytes=N``: request body bytes per second (bursts of up to N; a single
  body over N is refused with 413, as it could never fit).

Tokens are compared in constant time: the presented value's SHA-256 is
compared with every known token's digest (``hmac.compare_digest``) without
stopping at a match, so timing tells nothing about which or how much of a
token matched. The file's tokens are never printed, not even in errors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_TOKEN_CHARS = 16


class ConfigError(ValueError):
    """The token file or a TLS file cannot be used; the message says which line or file and why."""


class Budget:
    """A token bucket: ``rate`` units a second, holding at most ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._level = burst
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self, amount: float) -> float:
        """Take ``amount`` now and return 0, or return the seconds until it
        could be taken (``inf`` when it never can: more than the burst)."""
        if amount > self.burst:
            return math.inf
        with self._lock:
            now = time.monotonic()
            self._level = min(self.burst, self._level + (now - self._at) * self.rate)
            self._at = now
            if self._level >= amount:
                self._level -= amount
                return 0.0
            return (amount - self._level) / self.rate


@dataclass
class Token:
    name: str
    digest: bytes = field(repr=False)  # SHA-256 of the secret
    agents: frozenset[str] | None = None
    requests: Budget | None = None
    body_bytes: Budget | None = None

    def may_write(self, agent: str | None) -> bool:
        return self.agents is None or agent is None or agent in self.agents


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


def _number(value: str, where: str, option: str) -> float:
    try:
        n = float(value)
    except ValueError:
        raise ConfigError(f"{where}: {option}= needs a number, got {value[:20]!r}") from None
    if not math.isfinite(n) or n <= 0:
        raise ConfigError(f"{where}: {option}= must be a positive number")
    return n


def parse_tokens(text: str, source: str = "token file") -> list[Token]:
    tokens: list[Token] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}, line {number}"
        parts = line.split()
        if len(parts) < 2:
            raise ConfigError(f"{where}: expected 'NAME TOKEN [agents=a,b] [rate=N] [bytes=N]'")
        name, secret, *options = parts
        if not NAME.fullmatch(name):
            raise ConfigError(f"{where}: the name {name[:64]!r} must be letters, digits, '.', '_', '-', '@' (at most 64)")
        if len(secret) < MIN_TOKEN_CHARS:
            raise ConfigError(f"{where}: the token of {name!r} is shorter than {MIN_TOKEN_CHARS} characters")
        if name in names:
            raise ConfigError(f"{where}: the name {name!r} is used twice")
        token = Token(name, _digest(secret))
        if token.digest in digests:
            raise ConfigError(f"{where}: the token of {name!r} is also another name's token")
        for option in options:
            key, sep, value = option.partition("=")
            if not sep or not value:
                raise ConfigError(f"{where}: expected OPTION=VALUE, got {option[:40]!r}")
            if key == "agents":
                token.agents = frozenset(a for a in value.split(",") if a)
            elif key == "rate":
                n = _number(value, where, key)
                token.requests = Budget(n, max(1.0, n))
            elif key == "bytes":
                n = _number(value, where, key)
                token.body_bytes = Budget(n, n)
            else:
                raise ConfigError(f"{where}: unknown option {key[:40]!r} (agents=, rate=, bytes=)")
        names.add(name)
        digests.add(token.digest)
        tokens.append(token)
    if not tokens:
        raise ConfigError(f"{source}: no tokens (one 'NAME TOKEN' a line)")
    return tokens


def load_tokens(path: str | Path) -> list[Token]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the token file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_tokens(text, str(path))


def presented_secret(header: str | None) -> str | None:
    """The secret in an Authorization header: ``Bearer <token>``, or the
    password of ``Basic`` credentials (what Langfuse's SDK sends)."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            user_pass = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        return user_pass.partition(":")[2] or None
    return None


class Authenticator:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens

    def check(self, header: str | None) -> Token | None:
        secret = presented_secret(header)
        presented = _digest(secret if secret is not None else "")
        found = None
        for token in self.tokens:  # no early exit: the time does not depend on which matched
            if hmac.compare_digest(presented, token.digest) and secret is not None:
                found = token
        return found


class RefusalLog:
    """Counts refused requests and logs them at most once per ``every`` seconds."""

    def __init__(self, what: str, every: float = 10.0) -> None:
        self.what = what
        self.every = every
        self.total = 0
        self._pending = 0
        self._last = -math.inf
        self._lock = threading.Lock()

    def add(self, peer: str) -> None:
        with self._lock:
            self.total += 1
            self._pending += 1
            now = time.monotonic()
            if now - self._last < self.every:
                return
            pending, self._pending, self._last = self._pending, 0, now
        log.warning("refused %d request(s) %s (latest from %s; %d in all)", pending, self.what, peer, self.total)


def tls_context(cert: str | Path, key: str | Path, client_ca: str | Path | None = None) -> ssl.SSLContext:
    """A server context from PEM files; with ``client_ca``, clients must show a certificate it signed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot use the certificate {cert} with the key {key}: {getattr(exc, 'strerror', None) or exc}") from None
    if client_ca is not None:
        try:
            ctx.load_verify_locations(cafile=str(client_ca))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot use the client CA file {client_ca}: {getattr(exc, 'strerror', None) or exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def peer_name(cert: dict | None) -> str | None:
    """``cert:<common name>`` of a verified client certificate (commas, which
    separate names in ``tasks.source``, become spaces)."""
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return "cert:" + str(value).replace(",", " ")[:64]
    return "cert:?"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere, or "" (every address)
