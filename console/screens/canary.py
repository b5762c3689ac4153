"""The Canary screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from console.screens.base import DeckScreen


class CanaryScreen(DeckScreen):
    MODE = "canary"
    CSS_PATH = "canary.tcss"

    def compose_body(self) -> ComposeResult:
        yield Static("Canary: not built yet", classes="empty")
