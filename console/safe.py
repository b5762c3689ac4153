"""Showing untrusted trace text safely.

Everything from a trace goes through ``plain`` before it reaches a widget:
the result is a ``rich.text.Text`` (never parsed as markup) with terminal
control characters replaced by visible escapes, so ``[@click=app.quit]``,
ANSI colour codes and OSC 8 links show as the characters they are.
"""

from __future__ import annotations

import re

from rich.text import Text

# Replaced by a visible escape:
# - C0 controls except tab and newline (ESC starts every ANSI/OSC sequence; CR
#   rewrites the line), DEL, and C1 controls (0x9b CSI and 0x9d OSC on their own);
# - line/paragraph separators and the bidi embeddings, overrides and isolates
#   (U+202A-202E, U+2066-2069) and marks (U+061C, U+200E/F), which reorder or
#   hide what is shown ("Trojan source");
# - zero-width and invisible characters (U+200B-200D, U+2060-2064, U+FEFF,
#   U+FFF9-FFFB) that make two different ids look the same;
# - lone surrogates (a JSON "\ud800" decodes to one): they cannot be encoded
#   for the terminal and would crash the renderer.
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064"
    "\u2066-\u2069\ufeff\ufff9-\ufffb\ud800-\udfff]"
)


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


def same_text(a: Text | None, b: Text | None) -> bool:
    """Would draw the same: Text's == leaves out the base style and the justification."""
    if a is None or b is None:
        return a is b
    return a.plain == b.plain and a.spans == b.spans and a.style == b.style and a.justify == b.justify
