"""Work the tailer runs after each committed batch, on its own thread.

Each hook is ``hook(conn, result: BatchResult) -> None``. Hooks derive
things from what was just ingested; they must be idempotent (a crash
between the commit and the hook means the hook's work is redone or done by
the next batch's caller) and must not raise for bad data.
"""

from __future__ import annotations


def default() -> list:
    # Imported here so store.tailer does not pull the contract code at import time.
    from agentdeck.store.contract import ContractCheck

    return [ContractCheck()]
