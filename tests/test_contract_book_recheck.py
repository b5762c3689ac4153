"""While a backlog is read the contract book is looked up once a second, not per chunk: edits still count."""

from __future__ import annotations

from agentdeck.store.db import connect
from agentdeck.store.tailer import Tailer

from test_deferred_indexes import write_backlog
from test_ingest_kill9 import CONTRACT


def test_a_contract_edited_during_a_bulk_import_is_used_within_the_recheck_period(tmp_path, monkeypatch):
    """The book is looked up once a second while a backlog is read: an edit still takes effect, a little later."""
    from agentdeck.store import contract as ct

    folder = tmp_path / "traces"
    (folder / "contracts").mkdir(parents=True)
    contract = folder / "contracts" / "kill-bot.toml"
    contract.write_text(CONTRACT)
    write_backlog(folder, 5)
    conn = connect(tmp_path / "store.db")
    Tailer(conn, [folder]).poll()  # the sources table names the folder: its contracts/ is read
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
