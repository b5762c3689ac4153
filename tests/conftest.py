"""Shared fixtures: a store loaded with the bundled sample data, a fixed clock, an app."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone, UTC
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_TRACES = ROOT / "sample_data" / "traces"
# Snapshots and time-dependent assertions use this instant (after the sample data's day starts).
FIXED_NOW = datetime(2026, 11, 24, 15, 0, 0, tzinfo=UTC).timestamp()


# One client for the tests' plain-HTTP requests (use it instead of httpx.get/post): each of those builds
# a client, and with it an SSL context (certifi's bundle loaded: 0.05-0.25 s of CPU, more than the
# request itself). No keep-alive, so each request still goes on a connection of its own, as
# httpx.post sends it. (Requests needing their own TLS settings still make their own client.)
HTTP = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))


def _install_load_proof_idle_wait() -> None:
    """Pilot's "wait until the app is idle", with Textual's own rule measured in shorter, true windows.

    After every key (twice) and every ``pilot.pause()`` Textual waits until one 20 ms sleep passes
    with under 1 ms of the process's CPU (textual/_wait.py), else sleeps again, up to 1 s. That is
    a CPU share of 5 % over a window assumed to last 20 ms. On a loaded machine the sleep lasts
    longer and the console's own 60 Hz screen timers alone pass 1 ms in it, so waits ran to the
    1 s cap: measured, two thirds of the Pilot tests' time went there. Here the same 5 % is
    taken over the window's real length, in 5 ms windows: the wait still lasts while the process
    works, and ends as soon as it does not. What a test asserts is still waited on as before:
    ``app.settled()`` (workers, screens) and ``wait_until`` for conditions; this only shortens
    the waits in which nothing is left to happen.
    """
    from asyncio import sleep
    from time import monotonic, process_time

    import textual._wait
    import textual.app
    import textual.pilot

    window, idle_share = 0.005, 1 / 20  # Textual's: 20 ms windows, idle under 1 ms of CPU in one

    async def wait_for_idle(min_sleep: float = window, max_sleep: float = 1) -> None:
        start = monotonic()
        while True:
            cpu, began = process_time(), monotonic()
            await sleep(window)
            now = monotonic()
            if now - start >= max_sleep:
                break
            if now - start > min_sleep and process_time() - cpu < idle_share * (now - began):
                break

    for module in (textual._wait, textual.app, textual.pilot):
        module.wait_for_idle = wait_for_idle  # type: ignore[attr-defined]


_install_load_proof_idle_wait()


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
