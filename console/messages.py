"""Messages the console's background work posts to the UI thread."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from agentdeck.store.health import Health


@dataclass
class Ingested(Message):
    """Something new was committed to the store (by the ingest process, a receiver, another console).

    A flood of commits collapses into one message. Textual asks a message
    whether it ``can_replace`` the next one pending and, if so, drops it and
    handles the pending one instead (``MessagePump._process_messages_loop``):
    so what this one carries is folded into ``message``, the one that stays.
    """

    events: int = 0
    rejects: int = 0
    tasks: set[str] = field(default_factory=set)
    escalations: list[str] = field(default_factory=list)
    committed_at: float = 0.0
    # AgentDeck.next_change_seq taken by the store watcher before posting, after the commits it reports
    # (0: none taken; the app numbers the change as it hears of it).
    seq: int = 0

    def can_replace(self, message: Message) -> bool:
        if isinstance(message, Ingested):
            message.seq = max(message.seq, self.seq) if message.seq and self.seq else 0
            message.events += self.events
            message.rejects += self.rejects
            message.tasks |= self.tasks
            message.escalations = self.escalations + message.escalations
            message.committed_at = max(message.committed_at, self.committed_at)
            return True
        return False


@dataclass
class HealthChecked(Message):
    """A fresh health check (store/health.py); only the newest matters."""

    health: Health

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, HealthChecked)
