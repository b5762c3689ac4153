"""While a backlog is read the contract book is looked up once a second, not per chunk: edits still count."""

from __future__ import annotations

from test_deferred_indexes import tailed_contract_backlog
from test_ingest_kill9 import CONTRACT


def test_a_contract_edited_during_a_bulk_import_is_used_within_the_recheck_period(tmp_path, monkeypatch):
    """The book is looked up once a second while a backlog is read: an edit still takes effect, a little later."""
    from agentdeck.store import contract as ct

    conn, contract = tailed_contract_backlog(tmp_path, 5)
    check = ct.ContractCheck()
    clock = [1000.0]
    monkeypatch.setattr(ct.time, "monotonic", lambda: clock[0])
    first = check.book(conn)
    assert first.get("kill-bot") is not None
    check.recheck_every = 1.0
    contract.write_text(CONTRACT.replace("kill-bot", "other-bot"))
    clock[0] += 0.5
    assert check.book(conn) is first  # within the period: the book in hand
    clock[0] += 0.6
    assert check.book(conn).get("kill-bot") is None and check.book(conn).get("other-bot") is not None
    check.recheck_every = 0.0  # the default, outside a backlog: every call looks
    contract.write_text(CONTRACT)
    assert check.book(conn).get("kill-bot") is not None
    conn.close()
