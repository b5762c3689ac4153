"""A file that is not a usable store is a one-line message and exit 2, never a traceback."""

from __future__ import annotations

import pytest

from agentdeck.console.cli import main


@pytest.mark.parametrize("argv", [["verify"], ["evidence", "task-1"], ["check", "--store"],
                                  ["canary", "--agent", "a", "--baseline", "v1", "--canary", "v2"]])
def test_not_a_database(tmp_path, capsys, argv):
    bogus = tmp_path / "notes.db"
    bogus.write_text("these are my notes, not SQLite\n" * 100)
    assert main([*argv, "--db", str(bogus)]) == 2
    err = capsys.readouterr().err
    assert f"cannot use the store {bogus}" in err
    assert "Traceback" not in err
    assert bogus.read_text().startswith("these are my notes")  # untouched
