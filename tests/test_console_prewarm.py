"""Screens composed ahead (Settings.prewarm): the first visit shows them as a later one would, with their data."""

from __future__ import annotations

import asyncio

from tasks_support import screen_text
from test_escalations_support import esc_db  # noqa: F401  (fixture: the sample store plus pending escalations)


async def _until(pilot, condition, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await pilot.pause(0.05)


async def test_prewarmed_screens_are_the_ones_shown_and_read_their_data(esc_db, make_app, monkeypatch, caplog):
    from agentdeck.console import app as app_module
    from agentdeck.store import gc_pause
    from agentdeck.console.screens.escalations import EscalationsScreen
    from agentdeck.console.screens.task_detail import TaskDetailScreen

    settled_gc: list[bool] = []
    # (The real one freezes the test process's heap: recorded instead.)
    monkeypatch.setattr(gc_pause, "settle_for_long_run", lambda: settled_gc.append(True))
    monkeypatch.setattr(app_module, "PREWARM_AFTER_S", 0.05)
    monkeypatch.setattr(app_module, "PREWARM_GAP_S", 0.05)
    from agentdeck.console.service.deck import DeckService

    canary_reads: list[str | None] = []
    real_canary = DeckService.canary

    def counted_canary(self, agent, *args, **kwargs):
        canary_reads.append(agent)
        return real_canary(self, agent, *args, **kwargs)

    monkeypatch.setattr(DeckService, "canary", counted_canary)
    app = make_app(esc_db, prewarm=True)
    async with app.run_test(size=(140, 40)) as pilot:
        await _until(pilot, lambda: bool(settled_gc))  # every screen of PREWARM composed, then the GC settled
        canary_warm = app.warm_screens["CanaryScreen"]
        assert canary_warm.is_mounted and not canary_warm.is_current
        await app.settled()
        assert canary_reads == []  # composed ahead, but no report is read (or computed) until it is shown
        warm = app.warm_screens["EscalationsScreen"]
        assert warm.is_mounted and not warm.is_current
        await app.settled()
        assert warm.query_one("#esc-table").row_count > 0  # read while off screen (PREWARM_READ)
        await pilot.press("2")
        await app.settled()
        await pilot.pause()
        assert app.screen is warm and isinstance(warm, EscalationsScreen)
        assert warm._drawn_ahead and "drawing" not in caplog.text  # laid out and drawn off screen, no error
        assert "Pending — 4" in screen_text(app)  # and shown as drawn: its queue
        assert "EscalationsScreen" not in app.warm_screens  # handed over, not kept twice
        await pilot.press("4")
        await app.settled()
        await pilot.pause()
        assert "press o and type a task id" in screen_text(app)
        await pilot.press("3")
        await app.settled()
        await pilot.pause()
        assert app.screen is canary_warm and canary_reads  # shown: now it reads its report
        assert "approval-agent" in screen_text(app)
        await pilot.press("1")
        await app.settled()
        await pilot.press("enter")
        await app.settled()
        await pilot.pause()
        detail = app.screen
        assert isinstance(detail, TaskDetailScreen) and detail is app.get_screen("task-detail")
        assert detail.found and detail.query_one("#detail-events").row_count > 0


async def test_a_screen_shown_after_its_tab_bar_call_was_lost_still_gets_its_tab_bar(esc_db, make_app, monkeypatch):
    """The header mounts its tab bar after a refresh, and Textual queues that call on the screen on top at the
    time. A screen composed under another (ahead, or by a switch) whose top screen went before its next frame
    lost the call, and showed no tab bar for the rest of the run. Emulated: such calls are dropped."""
    from textual.screen import Screen

    from agentdeck.console.screens.escalations import EscalationsScreen
    from agentdeck.console.widgets.screen_tabs import ScreenTabs

    real = Screen._invoke_later
    dropped: list[str] = []

    def dropping(self, callback, sender):
        func = getattr(callback, "func", None)
        if getattr(func, "__name__", "") == "_mount_tabs" and sender.screen is not self:
            dropped.append(type(sender.screen).__name__)  # the screen it waited on went before its next frame
            return
        real(self, callback, sender)

    from agentdeck.console import app as app_module
    from agentdeck.store import gc_pause

    monkeypatch.setattr(gc_pause, "settle_for_long_run", lambda: None)  # (the real one freezes the test's heap)
    monkeypatch.setattr(app_module, "PREWARM_AFTER_S", 0.05)
    monkeypatch.setattr(app_module, "PREWARM_GAP_S", 0.05)
    monkeypatch.setattr(Screen, "_invoke_later", dropping)
    app = make_app(esc_db, prewarm=True)
    async with app.run_test(size=(140, 40)) as pilot:
        await _until(pilot, lambda: "EscalationsScreen" in app.warm_screens)  # composed ahead, under Tasks
        await app.settled()
        await pilot.press("2")
        await app.settled()
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, EscalationsScreen)
        assert dropped, "the emulated loss did not happen: the test shows nothing"
        assert app.screen.query(ScreenTabs), "shown without its tab bar"
        assert "1 Tasks" in screen_text(app)
