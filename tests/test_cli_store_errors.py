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


@pytest.mark.parametrize("argv", [["console", "--no-follow"], ["ingest", "--quiet", "README.md"]])
def test_a_store_from_a_newer_version_is_refused_not_rewound(tmp_path, capsys, argv, monkeypatch):
    # (Read-only commands such as verify read it as it is.) An older agentdeck writing a newer one's store would miss the tables only the newer one reads, and
    # setting the schema version back would make the newer one run its migrations again over them.
    import sqlite3

    from agentdeck.store.db import connect

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    db = tmp_path / "newer.db"
    connect(db).close()
    raw = sqlite3.connect(db)
    (known,) = raw.execute("SELECT value FROM meta WHERE key = 'schema:otlp'").fetchone()
    raw.execute("UPDATE meta SET value = ? WHERE key = 'schema:otlp'", (str(int(known) + 1),))
    raw.execute("PRAGMA user_version = 9999")
    raw.commit()
    raw.close()
    assert main([*argv, "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "the store was written by a newer agentdeck" in err and "upgrade agentdeck" in err
    assert "Traceback" not in err
    raw = sqlite3.connect(db)
    assert raw.execute("SELECT value FROM meta WHERE key = 'schema:otlp'").fetchone() == (str(int(known) + 1),)
    raw.close()
