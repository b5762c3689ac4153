"""How the console runs and watches its ingest (the ``[ingest]`` table of the config file).

Defaults suit a fleet of a few hundred events a second on a small machine;
change them only with a reason (docs/console.md, "Ingest tuning"). Every value
is in seconds.

A plain dataclass checked by hand, not a pydantic model: the console builds
one before its first frame, and pydantic (import and model build) cost about
a third of the CPU up to that frame (console/service/settings.py says more).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from agentdeck.store.health import STALL_AFTER_S
from agentdeck.store.ingest_status import HEARTBEAT_S

BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class TableError(ValueError):
    """A table of the config file has unusable values: ``problems`` is [(key, what is wrong)]."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{key}: {message}" for key, message in problems))
        self.problems = problems


def seconds(value: Any) -> float:
    """A number of seconds as TOML, the environment or a flag gives it (a number, or a number as text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"must be a number of seconds, not {value!r}")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"must be a number of seconds, not {value!r}") from None


@dataclass(frozen=True)
class IngestSettings:
    """The console's ingest process, the store watcher and how often screens follow commits."""

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
    # new row waits half of it on average. 0.025 since the throttle is kept off the UI thread (the store watcher)
    # and the ingest process commits once a pass: ~30 commits a second at 200 events/s, each of them told, at
    # ~9 points of a core more than 0.05 (bench/README.md, "throttle in the store watcher").
    refresh_every: float = 0.025
    # The ingest process gathers appends at most this long before committing them: under a steady
    # stream every batch waits this long (part of append -> row visible); fewer commits a second if longer.
    batch_wait: float = 0.01

    def __post_init__(self) -> None:
        problems: list[tuple[str, str]] = []
        for f in fields(self):
            try:
                value = _check(f.name, getattr(self, f.name))
            except ValueError as exc:
                problems.append((f.name, str(exc)))
            else:
                object.__setattr__(self, f.name, value)
        if problems:
            raise TableError(problems)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> IngestSettings:
        """The ``[ingest]`` table: unknown keys and unusable values are named (all of them, in one error)."""
        if not isinstance(table, Mapping):
            raise TableError([("", f"must be a table of settings, not {table!r}")])
        known = [f.name for f in fields(cls)]
        unknown = [(key, f"unknown setting (known: {', '.join(known)})") for key in table if key not in known]
        try:
            made = cls(**{k: v for k, v in table.items() if k in known})
        except TableError as exc:
            raise TableError(unknown + exc.problems) from None
        if unknown:
            raise TableError(unknown)
        return made

    def describe(self) -> str:
        """One line for ``agentdeck config``."""
        return " ".join(f"{f.name}={getattr(self, f.name)!r}".replace("(", "[").replace(")", "]").replace(",]", "]")
                        for f in fields(self))


# Longest sensible value of each, in seconds: beyond it the console would look dead or blind (appends never
# committed, a stalled ingester never named, a screen that never follows), so it is refused, not obeyed.
LONGEST = {"heartbeat": 300.0, "stall_after": 86_400.0, "backoff": 3_600.0, "healthy_after": 86_400.0,
           "poll": 1.0, "health_every": 300.0, "refresh_every": 10.0, "batch_wait": 5.0}


def _check(name: str, value: Any) -> Any:
    value = _checked(name, value)
    longest = LONGEST[name]
    if max(value if isinstance(value, tuple) else (value,)) > longest:
        raise ValueError(f"at most {longest:g} seconds (longer and the console would look stalled), "
                         f"not {value!r}")
    return value


def _checked(name: str, value: Any) -> Any:
    if name == "backoff":
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            value = (value,)
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError("needs at least one wait, in seconds")
        waits = tuple(seconds(v) for v in value)
        if not all(math.isfinite(v) and v >= 0 for v in waits):
            raise ValueError(f"waits must be seconds, 0 or more, not {list(waits)!r}")
        return waits
    number = seconds(value)
    if name == "refresh_every":
        if not (math.isfinite(number) and number >= 0):
            raise ValueError(f"must be a number of seconds, 0 or more, not {number!r}")
    elif not (math.isfinite(number) and number > 0):
        raise ValueError(f"must be a number of seconds above 0, not {number!r}")
    return number
