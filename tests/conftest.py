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


# One client for the tests' plain-HTTP requests (use it instead of httpx.get/post): each of those builds
# a client, and with it an SSL context (certifi's bundle loaded: 0.05-0.25 s of CPU, more than the
# request itself). No keep-alive, so each request still goes on a connection of its own, as
# httpx.post sends it. (Requests needing their own TLS settings still make their own client.)
class _LazyClient:
    """Made on first use, httpx imported then too: importing it here, before the app (which pauses the
    garbage collector first thing, store/gc_pause.py), changed the app's timing enough that
    test_live_backpressure saw an extra read in 1 of 4 runs."""

    _client = None

    def __getattr__(self, name: str):
        if self._client is None:
            import httpx

            type(self)._client = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))
        return getattr(self._client, name)


HTTP = _LazyClient()


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
def conn(sample_db):
    """A connection to a fresh copy of the sample store (a test file may define its own ``conn``)."""
    from agentdeck.store.db import connect

    c = connect(sample_db)
    yield c
    c.close()


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


@pytest.fixture
def sor():
    """The local system of record (replay/sor.py) on an ephemeral 127.0.0.1 port, seeded from the sample."""
    from agentdeck.replay.sor import SorService, seed_from_traces

    with SorService(port=0) as service:
        seed_from_traces(service.sor, [SAMPLE_TRACES])
        yield service


def point_hook_at(store, base_url: str, action_id: str = "act-0001") -> None:
    """The sample's compensation hooks name port 8765; the test's system of record runs elsewhere.

    `store` is a store path or an open connection (which is left open)."""
    import json

    from agentdeck.store.db import connect

    conn = connect(store) if isinstance(store, Path) else store
    try:
        hook = json.loads(conn.execute("SELECT compensation FROM actions WHERE action_id = ?",
                                       (action_id,)).fetchone()[0])
        hook["url"] = hook["url"].replace("http://127.0.0.1:8765", base_url)
        conn.execute("UPDATE actions SET compensation = ? WHERE action_id = ?", (json.dumps(hook), action_id))
    finally:
        if conn is not store:
            conn.close()
