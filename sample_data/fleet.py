"""A live fleet of sample agents writing traces at a chosen rate.

Used by ``agentdeck demo`` and the benchmarks. Each agent instance appends
to its own file in the trace folder. Agents that escalate really wait: they
read the decisions outbox (``<traces>/outbox/decisions.jsonl``, written by
the console) and carry on, or stop, when a decision for their escalation
arrives; past the deadline they give up.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from sample_data.driver import TaskRun
from sample_data.scenarios import random_spec

OUTBOX = Path("outbox") / "decisions.jsonl"


class OutboxReader:
    """Reads decisions appended to the outbox since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.inode: int | None = None
        self.decisions: dict[str, dict] = {}

    def poll(self) -> dict[str, dict]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return self.decisions
        if self.inode != st.st_ino or st.st_size < self.offset:
            self.inode, self.offset = st.st_ino, 0
        if st.st_size == self.offset:
            return self.decisions
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(st.st_size - self.offset)
        end = data.rfind(b"\n")
        if end < 0:
            return self.decisions
        for line in data[: end + 1].splitlines():
            try:
                d = json.loads(line)
                self.decisions[d["escalation_id"]] = d
            except (ValueError, KeyError, TypeError):
                continue
        self.offset += end + 1
        return self.decisions


def apply_to_sor(sor_url: str, event: dict) -> dict:
    """Make an action (or an agent's own compensation) real in the system of record (replay/sor.py).

    Called before the event is written, so the trace reports what the system
    answered; if it refused or is unreachable the action is recorded as failed.
    """
    import httpx

    event = dict(event)
    if event["kind"] == "action":
        if event.get("status") != "ok":
            return event  # the scenario's simulated upstream failure: nothing was changed
        body = {k: event.get(k) for k in ("action_id", "system", "operation", "params", "amount", "before", "after")}
        request = ("/actions", body, {})
    elif event.get("status") == "ok":
        request = ("/compensate", {"action_id": event["action_id"]}, {"Idempotency-Key": f"undo-{event['action_id']}"})
    else:
        return event
    path, body, headers = request
    try:
        resp = httpx.post(sor_url + path, json=body, headers=headers, timeout=2.0)
        status, answer = resp.status_code, resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        status, answer = None, {"error": f"system of record unreachable: {type(exc).__name__}"}
    event["response"] = {"status": status, "body": answer}
    if status is None or status >= 400:
        event["status"] = "failed"
        if event["kind"] == "action":
            event["compensation"] = None
    return event


class Fleet:
    """Writes ``rate`` events a second over ``agents`` files until stopped."""

    def __init__(
        self,
        folder: Path,
        *,
        rate: float = 20.0,
        agents: int = 4,
        concurrency: int = 12,
        seed: int | None = None,
        canary_share: float = 0.2,
        callback_url: str | None = None,
        name: str = "fleet",
        sor_url: str | None = None,
        ambiguous_wait: bool = True,
    ) -> None:
        self.folder = Path(folder)
        self.rate = rate
        self.agents = agents
        self.concurrency = concurrency
        self.rng = random.Random(seed)
        self.canary_share = canary_share
        self.callback_url = callback_url
        self.name = name
        # The system of record the agents really change (replay/sor.py); None: actions are only traced.
        self.sor_url = sor_url.rstrip("/") if sor_url else None
        self.outbox = OutboxReader(self.folder / OUTBOX)
        self.stop = threading.Event()
        self.written = 0
        self._counter = 0
        self._runs: list[tuple[TaskRun, int]] = []
        self._files: dict[int, object] = {}
        self.prefix = f"{int(time.time() * 10) % 10_000_000:07d}"

    def _file(self, agent: int):
        f = self._files.get(agent)
        if f is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            f = self._files[agent] = open(self.folder / f"{self.name}-{agent}.jsonl", "ab", buffering=0)
        return f

    def _new_run(self) -> tuple[TaskRun, int]:
        self._counter += 1
        spec = random_spec(self.rng, self.canary_share)
        run = TaskRun(spec, f"{self.prefix}-{self._counter}", callback_url=self.callback_url)
        return run, self.rng.randrange(self.agents)

    def write_one(self) -> bool:
        """Append one event from some active task. False if all tasks are waiting."""
        while len(self._runs) < self.concurrency:
            self._runs.append(self._new_run())
        now = datetime.now(timezone.utc)
        decisions = None
        order = list(range(len(self._runs)))
        self.rng.shuffle(order)
        for i in order:
            run, agent = self._runs[i]
            if run.waiting is not None:
                if decisions is None:
                    decisions = self.outbox.poll()
                esc = run.waiting
                d = decisions.get(esc["escalation_id"])
                deadline = datetime.fromisoformat(esc["deadline"].replace("Z", "+00:00"))
                if d is not None:
                    event = run.decide(d.get("decision", "deny"), d.get("decided_by", "?"), d.get("reason", ""), now)
                elif now > deadline:
                    event = run.decide("expire", "deadline", "no decision before the deadline", now)
                else:
                    continue
            else:
                event = run.step(now)
                if event is None:
                    self._runs[i] = self._new_run()
                    continue
            if self.sor_url and event["kind"] in ("action", "compensation"):
                event = apply_to_sor(self.sor_url, event)
            line = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
            self._file(agent).write(line)
            self.written += 1
            return True
        return False

    def run(self, duration: float | None = None) -> None:
        """Write at the configured rate until ``stop`` is set (or ``duration`` passes)."""
        interval = 1.0 / self.rate
        start = time.monotonic()
        next_at = start
        try:
            while not self.stop.is_set():
                if duration is not None and time.monotonic() - start >= duration:
                    break
                self.write_one()
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    self.stop.wait(delay)
                elif delay < -1.0:
                    next_at = time.monotonic()  # fell behind: do not burst to catch up
        finally:
            for f in self._files.values():
                f.close()
            self._files.clear()
