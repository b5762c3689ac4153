"""Only hosts on the operator's allowlist may be called; a trace cannot talk its way around it."""

from __future__ import annotations

import pytest

from agentdeck.replay.hosts import check_url


@pytest.mark.parametrize("url, allow", [
    ("http://127.0.0.1:8765/compensate", {"127.0.0.1:8765"}),
    ("http://127.0.0.1:8765/compensate", {"127.0.0.1"}),
    ("https://SOR.Example.com/undo", {"sor.example.com"}),
    ("https://sor.example.com/undo", {"sor.example.com:443"}),
    ("http://sor.example.com/undo", {"SOR.EXAMPLE.COM:80"}),
])
def test_allowed(url, allow):
    assert check_url(url, frozenset(allow)) is None


@pytest.mark.parametrize("url, allow, why", [
    ("http://127.0.0.1:9999/x", {"127.0.0.1:8765"}, "127.0.0.1:9999 is not on the operator's allowlist"),
    ("http://evil.example.com/x", set(), "not on the operator's allowlist"),
    ("http://sor.example.com.evil.io/x", {"sor.example.com"}, "not on the operator's allowlist"),
    ("http://user:pw@sor.example.com/x", {"sor.example.com"}, "credentials"),
    ("file:///etc/passwd", {"localhost"}, "only http and https"),
    ("/relative/path", {"localhost"}, "only http and https"),
    ("http:///nohost", {"localhost"}, "no host"),
])
def test_refused(url, allow, why):
    reason = check_url(url, frozenset(allow))
    assert reason is not None and why in reason
