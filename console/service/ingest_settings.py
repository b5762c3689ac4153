"""How the console runs and watches its ingest (the ``[ingest]`` table of the config file).

Defaults suit a fleet of a few hundred events a second on a small machine;
change them only with a reason (docs/console.md, "Ingest tuning"). Every value
is in seconds.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from agentdeck.store.health import STALL_AFTER_S
from agentdeck.store.ingest_status import HEARTBEAT_S

BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class IngestSettings(BaseModel):
    """The console's ingest process, the store watcher and how often screens follow commits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The ingest process says it is alive this often (store/ingest_status.py).
    heartbeat: float = HEARTBEAT_S
    # No heartbeat for this long: the ingester shows as stalled on the Problems screen.
    stall_after: float = STALL_AFTER_S
    # Waits between restarts of an ingest process that keeps stopping (the last one repeats).
    backoff: tuple[float, ...] = BACKOFF_S
    # A run this long counts as healthy: the next stop restarts after the first wait again.
    healthy_after: float = 60.0
    # How often the console looks for commits (PRAGMA data_version: microseconds a look).
    poll: float = 0.005
    # How often the health check runs (and soon after a commit).
    health_every: float = 1.0
    # Screens re-read at most this often while commits keep coming (the first at once). Under a steady stream a
    # new row waits half of it on average: 0.05 (bench/README.md, "keys within Tasks and append -> visible").
    refresh_every: float = 0.05
    # The ingest process gathers appends at most this long before committing them: under a steady
    # stream every batch waits this long (part of append -> row visible); fewer commits a second if longer.
    batch_wait: float = 0.01

    @field_validator("heartbeat", "stall_after", "healthy_after", "poll", "health_every", "batch_wait", mode="after")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"must be a number of seconds above 0, not {value!r}")
        return value

    @field_validator("refresh_every", mode="after")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"must be a number of seconds, 0 or more, not {value!r}")
        return value

    @field_validator("backoff", mode="before")
    @classmethod
    def _backoff(cls, value: Any) -> Any:
        if isinstance(value, (int, float)):
            value = (value,)
        if not value:
            raise ValueError("needs at least one wait, in seconds")
        return value

    @field_validator("backoff", mode="after")
    @classmethod
    def _backoff_values(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not all(math.isfinite(v) and v >= 0 for v in value):
            raise ValueError(f"waits must be seconds, 0 or more, not {list(value)!r}")
        return value

    def describe(self) -> str:
        """One line for ``agentdeck config``."""
        return " ".join(f"{name}={getattr(self, name)!r}".replace("(", "[").replace(")", "]").replace(",]", "]")
                        for name in type(self).model_fields)
