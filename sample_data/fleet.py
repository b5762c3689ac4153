"""A live fleet of sample agents writing traces at a chosen rate.

Used by ``agentdeck demo`` and the benchmarks. Each agent instance appends
to its own file in the trace folder. Each agent acts at the stage the
console publishes for its version (``<traces>/outbox/autonomy.jsonl``,
docs/autonomy.md): shadow proposes and acts on nothing, assisted asks before
every action, partial and bounded ask for high risk, as the contract says. Agents that escalate really wait: they
read the decisions outbox (``<traces>/outbox/decisions.jsonl``, written by
the console; format in docs/decisions.md) and, if started with a local
callback, the decisions POSTed to it; they carry on after an approval and
stop after a denial.

The stream never stalls for want of a decision: a task waiting on a human
does not hold up the others (new tasks keep starting at the chosen rate),
and an agent that has heard nothing by its escalation's deadline gives up on
its own and records a timeout (as the console's expiry policy would decide).
``wait`` shortens the deadlines the agents ask for (the scenarios ask for 15
minutes), so a demo shows escalations running out, not piling up.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

from agentdeck.sample_data.driver import AGENT_FOR_KIND, TaskRun
from agentdeck.sample_data.scenarios import BASELINE, CANARY, random_spec

OUTBOX = Path("outbox") / "decisions.jsonl"
AUTONOMY = Path("outbox") / "autonomy.jsonl"
# The stages of the documented autonomy.jsonl format (docs/autonomy.md). The fleet plays agents outside
# agentdeck, so it reads the format, not the store's code; a test checks both name the same stages.
STAGES = ("shadow", "assisted", "partial", "bounded")
# At most this many tasks wait on a human at once; past it the longest waiting
# gives up early, so an unattended fleet uses bounded memory.
MAX_WAITING = 1000


class _LineTail:
    """Whole JSON lines appended to a file since the last call (a partial last line waits for its newline).

    The two files the console writes for agents (decisions, stages) are read
    this way; a file replaced or truncated is read again from its start
    (``restarted``). Re-read only when it grew: one ``stat`` a call otherwise.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.inode: int | None = None

    def new_lines(self) -> list[dict]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        if self.inode != st.st_ino or st.st_size < self.offset:
            self.inode, self.offset = st.st_ino, 0
            self.restarted()
        if st.st_size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(st.st_size - self.offset)
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        out = []
        for line in data[: end + 1].splitlines():
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if isinstance(d, dict):
                out.append(d)
        return out

    def restarted(self) -> None:
        """The file was replaced or truncated: it is read again from its start."""


class OutboxReader(_LineTail):
    """Reads decisions appended to the outbox since the last call."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.decisions: dict[str, dict] = {}

    def poll(self) -> dict[str, dict]:
        for d in self.new_lines():
            # The first decision for an escalation is the one: repeats (a
            # re-delivery after a crash) carry the same idempotency key.
            if isinstance(d.get("escalation_id"), str):
                self.decisions.setdefault(d["escalation_id"], d)
        return self.decisions


class AutonomyReader(_LineTail):
    """The stage each agent version acts at, as the console publishes it (``<traces>/outbox/autonomy.jsonl``).

    Lines are appended whole (docs/autonomy.md); for each (agent, version)
    the line with the highest ``seq`` wins, whatever order two consoles
    appended them in. A version never published keeps its contract's stage.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.stages: dict[tuple[str, str], tuple[int, str]] = {}  # (agent, version) -> (seq, stage)

    def restarted(self) -> None:
        self.stages = {}

    def poll(self) -> dict[tuple[str, str], tuple[int, str]]:
        for d in self.new_lines():
            try:
                key, seq, stage = (str(d["agent"]), str(d["version"])), int(d["seq"]), d["stage"]
            except (ValueError, KeyError, TypeError):
                continue
            if stage in STAGES and seq >= self.stages.get(key, (-1, ""))[0]:
                self.stages[key] = (seq, stage)
        return self.stages

    def stage(self, agent: str, version: str) -> str | None:
        """The published stage of this version now (None: none published: the contract's applies)."""
        found = self.poll().get((agent, version))
        return found[1] if found else None


class CallbackReceiver:
    """A local decision endpoint for the fleet: POSTed decisions, deduplicated by Idempotency-Key."""

    def __init__(self, port: int = 0) -> None:
        self.decisions: dict[str, dict] = {}
        self.keys: set[str] = set()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                try:
                    length = min(int(self.headers.get("Content-Length", 0)), 1_000_000)
                    d = json.loads(self.rfile.read(length))
                    key = self.headers.get("Idempotency-Key") or d["idempotency_key"]
                    with receiver.lock:
                        if key not in receiver.keys:
                            receiver.keys.add(key)
                            receiver.decisions.setdefault(d["escalation_id"], d)
                except (ValueError, KeyError, TypeError):
                    self.send_response(400)
                    self.end_headers()
                    return
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass  # the console draws on this terminal

        try:
            self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        except OSError:
            if not port:
                raise
            self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # taken (another demo?): anywhere
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.host}/decisions"
        self.thread = threading.Thread(target=self.server.serve_forever, name="fleet-callback", daemon=True)
        self.thread.start()

    def get(self, escalation_id: str) -> dict | None:
        with self.lock:
            return self.decisions.get(escalation_id)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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
        request: tuple[str, dict, dict[str, str]] = ("/actions", body, {})
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
    elif event["kind"] == "action" and isinstance(event.get("compensation"), dict):
        # The undo goes to the system that was changed, wherever it listens.
        event["compensation"] = dict(event["compensation"], url=sor_url + "/compensate")
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
        wait: float | None = None,
        max_waiting: int = MAX_WAITING,
        clock: Callable[[], datetime] | None = None,
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
        # Each agent obeys the stage the console publishes for its version (shadow, assisted, partial, bounded).
        self.autonomy = AutonomyReader(self.folder / AUTONOMY)
        self.receiver: CallbackReceiver | None = None
        # Seconds an agent waits for a decision (the escalation's deadline); None: what the scenario asks.
        self.wait = wait
        self.max_waiting = max_waiting
        self.clock = clock or (lambda: datetime.now(UTC))
        self.stop = threading.Event()
        self.written = 0
        self.started = 0  # tasks started
        self.gave_up = 0  # escalations the agents stopped waiting for
        self._counter = 0
        self._runs: list[tuple[TaskRun, int]] = []  # tasks at work (at most ``concurrency``)
        self._waiting: list[tuple[TaskRun, int]] = []  # tasks waiting on a human, oldest first
        self._files: dict[int, BinaryIO] = {}
        self.prefix = f"{int(time.time() * 10) % 10_000_000:07d}"

    def start_callback(self, port: int = 0) -> str:
        """Listen for decisions on 127.0.0.1 (``port``, else any free one if it is taken or 0); escalations carry
        its URL. Returns host:port."""
        if self.receiver is None:
            self.receiver = CallbackReceiver(port)
            self.callback_url = self.receiver.url
        return self.receiver.host

    def _decision(self, escalation_id: str, outbox: dict[str, dict]) -> dict | None:
        if self.receiver is not None:
            d = self.receiver.get(escalation_id)
            if d is not None:
                return d
        return outbox.get(escalation_id)

    def _file(self, agent: int):
        f = self._files.get(agent)
        if f is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            f = self._files[agent] = open(self.folder / f"{self.name}-{agent}.jsonl", "ab", buffering=0)
        return f

    def _new_run(self) -> tuple[TaskRun, int]:
        self._counter += 1
        spec = random_spec(self.rng, self.canary_share)
        agent, version = AGENT_FOR_KIND[spec.kind], (CANARY if spec.canary else BASELINE)["id"]
        run = TaskRun(spec, f"{self.prefix}-{self._counter}", callback_url=self.callback_url, wait_s=self.wait,
                      stage=lambda: self.autonomy.stage(agent, version))
        self.started += 1
        return run, self.rng.randrange(self.agents)

    @property
    def waiting(self) -> int:
        """Tasks waiting on a human now."""
        return len(self._waiting)

    def write_one(self) -> bool:
        """Append one event: a waiting agent's answer if one came (or its deadline passed), else a working task's step.

        Always writes: a task waiting on a human never holds up the others.
        """
        now = self.clock()
        resumed = self._resume_one(now)
        if resumed is not None:
            self._write(*resumed)
            return True
        while True:
            while len(self._runs) < self.concurrency:
                self._runs.append(self._new_run())
            i = self.rng.randrange(len(self._runs))
            run, agent = self._runs[i]
            event = run.step(now)
            if run.waiting is not None:  # it escalated: it waits aside, a new task takes its place
                self._waiting.append(self._runs.pop(i))
            elif event is None:  # finished
                self._runs[i] = self._new_run()
            if event is not None:
                self._write(event, agent)
                return True

    def _resume_one(self, now: datetime) -> tuple[dict, int] | None:
        """The event of the first waiting agent that heard a decision or gave up, if any."""
        if not self._waiting:
            return None
        decisions = self.outbox.poll()
        overflow = len(self._waiting) > self.max_waiting
        for i, (run, agent) in enumerate(self._waiting):
            esc = run.waiting
            assert esc is not None
            d = self._decision(esc["escalation_id"], decisions)
            deadline = datetime.fromisoformat(esc["deadline"].replace("Z", "+00:00"))
            if d is not None:
                decision = d.get("decision")
                if decision not in ("approve", "deny"):
                    decision = "deny"
                elif decision == "deny" and d.get("expired"):
                    decision = "expire"  # the console's expiry policy: the agent records a timeout
                event = run.decide(decision, str(d.get("decided_by", "?")), str(d.get("reason", "")), now)
            elif now >= deadline or (overflow and i == 0):
                # Its own deadline: the agent stops waiting and records a timeout.
                self.gave_up += 1
                event = run.decide("expire", "deadline", "no decision before the deadline", now)
            else:
                continue
            del self._waiting[i]
            self._runs.append((run, agent))  # back at work: it finishes (or stops) from here
            return event, agent
        return None

    def _write(self, event: dict, agent: int) -> None:
        if self.sor_url and event["kind"] in ("action", "compensation"):
            event = apply_to_sor(self.sor_url, event)
        line = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        self._file(agent).write(line)
        self.written += 1

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
            if self.receiver is not None:
                self.receiver.close()
                self.receiver = None
