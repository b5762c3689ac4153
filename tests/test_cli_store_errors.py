"""A file that is not a usable store is a one-line message and exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentdeck.console.cli import main


@pytest.mark.parametrize("argv", [["verify"], ["evidence", "task-1"], ["check", "--store"],
                                  ["canary", "--agent", "a", "--baseline", "v1", "--canary", "v2"],
                                  ["console", "--no-follow"], ["ingest", "--quiet", "README.md"]])
def test_not_a_database(tmp_path, capsys, argv, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    bogus = tmp_path / "notes.db"
    bogus.write_text("these are my notes, not SQLite\n" * 100)
    # canary keeps its release-gate codes: 3 is its error (2 would mean "roll back").
    assert main([*argv, "--db", str(bogus)]) == (3 if argv[0] == "canary" else 2)
    err = capsys.readouterr().err
    assert f"cannot use the store {bogus}: the store file is damaged or not an agentdeck store" in err
    assert "Traceback" not in err
    assert bogus.read_text().startswith("these are my notes")  # untouched
