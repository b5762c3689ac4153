"""Running the agent under test on each case: a process a run, tools answered from the case.

Each run gets its own process (its own session, so a timeout kills whatever
the agent started), its own trace file under the results folder, and a
watchdog: a hung agent is killed at the timeout and the run fails with
"timed out". Cases run ``jobs`` at a time on a thread pool (the work is in
the agents' processes).
"""

from __future__ import annotations

import math
import os
import shlex
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from agentdeck.replay.suite import protocol
from agentdeck.replay.suite.case import FLAVOURS, Case
from agentdeck.replay.suite.judge import judge, observe
from agentdeck.store import stats

STDERR_TAIL = 2000  # bytes of the agent's stderr kept for the report


@dataclass
class Run:
    case_id: str
    flavour: str
    attempt: int
    passed: bool
    reasons: list[str]
    trace: Path
    seconds: float
    stderr: str = ""
    agent: str | None = None  # as the run's trace reported it
    version: str | None = None


@dataclass
class CaseResult:
    case: Case
    runs: list[Run] = field(default_factory=list)

    @property
    def passes(self) -> int:
        return sum(r.passed for r in self.runs)

    @property
    def passed(self) -> bool:
        return bool(self.runs) and self.passes == len(self.runs)

    @property
    def flaky(self) -> bool:
        return 0 < self.passes < len(self.runs)

    @property
    def rate(self) -> float:
        return self.passes / len(self.runs) if self.runs else 0.0

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        return stats.wilson(self.passes, len(self.runs), confidence)

    @property
    def reason(self) -> str:
        failed = [r for r in self.runs if not r.passed]
        return "; ".join(failed[0].reasons) if failed else ""


@dataclass
class SuiteResult:
    command: str
    results: list[CaseResult]
    seconds: float

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def tested(self) -> tuple[str | None, str | None]:
        """The agent and version this run tested: the most common among its runs' traces (None: no trace said)."""
        agents = Counter(r.agent for r in self.all_runs() if r.agent)
        agent = agents.most_common(1)[0][0] if agents else None
        versions = Counter(r.version for r in self.all_runs() if r.version and r.agent == agent)
        return agent, (versions.most_common(1)[0][0] if versions else None)

    def all_runs(self) -> list[Run]:
        return [run for r in self.results for run in r.runs]

    def by_flavour(self) -> dict[str, tuple[int, int]]:
        """Per flavour: runs passed and runs in all."""
        out = {}
        for f in FLAVOURS:
            runs = [run for r in self.results if r.case.flavour == f for run in r.runs]
            if runs:
                out[f] = (sum(run.passed for run in runs), len(runs))
        return out


class _Agent:
    """One run of the agent's command: the conversation over its stdin and stdout."""

    def __init__(self, argv: list[str], case: Case, trace: Path, task_id: str, timeout: float) -> None:
        self.case, self.trace = case, trace
        self.reasons: list[str] = []
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.stderr = b""
        self._err_reader = threading.Thread(target=self._drain_stderr, daemon=True)
        self._err_reader.start()
        self.timed_out = False
        self._watchdog = threading.Timer(timeout, self._kill, kwargs={"why": "timeout"})
        self._watchdog.daemon = True
        self._watchdog.start()
        self._send({"type": "case", "protocol": protocol.PROTOCOL, "case_id": case.id, "task_id": task_id,
                    "agent": case.agent, "request": case.request.model_dump(), "trace_file": str(trace)})

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for chunk in iter(lambda: self.proc.stderr.read(4096), b""):  # type: ignore[union-attr]
            self.stderr = (self.stderr + chunk)[-STDERR_TAIL:]

    def _kill(self, why: str) -> None:
        self.timed_out = why == "timeout"
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _send(self, message: dict) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(protocol.line(message))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the agent left; its exit status says why

    def converse(self) -> None:
        assert self.proc.stdout is not None
        uncovered = []
        for raw in iter(self.proc.stdout.readline, b""):
            if not raw.strip():
                continue
            try:
                message = protocol.parse(raw)
            except ValueError as exc:
                self.reasons.append(f"protocol: {exc}")
                self._kill("protocol")
                break
            kind = message["type"]
            if kind == "tool_call":
                tool, given = str(message.get("tool")), message.get("input")
                answer = self.case.answer(tool, given)
                if answer is None:
                    uncovered.append(tool)
                    self._send({"type": "tool_result", "call_id": message.get("call_id"), "status": "error",
                                "output": {"error": f"the case does not cover a call to {tool} with this input"}})
                else:
                    self._send({"type": "tool_result", "call_id": message.get("call_id"), "status": answer.status,
                                "output": answer.output})
            elif kind == "escalation":
                self._send({"type": "decision", "escalation_id": message.get("escalation_id"),
                            "decision": self.case.decision})
            elif kind == "done":
                break
            else:
                self.reasons.append(f"protocol: unknown message type {kind!r}")
                self._kill("protocol")
                break
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._kill("exit")
            code = self.proc.wait()
        self._watchdog.cancel()
        self._err_reader.join(5)
        if self.timed_out:
            self.reasons.insert(0, "timed out (the agent was killed)")
        elif code != 0:
            self.reasons.append(f"agent exited {code}")
        for tool in dict.fromkeys(uncovered):
            self.reasons.append(f"tool call the case does not cover: {tool}")


def run_case(argv: list[str], case: Case, attempt: int, out_dir: Path, contract_dirs: list[Path],
             timeout: float) -> Run:
    folder = out_dir / case.id
    folder.mkdir(parents=True, exist_ok=True)
    trace = folder / f"run-{attempt}.jsonl"
    trace.unlink(missing_ok=True)
    started = time.monotonic()
    try:
        agent = _Agent(argv, case, trace, f"suite-{case.id}-{attempt}", timeout)
    except OSError as exc:
        return Run(case.id, case.flavour, attempt, False, [f"cannot start the agent: {exc.strerror or exc}"],
                   trace, 0.0)
    agent.converse()
    reasons = list(agent.reasons)
    seen = None
    if not agent.timed_out:
        seen = observe(trace, contract_dirs)
        reasons = judge(case, seen) + reasons
    stderr = agent.stderr.decode("utf-8", "replace")
    return Run(case.id, case.flavour, attempt, not reasons, reasons, trace, time.monotonic() - started, stderr,
               agent=seen.agent if seen else None, version=seen.version if seen else None)


def run_suite(command: str, cases: list[Case], out_dir: Path, *, jobs: int = 1, repeat: int = 1,
              timeout: float = 30.0, contract_dirs: list[Path] | None = None,
              progress: Callable[[Run], None] | None = None) -> SuiteResult:
    """Run every case ``repeat`` times, ``jobs`` at a time."""
    argv = shlex.split(command)
    dirs = list(contract_dirs or [])
    started = time.monotonic()
    results = {c.id: CaseResult(c) for c in cases}
    work = [(c, attempt) for attempt in range(1, repeat + 1) for c in cases]
    lock = threading.Lock()

    def one(item: tuple[Case, int]) -> None:
        case, attempt = item
        run = run_case(argv, case, attempt, out_dir, dirs, timeout)
        with lock:
            results[case.id].runs.append(run)
            if progress is not None:
                progress(run)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(one, work))
    for r in results.values():
        r.runs.sort(key=lambda run: run.attempt)
    return SuiteResult(command, [results[c.id] for c in cases], time.monotonic() - started)


def compare(baseline: SuiteResult, candidate: SuiteResult) -> tuple[list[str], list[str]]:
    """Cases that regressed (passed on the baseline, not on the candidate) and that improved."""
    base = {r.case.id: r for r in baseline.results}
    regressed, improved = [], []
    for r in candidate.results:
        b = base.get(r.case.id)
        if b is None:
            continue
        if b.passed and not r.passed:
            regressed.append(r.case.id)
        elif r.passed and not b.passed:
            improved.append(r.case.id)
    return regressed, improved


def pass_rate_text(passes: int, runs: int) -> str:
    lo, hi = stats.wilson(passes, runs)
    return f"{passes}/{runs} ({100 * passes / runs:.0f}%, 95% CI {math.floor(100 * lo)}–{math.ceil(100 * hi)}%)"
