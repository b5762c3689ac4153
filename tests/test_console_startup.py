"""Start-up: the first frame first, then what can wait, and nothing of it lost or skipped on the way."""

from __future__ import annotations

import gc

from conftest import FIXED_NOW
from tasks_support import screen_text, wait_until
from test_escalations_support import esc_db, row_of  # noqa: F401  (fixture: the sample store plus pending escalations)

from agentdeck.store import gc_pause
from agentdeck.store import decisions, outbox
from agentdeck.store.db import connect


def test_the_collector_is_paused_once_and_restored_as_it_was():
    gc_pause.resume_after_start_up()
    before = gc.get_threshold()
    try:
        gc_pause.pause_for_start_up()
        gc_pause.pause_for_start_up()  # a second entry point pausing again keeps the first saved thresholds
        assert gc.get_threshold() == gc_pause.START_THRESHOLDS and gc_pause.start_up_paused()
        gc_pause.resume_after_start_up()
        assert gc.get_threshold() == before and not gc_pause.start_up_paused()
        gc_pause.resume_after_start_up()  # nothing to do
        assert gc.get_threshold() == before
    finally:
        gc.set_threshold(*before)


def test_resuming_leaves_thresholds_set_since_the_pause():
    gc_pause.resume_after_start_up()
    before = gc.get_threshold()
    try:
        gc_pause.pause_for_start_up()
        gc.set_threshold(5_000, 10, 10)  # e.g. the app settled the collector for the long run meanwhile
        gc_pause.resume_after_start_up()
        assert gc.get_threshold() == (5_000, 10, 10)
    finally:
        gc.set_threshold(*before)


def test_what_start_up_made_is_left_out_of_collections_until_settled_and_its_garbage_then_freed():
    import weakref

    class Node:
        pass

    gc_pause.resume_after_start_up()
    before = gc.get_threshold()
    freed: list[bool] = []
    try:
        gc_pause.pause_for_start_up()
        cycle = Node()
        cycle.self = cycle  # type: ignore[attr-defined]  # start-up garbage only the collector can free
        weakref.finalize(cycle, freed.append, True)
        del cycle
        gc_pause.resume_after_start_up()
        # Frozen: the first collections after the first frame do not walk start-up's objects again.
        assert gc.get_freeze_count() > 0
        gc.collect()
        assert freed == []  # (a frozen cycle is not collected: the price, until the console settles)
        gc_pause.settle_for_long_run()
        assert freed == [True]  # settling unfroze start-up's objects for its one full collection
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_importing_the_app_pauses_the_collector_first():
    # What `agentdeck console` and the first-paint bench rely on: Textual's imports run with it paused.
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import gc; from agentdeck.console import app; print(gc.get_threshold())"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == str(gc_pause.START_THRESHOLDS)


def test_settling_for_the_long_run_freezes_the_heap_and_collects_less_often():
    before = gc.get_threshold()
    try:
        gc_pause.settle_for_long_run()
        assert gc.get_threshold() == gc_pause.LONG_RUN_THRESHOLDS
        assert gc.get_freeze_count() > 0  # what exists now is left out of every later collection
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


async def test_the_collector_runs_as_before_once_the_first_frame_is_drawn(sample_db, make_app):
    gc_pause.resume_after_start_up()
    before = gc.get_threshold()
    gc_pause.pause_for_start_up()  # as importing the app does in a fresh process
    app = make_app(sample_db)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: not gc_pause.start_up_paused())
            assert gc.get_threshold() == before
            await app.settled()
            await pilot.pause()
            assert app.screen.query_one("#tasks").row_count > 0
    finally:
        gc_pause.resume_after_start_up()
        gc.set_threshold(*before)


async def test_start_up_reads_the_first_window_of_tasks_at_most_twice(sample_db, make_app, monkeypatch):
    # A third read (Textual's first pass over the app's reactives looked like a store change) superseded the
    # second: the rows waited for it, on a loaded machine some 100 ms after the first frame.
    from agentdeck.console.service.deck import DeckService

    reads: list[object] = []
    real = DeckService.task_page

    def counted(self, *args, **kwargs):
        reads.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DeckService, "task_page", counted)
    app = make_app(sample_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.settled()
        await pilot.pause()
        assert app.screen.query_one("#tasks").row_count > 0
        assert 1 <= len(reads) <= 2


async def test_pending_deliveries_go_out_after_start_without_anyone_waiting_on_the_console(esc_db, make_app,
                                                                                          tmp_path):
    # Start-up work waits until just after the first paint (STARTUP_AFTER_S), then runs by itself:
    # polled here without AgentDeck.settled(), which would start it at once.
    box = tmp_path / "outbox" / "decisions.jsonl"
    conn = connect(esc_db)
    decisions.decide(conn, "esc-t-low", "approve", by="alice", now=FIXED_NOW)  # a previous console died here
    conn.close()
    app = make_app(esc_db, outbox=box)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: row_of(esc_db, "esc-t-low")["delivery"] == "delivered")
    assert [line["escalation_id"] for line in outbox.read(box)] == ["esc-t-low"]


async def test_screens_open_by_key_when_composing_them_ahead_fails(esc_db, make_app, monkeypatch, caplog):
    # Composing ahead (prewarm) uses Textual internals: a Textual that changed them costs the first visit
    # to each screen its compose, never the console.
    from agentdeck.console import app as app_module
    from agentdeck.console.screens.escalations import EscalationsScreen
    from agentdeck.console.screens.problems import ProblemsScreen

    settled_gc: list[bool] = []
    monkeypatch.setattr(gc_pause, "settle_for_long_run", lambda: settled_gc.append(True))
    monkeypatch.setattr(app_module, "PREWARM_AFTER_S", 0.05)
    monkeypatch.setattr(app_module, "PREWARM_GAP_S", 0.05)

    def changed_internals(self, screen):
        raise AttributeError("'AgentDeck' object has no attribute '_get_screen'")

    monkeypatch.setattr(app_module.AgentDeck, "_compose_ahead", changed_internals)
    app = make_app(esc_db, prewarm=True)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_until(pilot, lambda: bool(settled_gc))  # prewarm gave up, start-up still finished
        assert "composing EscalationsScreen ahead failed" in caplog.text
        assert app.warm_screens == {}
        await pilot.press("2")
        await app.settled()
        await pilot.pause()
        assert isinstance(app.screen, EscalationsScreen)
        assert "Pending — 4" in screen_text(app)
        await pilot.press("5")
        await app.settled()
        await pilot.pause()
        assert isinstance(app.screen, ProblemsScreen)
