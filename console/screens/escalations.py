"""The Escalations screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from console.screens.base import DeckScreen


class EscalationsScreen(DeckScreen):
    MODE = "escalations"
    CSS_PATH = "escalations.tcss"

    def compose_body(self) -> ComposeResult:
        yield Static("Escalations: not built yet", classes="empty")
