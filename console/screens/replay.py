"""The Replay screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from console.screens.base import DeckScreen


class ReplayScreen(DeckScreen):
    MODE = "replay"
    CSS_PATH = "replay.tcss"

    def compose_body(self) -> ComposeResult:
        yield Static("Replay: not built yet", classes="empty")
