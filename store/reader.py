"""Reading complete lines from a growing file, from a byte offset.

A partial last line is left for later (its bytes are not consumed), and a
line longer than ``MAX_LINE`` is reported as oversized without ever holding
more than ``MAX_LINE`` bytes of it in memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MAX_LINE = 1024 * 1024
CHUNK = 4 * 1024 * 1024


@dataclass(slots=True)
class Line:
    offset: int  # byte offset of the line's first byte
    data: bytes  # without the newline; for an oversized line, its first bytes
    oversized: int = 0  # full length when the line was longer than MAX_LINE


def read_lines(fd: int, offset: int, size: int, max_bytes: int = CHUNK) -> tuple[list[Line], int]:
    """Read complete lines from ``offset`` (at most about ``max_bytes``).

    Returns the lines and the offset just after the last complete line.
    ``size`` is the file size seen by the caller; nothing past it is read.
    """
    lines: list[Line] = []
    pos = offset
    while pos < size and (pos - offset) < max_bytes:
        want = min(max(max_bytes - (pos - offset), MAX_LINE + 1), size - pos)
        data = os.pread(fd, want, pos)
        if not data:
            break
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) > MAX_LINE:
                skipped = _skip_oversized(fd, pos, size, data)
                if skipped is None:
                    break  # oversized and still unfinished: wait for its newline
                lines.append(skipped[0])
                pos = skipped[1]
                continue
            break  # a partial line: wait for the rest
        lines.extend(split_lines(data[: end + 1], pos))
        pos += end + 1
    return lines, pos


def split_lines(chunk: bytes, base: int) -> list[Line]:
    """The lines of ``chunk`` (complete lines, read from offset ``base``), without blank ones."""
    lines: list[Line] = []
    start = base
    for piece in chunk.split(b"\n")[:-1]:
        line_offset = start
        start += len(piece) + 1
        if piece.endswith(b"\r"):
            piece = piece[:-1]
        if not piece or (piece[0] in _BLANK and not piece.strip()):
            continue
        if len(piece) > MAX_LINE:
            lines.append(Line(line_offset, piece[:4096], len(piece)))
        else:
            lines.append(Line(line_offset, piece))
    return lines


_BLANK = frozenset(b" \t\r\n\x0b\x0c")


def _skip_oversized(fd: int, pos: int, size: int, head: bytes) -> tuple[Line, int] | None:
    """Find the end of a line longer than MAX_LINE without buffering it."""
    scan = pos + len(head)
    while scan < size:
        block = os.pread(fd, min(CHUNK, size - scan), scan)
        if not block:
            return None
        nl = block.find(b"\n")
        if nl >= 0:
            end = scan + nl
            return Line(pos, head[:4096], end - pos), end + 1
        scan += len(block)
    return None
