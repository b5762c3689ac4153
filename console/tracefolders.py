"""Which folders hold traces when a command is given a folder: it and every subfolder.

``ingest`` and ``check`` search folders recursively, the same way, so traces
kept in per-agent or per-day subfolders are found by both. Skipped: the
``contracts/`` and ``outbox/`` folders beside traces (contract files and the
console's own decisions outbox are not traces) and hidden folders.
"""

from __future__ import annotations

import os
from pathlib import Path

SKIP_DIRS = frozenset({"contracts", "outbox"})


def skipped(name: str) -> bool:
    return name in SKIP_DIRS or name.startswith(".")


def expand(paths: list[Path]) -> list[Path]:
    """Each given path, and after each folder every subfolder under it (sorted; symlinked folders not followed)."""
    out: list[Path] = []
    seen: set[Path] = set()
    for p in paths:
        if p not in seen:
            seen.add(p)
            out.append(p)
        if not p.is_dir():
            continue
        for root, dirs, _files in os.walk(p, onerror=lambda exc: None):
            dirs[:] = sorted(d for d in dirs if not skipped(d))
            for d in dirs:
                sub = Path(root) / d
                if sub not in seen:
                    seen.add(sub)
                    out.append(sub)
    return out
