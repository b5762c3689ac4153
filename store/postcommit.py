"""Work derived from each committed batch.

Each hook is ``hook(conn, result: BatchResult) -> None``, run after the
commit on the ingesting thread; hooks must be idempotent and must not raise
for bad data. The contract check is special: the Tailer runs a
``ContractCheck`` among its hooks inside each batch's transaction (derived
rows exactly-once with their events); called as a plain hook (the OTLP
receiver) it finishes the checks its batches queued in ``contract_pending``.
"""

from __future__ import annotations


def default() -> list:
    # Imported here so store.tailer does not pull the contract code at import time.
    from agentdeck.store.contract import ContractCheck

    return [ContractCheck()]
