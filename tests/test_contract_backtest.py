"""Backtesting a contract change: which stored tasks would change, before anyone adopts it."""

from __future__ import annotations

import shutil
from pathlib import Path

from agentdeck.console.cli import main
from agentdeck.store import backtest
from agentdeck.store import contract as ct
from agentdeck.store.db import connect

BUNDLED = Path(__file__).resolve().parents[1] / "sample_data" / "contracts"


def _new_contracts(tmp_path: Path, edit) -> Path:
    folder = tmp_path / "new-contracts"
    shutil.copytree(BUNDLED, folder)
    path = folder / "approval-agent.toml"
    path.write_text(edit(path.read_text()))
    return folder


def test_a_lower_refund_limit_lists_the_refunds_that_would_need_approval(sample_db, tmp_path):
    folder = _new_contracts(tmp_path, lambda t: t.replace("max_amount = 500.0", "max_amount = 100.0"))
    conn = connect(sample_db, readonly=True)
    result = backtest.backtest(conn, ct.book_for_store(conn), ct.load_book([folder]))
    assert result.agents_changed == {"approval-agent"}
    # Every refund between 100 and 500 now needs an approved escalation.
    expected = set()
    for task_id, payload in conn.execute(
            "SELECT task_id, json_extract(payload, '$.amount') FROM events WHERE kind = 'action' "
            "AND json_extract(payload, '$.operation') = 'refund'"):
        if payload is not None and 100 < payload <= 500:
            expected.add(task_id)
    gated = {c.task_id for c in result.changes if any(name == "payments.refund" for _, name, _ in c.newly_gated)}
    assert expected and gated == expected
    # Those refunds ran without approval: under the new contract they are violations.
    added = {c.task_id for c in result.changes if any(v.rule == ct.UNAPPROVED_ACTION for v in c.added)}
    assert added and added <= expected
    assert not any(c.removed or c.no_longer_gated for c in result.changes)


def test_an_unchanged_contract_changes_nothing_and_the_store_is_not_written(sample_db, tmp_path, capsys):
    folder = _new_contracts(tmp_path, lambda t: t)
    before = connect(sample_db).execute("SELECT count(*), sum(violations) FROM tasks").fetchone()
    args = ["check", "--db", str(sample_db), "--store", "--contracts", str(folder), "--diff"]
    assert main(args) == 0
    assert "0 of" in capsys.readouterr().out
    assert connect(sample_db).execute("SELECT count(*), sum(violations) FROM tasks").fetchone() == before


def test_the_cli_lists_changes_and_exits_1(sample_db, tmp_path, capsys):
    folder = _new_contracts(tmp_path, lambda t: t.replace('"payments.lookup_order"]', '"payments.lookup_order", "shell.exec"]')
                            .replace('tools = ["shell.exec"]', 'tools = []')
                            .replace("max_amount = 500.0", "max_amount = 5000.0"))
    args = ["check", "--db", str(sample_db), "--store", "--contracts", str(folder), "--diff"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "would no longer need approval" in out
    assert "tasks would change" in out


def test_diff_needs_the_store_and_new_contracts(sample_db, capsys):
    assert main(["check", "--db", str(sample_db), "--store", "--diff"]) == 2
    assert "--contracts NEW_DIR" in capsys.readouterr().err
