"""A contract file that cannot be used is a problem the console shows, not a line in a log.

Before, only the ingest process's log said so: the agent's actions were checked against no contract, no
violation was flagged for them, and Problems, the header and Replay ("contract: none") all looked fine.
"""

from __future__ import annotations

import time

from agentdeck.replay.reconstruct import reconstruct
from agentdeck.store import health
from agentdeck.store.contract import ContractCheck

from test_deferred_indexes import tailed_contract_backlog

BROKEN = 'agent = "kill-bot"\n[tools]\nallow = ["lookup"\n'  # the list never closed: bad TOML


def _contract_problems(conn, check: ContractCheck) -> list[health.Problem]:
    return [p for p in health.check(conn, time.time(), contracts=check).problems if p.key.startswith("contract")]


def test_an_unusable_contract_file_is_a_problem_until_it_is_fixed(tmp_path):
    conn, contract = tailed_contract_backlog(tmp_path, 2)
    check = ContractCheck()
    assert _contract_problems(conn, check) == []
    good = contract.read_text()
    contract.write_text(BROKEN)
    [problem] = _contract_problems(conn, check)
    assert problem.level == "error"
    assert str(contract) in problem.detail and "TOML" in problem.detail
    assert "no violation is flagged" in problem.todo and "read again" in problem.todo
    contract.write_text(good)  # fixed: read again at the next check, and the problem goes
    assert _contract_problems(conn, check) == []
    conn.close()


def test_replay_says_the_contract_files_that_could_not_be_used(tmp_path):
    from agentdeck.console.screens.replay import ReplayScreen

    conn, contract = tailed_contract_backlog(tmp_path, 2)
    contract.write_text(BROKEN)
    rec = reconstruct(conn, "t-0")
    assert rec is not None and rec.contract is not None
    assert rec.contract["path"] is None and rec.contract["unusable_files"] == 1
    assert str(contract) not in repr(rec.contract)  # (the packet says how many; Problems says which)
    line = ReplayScreen._contract_line(rec)
    assert line == "contract: none for kill-bot, and 1 contract file cannot be used (see Problems, 5)"
    conn.close()


def test_the_health_check_does_not_stop_when_the_contracts_cannot_be_listed(tmp_path):
    class Failing(ContractCheck):
        def book(self, conn):
            raise OSError("the folder went away")

    conn, _ = tailed_contract_backlog(tmp_path, 1)
    [problem] = _contract_problems(conn, Failing())
    assert problem.what == "the contract files cannot be read" and "went away" in problem.detail
    conn.close()


def _add_sources(conn, paths: list[str]) -> None:
    from agentdeck.store.txn import atomic

    with atomic(conn):
        conn.executemany("INSERT INTO sources (path, dev, inode, first_seen, updated_at) VALUES (?, 0, -1, 0, 0)",
                         [(p,) for p in paths])


def test_a_check_reads_the_trace_files_added_since_the_last_not_every_one(tmp_path):
    # The console checks health every second, an ingest process asks for the contracts on every batch: each once
    # read and parsed every trace file's path in the store (1.7 s a call for 50,000 files). Work is counted in
    # SQLite's steps, not timed.
    conn, contract = tailed_contract_backlog(tmp_path, 1)
    _add_sources(conn, [str(tmp_path / f"fleet/run-{i}.jsonl") for i in range(20_000)])
    check = ContractCheck()
    assert "kill-bot" in check.book(conn).contracts
    steps = []
    conn.set_progress_handler(lambda: steps.append(1), 100)
    for _ in range(3):
        assert _contract_problems(conn, check) == []
    conn.set_progress_handler(None, 0)
    assert len(steps) < 10, f"{len(steps) * 100} SQLite steps for three checks"
    # A trace folder that appears later is still looked in for its contracts/ (and its broken file reported).
    later = tmp_path / "later"
    (later / "contracts").mkdir(parents=True)
    (later / "contracts" / "other.toml").write_text(BROKEN.replace("kill-bot", "other"))
    _add_sources(conn, [str(later / "agent.jsonl")])
    [problem] = _contract_problems(conn, check)
    assert str(later / "contracts" / "other.toml") in problem.detail
    conn.close()


def test_the_contract_folders_are_read_again_when_the_store_has_fewer_trace_files(tmp_path):
    # The same check on a store replaced at its path (a restore): the folders of files it no longer has go.
    conn, contract = tailed_contract_backlog(tmp_path, 1)
    check = ContractCheck()
    contract.write_text(BROKEN)
    assert len(_contract_problems(conn, check)) == 1
    conn.close()
    from agentdeck.store.db import connect

    other = connect(tmp_path / "restored.db")
    _add_sources(other, [str(tmp_path / "elsewhere" / "agent.jsonl")])
    assert _contract_problems(other, check) == []
    other.close()


def test_a_contract_nested_too_deeply_is_named_and_the_others_stay_in_force(tmp_path):
    # tomllib recurses per nesting level: its RecursionError escaped the book, every contract went unused (the
    # store's tasks left unchecked) and the problem named no file.
    conn, contract = tailed_contract_backlog(tmp_path, 1)
    deep = contract.parent / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    check = ContractCheck()
    [problem] = _contract_problems(conn, check)
    assert problem.what == "a contract file cannot be used" and str(deep) in problem.detail
    assert "kill-bot" in check.book(conn).contracts
    conn.close()


def test_many_unusable_contract_files_are_listed_up_to_the_limit_and_counted(tmp_path):
    conn, contract = tailed_contract_backlog(tmp_path, 1)
    for i in range(health.LIST_LIMIT + 3):
        (contract.parent / f"broken: {i:02}.toml").write_text(BROKEN)  # (": " in a path: still one problem each)
    found = _contract_problems(conn, ContractCheck())
    listed = [p for p in found if p.key != "contract:more"]
    assert len(listed) == health.LIST_LIMIT and len({p.key for p in listed}) == health.LIST_LIMIT
    [more] = [p for p in found if p.key == "contract:more"]
    assert more.what == "3 more contract files cannot be used" and "broken: 22.toml" in more.detail
    conn.close()
