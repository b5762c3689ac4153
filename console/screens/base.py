"""What all deck screens share: the header, the footer, and live refresh."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from agentdeck.console.widgets.chrome import DeckHeader


class DeckScreen(Screen):
    """A screen that re-reads its data when the store changes.

    Subclasses set ``MODE`` and implement ``compose_body`` and ``reload``
    (called on mount and after each ingest; run queries in a thread worker).
    """

    MODE = ""

    def compose(self) -> ComposeResult:
        yield DeckHeader(self.MODE)
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        return iter(())

    def on_mount(self) -> None:
        self.watch(self.app, "data_version", self._data_changed, init=False)
        self.reload()

    def on_screen_resume(self) -> None:
        self.resumed()

    def resumed(self) -> None:
        """The screen is shown again (override to skip a reload it does not need)."""
        self.reload()

    def _data_changed(self, _version: int) -> None:
        if self.is_current:
            self.reload()

    def reload(self) -> None:
        """Fetch fresh data (override; do the I/O in a thread worker)."""
