"""One redaction policy for everything the console shows or exports: what counts as a secret.

Two nets:

* **key names**, at any depth and inside lists: a value whose key names a
  secret (``password``, ``secret_key``, ``api_key``, ``Authorization``,
  ``credentials``, ``session``, ``cookie``...) is masked whole — every string
  and number under it, however deeply nested (``credentials: {"pw": …}``,
  ``passwords: [...]``). Key names are split into words (``clientSecret``,
  ``X-Api-Key``, ``db_password``), so a word anywhere in the name counts;
  names that only look alike (``idempotency_key``, ``token_count``,
  ``max_tokens``, ``auth_type``) do not.
* **value shapes**, inside any string: bearer/basic credentials, AWS keys,
  JWTs, GitHub/Slack/OpenAI/Stripe/Google tokens, PEM private key blocks,
  passwords in URLs, ``key=value`` pairs and Luhn-valid payment card numbers.

The structure is kept (a masked string stays a string, a list keeps its
length), so a redacted event still validates and a packet still reads.
Masking is idempotent: masking masked text finds nothing more.

The policy is a pydantic model, so operator settings can carry it:
``RedactionPolicy(extra_keys=["ssn"], extra_patterns=[r"ACME-\\d{8}"])``
adds key names and value patterns to the built-in ones (never removes any);
``configure(policy)`` makes it the one ``redact()`` uses in this process.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MARK = "[REDACTED]"

# Words that make a key name a secret wherever they occur in it.
_SECRET_WORDS = frozenset({
    "password", "passwords", "passwd", "pwd", "pw", "passphrase", "secret", "secrets", "token", "apikey",
    "credential", "credentials", "creds", "cookie", "cookies", "session", "sessionid", "sessiontoken",
    "authorization", "signature", "privatekey", "secretkey", "accesskey", "jwt", "bearer", "otp", "cvv", "cvc",
    "pin", "passcode",
})
# Two adjacent words that name a secret together (``api_key``, ``private-key``, ``auth header``).
_SECRET_PAIRS = frozenset({
    ("api", "key"), ("private", "key"), ("secret", "key"), ("access", "key"), ("auth", "header"),
    ("auth", "token"), ("set", "cookie"), ("client", "secret"), ("card", "number"), ("account", "key"),
    ("signing", "key"), ("encryption", "key"), ("master", "key"), ("x", "auth"),
})
# A name ending in one of these words describes a secret without holding it (``token_count``, ``auth_type``).
_DESCRIPTIVE_LAST = frozenset({
    "count", "counts", "in", "out", "limit", "max", "min", "ttl", "type", "kind", "scheme", "method", "length",
    "len", "set", "present", "required", "enabled", "expiry", "expires", "expired", "policy", "name", "names",
    "rotated", "rotation", "age", "timeout", "used", "usage", "budget", "total", "at",
})
_NOT_SECRET = frozenset({"idempotencykey", "maxtokens", "tokensin", "tokensout", "pagetoken", "nextpagetoken",
                         "continuationtoken", "cursortoken"})

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def key_words(key: str) -> list[str]:
    """``"X-Api-Key"`` → ``["x", "api", "key"]``; ``"clientSecret"`` → ``["client", "secret"]``."""
    return [w for w in _NON_ALNUM.split(_CAMEL.sub("_", key).lower()) if w]


_BUILTIN_PATTERNS: list[tuple[str, str]] = [
    (r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|$)", MARK),
    (r"(?i)\b(Bearer|Basic|Token|Digest)\s+[A-Za-z0-9._~+/=-]{8,}", r"\1 " + MARK),
    (r"\b(AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b", MARK),
    (r"(?i)(aws_?secret_?access_?key|aws_?session_?token)(\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{20,}", r"\1\2" + MARK),
    (r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", MARK),
    (r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})", MARK),
    (r"\bglpat-[A-Za-z0-9_-]{20,}", MARK),
    (r"\bxox[abposr]-[A-Za-z0-9-]{10,}", MARK),
    (r"\b(sk|rk|pk)[-_](live|test|proj|ant)?[-_]?[A-Za-z0-9_-]{16,}", MARK),
    (r"\bAIza[0-9A-Za-z_-]{35}\b", MARK),
    (r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]+):(?!\[REDACTED\]@)[^\s@/]+@", r"\1:" + MARK + "@"),
    (r"(?i)\b(password|passwd|pwd|secret|secret[_-]?key|token|api[_-]?key|apikey|access[_-]?token|client[_-]?secret"
     r"|session(?:[_-]?id)?|sid)(\s*[=:]\s*)(?!\[REDACTED\])(\"[^\"]*\"|'[^']*'|[^\s&,;\"']+)", r"\1\2" + MARK),
]
# Card numbers: 13–19 digits (spaces or dashes between groups) with a card network's prefix; masked only if
# the Luhn check passes, so an order number or a millisecond timestamp stays.
# Standing alone: digits inside a hash, a UUID or an id (``ab4532…cd``, ``act-4111…``) are not a card.
_CARD = re.compile(r"(?<![\w-])(?:3[47]|4|5[1-5]|2[2-7]|6(?:011|5)|35|3[068])(?:[ -]?\d){9,18}(?![\w-])")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_sub(text: str) -> tuple[str, int]:
    count = 0

    def repl(m: re.Match[str]) -> str:
        nonlocal count
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            count += 1
            return MARK
        return m.group()

    return _CARD.sub(repl, text), count


class RedactionPolicy(BaseModel):
    """What is a secret: the built-in names and shapes, plus any the operator adds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    extra_keys: tuple[str, ...] = Field(default=(), description="more key names (or words of key names) that hold secrets")
    extra_patterns: tuple[str, ...] = Field(default=(), description="more regular expressions of secret values")

    @field_validator("extra_patterns")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {p!r} ({exc})") from None
        return patterns

    @cached_property
    def _extra_names(self) -> frozenset[str]:
        return frozenset("".join(key_words(k)) for k in self.extra_keys if key_words(k))

    @cached_property
    def _patterns(self) -> list[tuple[re.Pattern[str], str]]:
        return [(re.compile(p), r) for p, r in _BUILTIN_PATTERNS] + [(re.compile(p), MARK) for p in self.extra_patterns]

    def is_secret_key(self, key: str) -> bool:
        words = key_words(key)
        if not words:
            return False
        joined = "".join(words)
        if joined in self._extra_names or any(w in self._extra_names for w in words):
            return True
        if joined in _NOT_SECRET or (len(words) > 1 and words[-1] in _DESCRIPTIVE_LAST):
            return False
        if joined in _SECRET_WORDS or any(w in _SECRET_WORDS for w in words):
            return True
        return any(pair in _SECRET_PAIRS for pair in zip(words, words[1:]))

    def redact_text(self, text: str) -> tuple[str, int]:
        count = 0
        for pattern, repl in self._patterns:
            text, n = pattern.subn(repl, text)
            count += n
        text, n = _card_sub(text)
        return text, count + n

    def redact(self, value: Any) -> tuple[Any, int]:
        """A copy of ``value`` with secrets replaced by ``MARK``, and how many were."""
        count = 0

        def mask_all(v: Any) -> Any:
            nonlocal count
            if isinstance(v, dict):
                return {k: mask_all(item) for k, item in v.items()}
            if isinstance(v, (list, tuple)):
                return [mask_all(i) for i in v]
            if isinstance(v, bool) or v is None or v == "" or v == MARK:
                return v  # nothing secret in a flag or an absent value; masked already
            if isinstance(v, (str, int, float)):
                count += 1
                return MARK
            return v

        def walk(v: Any) -> Any:
            nonlocal count
            if isinstance(v, str):
                out, n = self.redact_text(v)
                count += n
                return out
            if isinstance(v, dict):
                return {k: (mask_all(item) if isinstance(k, str) and self.is_secret_key(k) else walk(item))
                        for k, item in v.items()}
            if isinstance(v, (list, tuple)):
                return [walk(i) for i in v]
            if isinstance(v, int) and not isinstance(v, bool) and 13 <= len(str(abs(v))) <= 19:
                out, n = _card_sub(str(v))
                if n:
                    count += n
                    return MARK
            return v

        return walk(value), count


DEFAULT = RedactionPolicy()
_active: RedactionPolicy = DEFAULT


def policy(extra_keys: list[str] | tuple[str, ...] = (), extra_patterns: list[str] | tuple[str, ...] = ()) -> RedactionPolicy:
    """The built-in policy extended with more key names and value patterns (raises ValueError for a bad pattern)."""
    return RedactionPolicy(extra_keys=tuple(extra_keys), extra_patterns=tuple(extra_patterns))


def configure(new: RedactionPolicy) -> RedactionPolicy:
    """Make ``new`` the policy every screen and export uses; returns the previous one."""
    global _active
    previous, _active = _active, new
    return previous


def active() -> RedactionPolicy:
    return _active


def redact_text(text: str) -> tuple[str, int]:
    return _active.redact_text(text)


def redact(value: Any, policy: RedactionPolicy | None = None) -> tuple[Any, int]:
    """A copy of ``value`` with secrets replaced, and how many were (the active policy unless one is given)."""
    return (policy or _active).redact(value)
