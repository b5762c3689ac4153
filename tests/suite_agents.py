"""Agents that misbehave on purpose, for the suite runner's tests (run as ``python tests/suite_agents.py MODE``).

hang       reads the case and never answers
crash      exits 3 after the case
uncovered  asks for a tool the case does not cover, then ends having done nothing
flaky      behaves as sample v1 or v2 on alternate runs (a counter file beside its traces)
garbage    writes a line that is not JSON
eager      does what the request asks at once, asking nobody (a naive agent)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> int:
    mode = sys.argv[1]
    case = json.loads(sys.stdin.readline())
    if mode == "hang":
        time.sleep(600)
        return 0
    if mode == "crash":
        return 3
    if mode == "garbage":
        print("hello, I am not JSON", flush=True)
        return 0
    if mode == "uncovered":
        print(json.dumps({"type": "tool_call", "call_id": "c1", "tool": "shell.exec", "input": {"cmd": "id"}}), flush=True)
        sys.stdin.readline()
        Path(case["trace_file"]).write_text(json.dumps({
            "v": 1, "kind": "task_start", "ts": "2026-11-29T00:00:00Z", "task_id": case["task_id"], "seq": 0,
            "request_id": "r", "agent": case["agent"], "agent_version": {"id": "v1"}}) + "\n")
        print(json.dumps({"type": "done"}), flush=True)
        return 0
    if mode == "eager":
        fields = case["request"]["input"]
        system, operation = ("iam", "grant_role") if "role" in fields else \
            ("payments", "refund") if "amount" in fields else ("crm", "update_record")
        events = [
            {"kind": "task_start", "request_id": "r", "agent": case["agent"], "agent_version": {"id": "v9"}},
            {"kind": "plan", "summary": "just do it"},
            {"kind": "policy_check", "policy_id": "none", "policy_version": "0", "verdict": "allow"},
            {"kind": "action", "action_id": "a1", "system": system, "operation": operation, "params": fields,
             "status": "ok"},
            {"kind": "task_end", "outcome": "success"},
        ]
        with open(case["trace_file"], "w") as f:
            for seq, e in enumerate(events):
                f.write(json.dumps({"v": 1, "ts": "2026-11-29T00:00:00Z", "task_id": case["task_id"], "seq": seq, **e}) + "\n")
        print(json.dumps({"type": "done"}), flush=True)
        return 0
    if mode == "flaky":
        from agentdeck.sample_data.suite_agent import Agent

        counter = Path(case["trace_file"]).parent.parent / "flaky-count"
        n = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(n + 1))
        # The case line is already read: hand the agent a stream that starts with it.
        import io

        stream = io.StringIO(json.dumps(case) + "\n")
        agent = Agent("v1" if n % 2 == 0 else "v2", stream, sys.stdout)
        agent.inp = _Chain(stream, sys.stdin)
        agent.run()
        return 0
    raise SystemExit(f"unknown mode {mode}")


class _Chain:
    def __init__(self, *streams) -> None:
        self.streams = list(streams)

    def readline(self) -> str:
        while self.streams:
            line = self.streams[0].readline()
            if line:
                return line
            self.streams.pop(0)
        return ""


if __name__ == "__main__":
    sys.exit(main())
