"""Retention rules, and which tasks they would remove now (and which they keep, and why).

The unit of retention is the *task*: its events, its summary row and what was
derived from them (escalations, actions, compensations, violations) go
together, so a task is either whole in the store or whole in an archive.

* An ordinary task goes ``raw_days`` (default 30) after its newest activity.
* A *notable* task — one that carries an escalation, an action, a
  compensation or a contract violation — goes ``notable_days`` (default 365)
  after its newest activity.
* The audit trail is never removed (``audit = "forever"``, the only value).

A task's newest activity is the latest of its events' times and of every
human act on it (a decision, a compensation). Whatever its age, a task is
kept while something about it is unfinished: an escalation still pending, a
decision not yet delivered to the agent, a compensation running or failed.

``RetentionPolicy`` is the ``[retention]`` table of the config file (the
service's Settings embed it); ``plan`` is a pure read of the store.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DAY = 86_400.0


class RetentionPolicy(BaseModel):
    """How long the store keeps what (``[retention]`` in the config file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    raw_days: float = Field(30, gt=0, description="Keep an ordinary task's raw events this many days.")
    notable_days: float = Field(365, gt=0, description=(
        "Keep a task carrying an escalation, action, compensation or violation this many days."))
    audit: Literal["forever"] = Field("forever", description="The audit trail is never pruned.")
    archive: bool = Field(True, description="Write pruned tasks' events to compressed archives first.")
    archive_dir: Path | None = Field(None, description="Where archives go (default: <store>-archive beside the store).")
    batch_events: int = Field(2000, ge=1, le=1_000_000, description=(
        "Events archived and deleted per step: each step is a short transaction."))

    @model_validator(mode="after")
    def _notable_outlives_raw(self) -> RetentionPolicy:
        if self.notable_days < self.raw_days:
            raise ValueError(f"notable_days ({self.notable_days:g}) must not be shorter than raw_days "
                             f"({self.raw_days:g}): tasks with escalations, actions or violations are kept longer")
        return self

    def archive_folder(self, db_path: str | Path) -> Path:
        db = Path(db_path)
        return Path(self.archive_dir) if self.archive_dir else db.with_name(db.name + "-archive")


class PolicyError(Exception):
    """The retention settings are unusable; the message says which and why."""


def load_policy(config: str | Path | None = None, **overrides: object) -> RetentionPolicy:
    """The policy from a TOML file's ``[retention]`` table (if given), then flags (``overrides`` not None)."""
    values: dict[str, object] = {}
    if config is not None:
        import tomllib  # only with a file to read: the console imports this module at start-up

        path = Path(config)
        try:
            with path.open("rb") as f:
                doc = tomllib.load(f)
        except OSError as exc:
            raise PolicyError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{path} is not valid TOML: {exc}") from None
        table = doc.get("retention", {})
        if not isinstance(table, dict):
            raise PolicyError(f"{path}: [retention] must be a table")
        values.update(table)
        # As for every path in the config file: relative to the file's folder.
        given = values.get("archive_dir")
        if isinstance(given, str):
            folder = Path(given).expanduser()
            values["archive_dir"] = folder if folder.is_absolute() else path.parent / folder
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return RetentionPolicy.model_validate(values)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "retention"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise PolicyError(f"retention setting {where}: {first['msg']}{more}") from None


# -- what the rules would do now ------------------------------------------------

KEEP_RECENT = "newer than the raw-event limit"
KEEP_NOTABLE = "notable (escalation, action, compensation, violation), not yet due"
KEEP_PENDING = "an escalation is still pending"
KEEP_UNDELIVERED = "a decision is not yet delivered to the agent"
KEEP_COMPENSATION = "a compensation is running or failed"


@dataclass(frozen=True)
class Candidate:
    task_id: str
    request_id: str | None
    events: int
    notable: bool
    newest: float  # the task's newest activity
    reason: str  # why it may go


@dataclass
class Plan:
    policy: RetentionPolicy
    now: float
    remove: list[Candidate] = field(default_factory=list)
    kept: Counter[str] = field(default_factory=Counter)  # reason -> tasks kept for it

    @property
    def events(self) -> int:
        return sum(c.events for c in self.remove)


# Newest human act on a task: decisions, console compensations, compensated actions.
_HUMAN_NEWEST = """max(
    coalesce((SELECT max(decided_at) FROM escalations e WHERE e.task_id = t.task_id), 0),
    coalesce((SELECT max(max(requested_at, coalesce(finished_at, 0))) FROM compensations c WHERE c.task_id = t.task_id), 0),
    coalesce((SELECT max(compensated_at) FROM actions a WHERE a.task_id = t.task_id), 0))"""

_UNFINISHED = """CASE
    WHEN EXISTS (SELECT 1 FROM escalations e WHERE e.task_id = t.task_id AND e.status = 'pending') THEN 1
    WHEN EXISTS (SELECT 1 FROM escalations e WHERE e.task_id = t.task_id
                 AND e.delivery IN ('pending', 'failed', 'blocked')) THEN 2
    WHEN EXISTS (SELECT 1 FROM compensations c WHERE c.task_id = t.task_id AND c.status = 'running')
      OR EXISTS (SELECT 1 FROM actions a WHERE a.task_id = t.task_id
                 AND a.compensation_status IN ('running', 'failed')) THEN 3
    ELSE 0 END"""

_NOTABLE = """(t.escalations > 0 OR t.actions > 0 OR t.compensations > 0 OR t.violations > 0
    OR EXISTS (SELECT 1 FROM escalations e WHERE e.task_id = t.task_id)
    OR EXISTS (SELECT 1 FROM compensations c WHERE c.task_id = t.task_id))"""

_UNFINISHED_REASON = {1: KEEP_PENDING, 2: KEEP_UNDELIVERED, 3: KEEP_COMPENSATION}

# One query for every task old enough to be looked at; the subqueries run
# only for those (each served by a task_id index).
_CANDIDATES = f"""
SELECT task_id, request_id, events, newest, notable, unfinished, human FROM (
    SELECT t.task_id, t.request_id, t.events,
           max(coalesce(t.last_ts, 0), coalesce(t.started, 0), coalesce(t.ended, 0)) AS newest,
           {_NOTABLE} AS notable, {_UNFINISHED} AS unfinished, {_HUMAN_NEWEST} AS human
    FROM tasks t
    WHERE max(coalesce(t.last_ts, 0), coalesce(t.started, 0), coalesce(t.ended, 0)) < :raw_cutoff
    {{only}}
)
"""


def _judge(row: sqlite3.Row | tuple, policy: RetentionPolicy, now: float) -> tuple[Candidate | None, str]:
    task_id, request_id, events, newest, notable, unfinished, human = tuple(row)
    newest = max(newest, human or 0)
    if unfinished:
        return None, _UNFINISHED_REASON[unfinished]
    if notable:
        if newest >= now - policy.notable_days * DAY:
            return None, KEEP_NOTABLE
        reason = f"notable, no activity for {policy.notable_days:g}+ days"
    else:
        if newest >= now - policy.raw_days * DAY:
            return None, KEEP_RECENT
        reason = f"no activity for {policy.raw_days:g}+ days"
    return Candidate(task_id, request_id, int(events), bool(notable), newest, reason), ""


def plan(conn: sqlite3.Connection, policy: RetentionPolicy, now: float) -> Plan:
    """Which tasks the rules remove now, and how many they keep for each reason."""
    out = Plan(policy, now)
    cutoff = now - policy.raw_days * DAY
    total = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    looked = 0
    for row in conn.execute(_CANDIDATES.format(only="") + " ORDER BY newest, task_id", {"raw_cutoff": cutoff}):
        looked += 1
        candidate, kept = _judge(row, policy, now)
        if candidate is None:
            out.kept[kept] += 1
        else:
            out.remove.append(candidate)
    if total - looked:
        out.kept[KEEP_RECENT] += total - looked
    return out


def still_prunable_many(conn: sqlite3.Connection, task_ids: list[str], policy: RetentionPolicy,
                        now: float) -> dict[str, str]:
    """For the tasks that must stay now, why (checked again inside the deleting transaction); the rest may go."""
    import json

    why: dict[str, str] = {t: "it has new activity" for t in task_ids}
    for row in conn.execute(_CANDIDATES.format(only="AND t.task_id IN (SELECT value FROM json_each(:tasks))"),
                            {"raw_cutoff": now - policy.raw_days * DAY, "tasks": json.dumps(task_ids)}):
        candidate, kept = _judge(row, policy, now)
        if candidate is not None:
            del why[candidate.task_id]
        else:
            why[row[0]] = kept
    return why
