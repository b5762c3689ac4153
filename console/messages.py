"""Messages the console's background work posts to the UI thread."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message


@dataclass
class Ingested(Message):
    """New rows were committed by the tailer.

    A flood of batches collapses into one message: a pending ``Ingested``
    is replaced by the next, which carries the union of what changed.
    """

    events: int = 0
    rejects: int = 0
    tasks: set[str] = field(default_factory=set)
    escalations: list[str] = field(default_factory=list)
    committed_at: float = 0.0

    def can_replace(self, message: Message) -> bool:
        if isinstance(message, Ingested):
            self.events += message.events
            self.rejects += message.rejects
            self.tasks |= message.tasks
            self.escalations = message.escalations + self.escalations
            return True
        return False
