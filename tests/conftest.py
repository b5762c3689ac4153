"""Shared fixtures: a store loaded with the bundled sample data, a fixed clock, an app."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone, UTC
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_TRACES = ROOT / "sample_data" / "traces"
# Snapshots and time-dependent assertions use this instant (after the sample data's day starts).
FIXED_NOW = datetime(2026, 11, 24, 15, 0, 0, tzinfo=UTC).timestamp()


@pytest.fixture(scope="session")
def _sample_db_template(tmp_path_factory) -> Path:
    from agentdeck.store.db import connect
    from agentdeck.store.tailer import Tailer

    path = tmp_path_factory.mktemp("template") / "sample.db"
    conn = connect(path)
    Tailer(conn, [SAMPLE_TRACES]).poll()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


@pytest.fixture
def sample_db(_sample_db_template, tmp_path) -> Path:
    """A fresh copy of a store holding the bundled sample data set."""
    path = tmp_path / "agentdeck.db"
    shutil.copy(_sample_db_template, path)
    return path


@pytest.fixture
def fixed_clock():
    return lambda: FIXED_NOW


@pytest.fixture
def make_app(fixed_clock):
    """Build the console on a store with a fixed clock and no tailing (stable snapshots)."""
    from agentdeck.console.app import AgentDeck
    from agentdeck.console.service.settings import for_tests

    def factory(db: Path, traces: list[Path] | None = None, *, clock=fixed_clock, **kw):
        kw.setdefault("operator", "tester")
        kw.setdefault("tick", 0)
        kw.setdefault("follow", bool(traces))
        return AgentDeck(for_tests(db, traces, **kw), clock=clock)

    return factory
