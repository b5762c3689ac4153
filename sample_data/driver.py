"""Turning a scenario into trace events: envelope, sequence, time, agent identity."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, UTC

from agentdeck.sample_data.scenarios import BASELINE, CANARY, Spec, approval_task, request_text

import random

AGENT_FOR_KIND = {"access": "approval-agent", "refund": "approval-agent", "record": "records-agent"}


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TaskRun:
    """One task being played out; ``step`` returns its next event as a dict."""

    def __init__(self, spec: Spec, key: str, *, callback_url: str | None = None, wait_s: float | None = None,
                 stage: Callable[[], str | None] | None = None) -> None:
        self.spec = spec
        self.key = key
        self.task_id = f"task-{key}"
        self.request_id = f"req-{key}"
        self.agent = AGENT_FOR_KIND[spec.kind]
        self.version = CANARY if spec.canary else BASELINE
        self.callback_url = callback_url
        # How long this agent waits for a human (its escalations' deadline); None: what the scenario asks.
        self.wait_s = wait_s
        # The stage this version acts at, as the console publishes it (fleet.AutonomyReader); None: the contract's.
        self.stage = stage
        self._gen = approval_task(spec, key, stage)
        self._seq = 0
        self._started = False
        self._send: str | None = None
        self.waiting: dict | None = None  # the escalation event awaiting a decision
        self.done = False

    def _envelope(self, body: dict, ts: datetime) -> dict:
        event = {"v": 1, "kind": body["kind"], "ts": iso(ts), "task_id": self.task_id, "seq": self._seq}
        event.update({k: v for k, v in body.items() if k != "kind"})
        self._seq += 1
        return event

    def step(self, ts: datetime) -> dict | None:
        """The next event, or None when the task is over or waiting for a human."""
        if self.done or self.waiting is not None:
            return None
        if not self._started:
            self._started = True
            text, fields = request_text(self.spec, random.Random(self.spec.seed))
            return self._envelope({
                "kind": "task_start", "request_id": self.request_id, "agent": self.agent,
                "agent_version": self.version, "cohort": "canary" if self.spec.canary else "baseline",
                "stage": (self.stage() if self.stage is not None else None) or ("partial" if self.spec.canary else "bounded"),
                "request": text, "input": fields,
            }, ts)
        try:
            body = self._gen.send(self._send) if self._send is not None else next(self._gen)
        except StopIteration:
            self.done = True
            return None
        self._send = None
        if body["kind"] == "escalation":
            body = dict(body)
            # deadline_s is the scenario's wish, not a trace field: never written (a strict store rejects it).
            asked = body.pop("deadline_s", 900)
            wait = asked if self.wait_s is None else self.wait_s
            body["deadline"] = iso(ts + timedelta(seconds=wait))
            if self.callback_url:
                body["callback_url"] = self.callback_url
            event = self._envelope(body, ts)
            self.waiting = event
            return event
        return self._envelope(body, ts)

    def decide(self, decision: str, decided_by: str, reason: str, ts: datetime) -> dict:
        """Resume after a human decision; returns the agent's record of it."""
        esc = self.waiting
        assert esc is not None
        self.waiting = None
        self._send = decision
        return self._envelope({"kind": "decision", "escalation_id": esc["escalation_id"], "decision": decision,
                               "decided_by": decided_by, "reason": reason}, ts)
