"""Command palette (ctrl+p) providers: switch screen, open a task, filter presets.

Lookups go through the service on a thread (``asyncio.to_thread``): the
palette searches on the UI's event loop, which must never wait on SQLite.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from rich.text import Text
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.markup import escape

from agentdeck.console.safe import clean
from agentdeck.console.widgets.chrome import SCREENS
from agentdeck.console.widgets.task_filter import PRESETS


class DeckProvider(Provider):
    @property
    def deck_app(self) -> Any:
        return self.app  # the AgentDeck (typed loosely: this module is imported by it)


class FixedCommands(DeckProvider):
    """A provider of a fixed list of commands: ``_commands`` yields (name, action, help, discoverable)."""

    def _commands(self):
        return iter(())

    async def discover(self) -> Hits:
        for name, action, help_text, discoverable in self._commands():
            if discoverable:
                yield DiscoveryHit(name, action, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, action, help_text, _ in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), action, help=help_text)


class DeckCommands(FixedCommands):
    """Every fixed command, in one fixed order: screens, task filter presets, then Textual's own.

    One provider, not one per kind: the palette runs its providers concurrently and lists
    equal-scored hits (all of an empty query's) in the order they arrive, so with several
    providers the list ctrl+p opens on changed from one run to the next.
    """

    def _commands(self):
        yield from self._screens()
        yield from self._presets()
        # Textual's (theme, keys, screenshot, quit…), as its SystemCommandsProvider lists them.
        for name, help_text, callback, discover in sorted(self.app.get_system_commands(self.screen),
                                                          key=lambda command: command[0]):
            yield name, callback, help_text, discover

    def _screens(self):
        """"Tasks screen", "Escalations screen", …"""
        for mode, label in SCREENS:
            name = label.split(" ", 1)[1]
            # As its key does (SwitchAhead): the screen is shown once, with data read after the command.
            yield (f"{name} screen", partial(self.deck_app.switching.switch, mode), f"Go to {name} (key {label[0]})",
                   True)

    def _presets(self):
        """"Filter tasks: failed tasks", "…: canary only", "Clear task filter"."""
        for name, text in PRESETS.items():
            yield (f"Filter tasks: {name}", partial(self.deck_app.filter_tasks, text), f"Tasks filtered by {text}",
                   True)
        yield "Clear task filter", partial(self.deck_app.filter_tasks, ""), "Show all tasks", True


class TaskLookupProvider(DeckProvider):
    """Type a task id or request id (or its start): open the task, or replay it."""

    async def search(self, query: str) -> Hits:
        # "task-00", "open task-00", "replay task task-0042": the id is the last word.
        words = query.split()
        prefix = words[-1] if words else ""
        if len(prefix) < 2:
            return
        replay_first = words[0].lower().startswith("rep")
        rows = await asyncio.to_thread(self._lookup, prefix)
        for rank, row in enumerate(rows):
            task_id = row["task_id"]
            shown = clean(task_id, 60, single_line=True)
            # The palette parses a str prompt and the help as markup: trace
            # text goes in as a rich Text (literal) and escaped help.
            about = escape(clean(f"{row['request_id']} · {row['agent']} · {row['outcome'] or 'running'}", 80,
                                 single_line=True))
            score = 1.0 - rank / 100
            open_score, replay_score = (score - 0.001, score) if replay_first else (score, score - 0.001)
            yield Hit(open_score, Text(f"Open task {shown}"), partial(self.deck_app.open_task, task_id),
                      text=f"Open task {shown}", help=about)
            yield Hit(replay_score, Text(f"Replay task {shown}"), partial(self.deck_app.open_replay, task_id),
                      text=f"Replay task {shown}", help=about)

    def _lookup(self, prefix: str):
        return self.deck_app.deck.find_tasks(prefix, limit=8)


# Textual's SystemCommandsProvider is not among them: DeckCommands lists its commands in their place.
COMMANDS = {DeckCommands, TaskLookupProvider}
