"""Showing untrusted trace text safely.

Everything from a trace goes through ``plain`` before it reaches a widget:
the result is a ``rich.text.Text`` (never parsed as markup) with terminal
control characters replaced by visible escapes, so ``[@click=app.quit]``,
ANSI colour codes and OSC 8 links show as the characters they are.
"""

from __future__ import annotations

import re

from rich.text import Text

# C0 controls except tab and newline, DEL, and C1 controls (incl. CSI/OSC as 0x9b/0x9d).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    ch = match.group()
    if ch == "\x1b":
        return "␛"
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def clean(value: object, limit: int | None = None, *, single_line: bool = False) -> str:
    """Untrusted value → printable string (no control characters), optionally bounded."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    if single_line:
        text = text.replace("\n", "⏎").replace("\t", " ")
    return _CONTROL.sub(_visible, text)


def plain(value: object, limit: int | None = None, *, style: str = "", single_line: bool = False) -> Text:
    """Untrusted value → Text that is displayed literally."""
    return Text(clean(value, limit, single_line=single_line), style=style, no_wrap=single_line)
