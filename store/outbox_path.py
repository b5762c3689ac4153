"""Where the decisions outbox is (``store/outbox.py`` writes it).

Apart from the outbox itself, which imports pydantic: the console resolves
this path while it starts, before its first frame, and needs nothing else.
"""

from __future__ import annotations

from pathlib import Path

RELATIVE_PATH = Path("outbox") / "decisions.jsonl"


def outbox_for(trace_folder: Path) -> Path:
    return Path(trace_folder) / RELATIVE_PATH


def resolve(cli: str | None, trace_paths: list[Path]) -> Path | None:
    """Where the console writes decisions: ``--outbox PATH``, ``off``, else ``<first trace folder>/outbox/decisions.jsonl``.

    A trace *file* counts by its folder. With no trace path at all the outbox is off
    (decisions still reach agents with an allowed callback URL).
    """
    if cli is not None:
        return None if cli.strip().lower() == "off" else Path(cli)
    for path in trace_paths:
        path = Path(path)
        folder = path.parent if path.is_file() or path.suffix in (".jsonl", ".ndjson", ".json") else path
        return outbox_for(folder)
    return None
