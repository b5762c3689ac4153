"""The console's scheduled prune: settings, the service's one run, and the app running it off the UI thread."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import FIXED_NOW

from agentdeck.console.service.deck import DeckService
from agentdeck.console.service.settings import SettingsError, for_tests, resolve
from agentdeck.store.retention import RetentionPolicy

LATER = FIXED_NOW + 400 * 86400  # past even the notable tasks' 365 days


def _count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    finally:
        conn.close()


def test_prune_is_off_unless_asked_and_reads_retention_from_the_config(tmp_path):
    assert resolve({}, env={}).prune_every is None
    config = tmp_path / "config.toml"
    config.write_text('prune_every = 3600\n[retention]\nraw_days = 7\nnotable_days = 90\narchive_dir = "arch"\n')
    s = resolve({}, env={}, config=config)
    assert s.prune_every == 3600 and s.source("prune_every") == f"config {config}"
    assert (s.retention.raw_days, s.retention.notable_days, s.retention.archive_dir) == (7, 90, tmp_path / "arch")
    assert resolve({"prune_every": "off"}, env={}, config=config).prune_every is None
    assert resolve({}, env={"AGENTDECK_PRUNE_EVERY": "0"}, config=config).prune_every is None
    assert ("prune_every", "off", "default") in resolve({}, env={}).describe()
    with pytest.raises(SettingsError, match="prune_every"):
        resolve({"prune_every": "-5"}, env={})
    config.write_text("[retention]\nraw_days = 400\n")
    with pytest.raises(SettingsError, match="notable_days"):
        resolve({}, env={}, config=config)


def test_one_prune_archives_and_removes_what_the_rules_let_go(sample_db, tmp_path):
    before = _count(sample_db)
    deck = DeckService(for_tests(sample_db, retention=RetentionPolicy(archive_dir=tmp_path / "arch")),
                       clock=lambda: LATER)
    result = deck.prune()
    assert result.ok and result.changed and result.severity == "information"
    removed = result.detail["removed_tasks"]
    assert removed > 0 and _count(sample_db) == before - removed
    assert result.message.startswith(f"Pruned {removed:,} tasks")
    assert list((tmp_path / "arch").glob("*.jsonl.gz"))
    again = deck.prune()
    assert again.ok and not again.changed and again.message.startswith("Prune: nothing due")


def test_a_prune_already_running_is_skipped_and_said(sample_db, tmp_path):
    import socket

    before = _count(sample_db)
    # Another process (pid 1 is always alive) holds the prune lease, as `agentdeck prune` would.
    conn = sqlite3.connect(sample_db)
    conn.execute("INSERT INTO prune_lease (id, pid, host, started, until) VALUES (1, 1, ?, ?, ?)",
                 (socket.gethostname(), time.time(), time.time() + 600))
    conn.commit()
    conn.close()
    deck = DeckService(for_tests(sample_db, retention=RetentionPolicy(archive_dir=tmp_path / "a")),
                       clock=lambda: LATER)
    result = deck.prune()
    assert not result.ok and result.severity == "warning"
    assert "another prune is running (pid 1" in result.message and "next scheduled run" in result.message
    assert _count(sample_db) == before


def test_an_archive_that_cannot_be_written_removes_nothing_and_says_what_to_do(sample_db, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the archive folder should be")
    before = _count(sample_db)
    deck = DeckService(for_tests(sample_db, retention=RetentionPolicy(archive_dir=blocker)), clock=lambda: LATER)
    result = deck.prune()
    assert not result.ok and result.severity == "error"
    assert "cannot write the archive" in result.message and str(blocker) in result.message
    assert _count(sample_db) == before


async def test_the_console_prunes_on_its_schedule_and_shows_the_result(sample_db, tmp_path, make_app):
    before = _count(sample_db)
    app = make_app(sample_db, clock=lambda: LATER, prune_every=0.2,
                   retention=RetentionPolicy(archive_dir=tmp_path / "arch"))

    def messages() -> list[str]:
        return [n.message for n in app._notifications]

    async with app.run_test(size=(100, 30)) as pilot:
        deadline = time.monotonic() + 30
        while not any(m.startswith("Prune: nothing due") for m in messages()):
            assert time.monotonic() < deadline, f"no prune result shown: {messages()}"
            await pilot.pause()
            await asyncio.sleep(0.05)
        pruned = [m for m in messages() if m.startswith("Pruned ")]
        assert len(pruned) == 1  # the first run removed them; the next ones find nothing due
        assert _count(sample_db) < before
        assert app.data_version > 0  # screens were told the store changed


async def test_a_failing_scheduled_prune_is_a_problem_until_one_succeeds(sample_db, tmp_path, make_app):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the archive folder should be")
    before = _count(sample_db)
    app = make_app(sample_db, clock=lambda: LATER, prune_every=0.2, retention=RetentionPolicy(archive_dir=blocker))
    async with app.run_test(size=(100, 30)) as pilot:
        deadline = time.monotonic() + 30
        # notify() posts a message: the toast lands a moment after the problem, so wait for both.
        def failure_toast() -> bool:
            return any(n.message.startswith("Prune failed") and n.severity == "error" for n in app._notifications)

        while not (any(p.key == "prune" for p in app.health.problems) and failure_toast()):
            assert time.monotonic() < deadline, "the failed prune never reached Problems and a toast"
            await pilot.pause()
            await asyncio.sleep(0.05)
        problem = next(p for p in app.health.problems if p.key == "prune")
        assert problem.level == "error" and app.health.level == "error"
        assert "cannot write the archive" in problem.detail and str(blocker) in problem.detail
        assert _count(sample_db) == before
        blocker.unlink()  # the operator fixes it: the next run succeeds and the problem goes
        deadline = time.monotonic() + 30
        while any(p.key == "prune" for p in app.health.problems):
            assert time.monotonic() < deadline, "the problem stayed after a prune succeeded"
            await pilot.pause()
            await asyncio.sleep(0.05)
        assert _count(sample_db) < before
