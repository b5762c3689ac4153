"""The tab bar's health indicator (console/widgets/screen_tabs.py)."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.reactive import var
from textual.widgets import Tab

from agentdeck.console.widgets.screen_tabs import ScreenTabs
from agentdeck.store.health import Health


class TabsApp(App):
    health: var[Health] = var(Health())

    def compose(self) -> ComposeResult:
        yield ScreenTabs("tasks")


async def test_the_health_tab_follows_the_health_and_a_change_while_its_tabs_go_is_not_a_crash():
    """A health change reaching a tab bar whose tabs are being removed (the console quitting as a screen's tab
    bar mounts) raised NoMatches out of the watcher and stopped the app with a traceback."""
    app = TabsApp()
    async with app.run_test() as pilot:
        bar = app.query_one(ScreenTabs)
        assert "ok" in str(bar.query_one("#tab-problems", Tab).label)
        app.health = Health(level="error")
        await pilot.pause()
        assert "ok" not in str(bar.query_one("#tab-problems", Tab).label)
        await bar.query_one("#tab-problems", Tab).remove()
        app.health = Health(level="warn")
        await pilot.pause()
        assert app.is_running and bar.is_mounted
