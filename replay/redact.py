"""Removing secrets from payloads before they leave the console (evidence, scenario files).

Two nets, both by pattern:

* a value whose *key* names a secret (``password``, ``api_key``,
  ``Authorization``, ``client_secret``, ``cookie``...) is replaced whole;
* inside any string, known secret shapes are replaced: bearer/basic
  credentials, AWS access key ids and secret keys, JWTs, GitHub/Slack/OpenAI/
  Stripe-style tokens, private key blocks, passwords in URLs and
  ``key=value`` pairs.

The structure is kept (a redacted string stays a string), so a redacted
event still validates and a packet still reads.
"""

from __future__ import annotations

import re
from typing import Any

MARK = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|"
    r"authorization|auth[_-]?header|cookie|set-cookie|session[_-]?id|credentials?|x-api-key|signature)$",
    re.IGNORECASE,
)
# Key names that end like a secret but are not one.
_NOT_SECRET_KEY = re.compile(r"^(idempotency[_-]?key|token[_-]?count|tokens?[_-]?(in|out)|max[_-]?tokens)$", re.IGNORECASE)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL), MARK),
    (re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE), r"\1 " + MARK),
    (re.compile(r"\b(AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b"), MARK),
    (re.compile(r"(?i)(aws_?secret_?access_?key|aws_?session_?token)(\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{20,}"), r"\1\2" + MARK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), MARK),
    (re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"), MARK),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), MARK),
    (re.compile(r"\b(sk|rk|pk)[-_](live|test|proj)?[-_]?[A-Za-z0-9]{16,}"), MARK),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), MARK),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]+):[^\s@/]+@"), r"\1:" + MARK + "@"),
    (re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?token|client[_-]?secret)"
                r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s&,;\"']+)"), r"\1\2" + MARK),
]


def redact_text(text: str) -> tuple[str, int]:
    count = 0
    for pattern, repl in _PATTERNS:
        text, n = pattern.subn(repl, text)
        count += n
    return text, count


def _is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key)) and not _NOT_SECRET_KEY.match(key)


def redact(value: Any) -> tuple[Any, int]:
    """A copy of ``value`` with secrets replaced, and how many were."""
    count = 0

    def walk(v: Any) -> Any:
        nonlocal count
        if isinstance(v, str):
            out, n = redact_text(v)
            count += n
            return out
        if isinstance(v, dict):
            result = {}
            for k, item in v.items():
                if isinstance(k, str) and _is_secret_key(k) and item not in (None, "", [], {}):
                    if isinstance(item, (str, int, float)):
                        count += 1
                        result[k] = MARK
                        continue
                result[k] = walk(item)
            return result
        if isinstance(v, (list, tuple)):
            return [walk(i) for i in v]
        return v

    return walk(value), count
