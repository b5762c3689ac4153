"""The tab bar every screen shows in its header (DeckHeader mounts it just after the first frame)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Tab, Tabs

from agentdeck.console.widgets.chrome import SCREENS, indicator_text

if TYPE_CHECKING:
    from agentdeck.store.health import Health


class ScreenTabs(Tabs, can_focus=False):
    """Tab bar mirroring the app's modes; clicking a tab switches screen.

    Not focusable: the keyboard stays on each screen's content (number keys
    switch screens), so j/k never land on the tabs.
    """

    def __init__(self, active: str) -> None:
        super().__init__(*[Tab(label, id=f"tab-{mode}") for mode, label in SCREENS], active=f"tab-{active}")
        self.mode = active

    def on_mount(self) -> None:
        # The last tab is the health indicator: "5 ✔ ok", "5 ▲ 2", "5 ✖ 3".
        self.watch(self.app, "health", self._show_health)

    def _show_health(self, health: Health) -> None:
        found = self.query("#tab-problems").results(Tab)
        tab = next(found, None)
        if tab is None:  # (its tabs not mounted yet, or already gone as the console quits)
            return
        label = indicator_text(health)
        if str(tab.label) != label.plain or health.level != getattr(self, "_level", None):
            self._level = health.level
            tab.label = label

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        mode = (event.tab.id or "").removeprefix("tab-")
        if mode and mode != self.mode:
            self.app.switch_mode(mode)
