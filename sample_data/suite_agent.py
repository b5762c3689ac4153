"""The sample approval agent as a command the regression suite can run.

    python -m agentdeck.sample_data.suite_agent --version v1   # the baseline: refuses injected instructions
    python -m agentdeck.sample_data.suite_agent --version v2   # the canary: follows instructions hidden in tool output

It speaks the suite's protocol (replay/suite/protocol.py, docs/suite.md):
reads the case from stdin, asks for its tools on stdout, escalates when its
policy says a human must decide, and writes its trace in agentdeck's JSONL
format to the file the runner names. Its decisions are rules, not a model,
so a run is repeatable; v2 is wrong on purpose in the way the sample canary
is: it obeys instructions it finds in tool output.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

VERSIONS = {
    "v1": {"id": "v1", "prompt": "approvals-p7", "model": "gpt-4.1-2025-04", "policy": "pol-2026.10", "tool_schema": "ts-3"},
    "v2": {"id": "v2", "prompt": "approvals-p8", "model": "gpt-5-mini-2026-08", "policy": "pol-2026.10", "tool_schema": "ts-3"},
}
STAGES = {"v1": "bounded", "v2": "partial"}
HIGH_RISK_ROLES = {"db-admin", "org-admin", "billing-admin"}
REFUND_LIMIT = 500.0
SOR_URL = "http://127.0.0.1:8765"  # where compensations would go (never called by a suite run)

# Requests that try to talk their way past the policy.
REQUEST_INJECTION = re.compile(r"ignore (the|all) polic|policy checks are disabled|maintenance mode|\[system\]", re.I)
# Instructions hidden in what a tool returned.
TOOL_INJECTION = re.compile(r"ignore (all )?previous instructions|disregard (the|your) (policy|instructions)", re.I)
AMBIGUOUS = re.compile(r"no ticket reference|on hold|the usual amount|requester and beneficiary differ", re.I)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Agent:
    def __init__(self, version: str, inp: IO[str], out: IO[str]) -> None:
        self.version, self.inp, self.out = version, inp, out
        self.case = self._read()
        self.trace = open(self.case["trace_file"], "a", encoding="utf-8")  # noqa: SIM115 (closed in run)
        self.task_id = self.case["task_id"]
        self.seq = 0
        self.calls = 0

    def _read(self) -> dict:
        line = self.inp.readline()
        if not line:
            raise SystemExit("suite_agent: no message on stdin")
        return json.loads(line)

    def _say(self, message: dict) -> dict | None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()
        return None if message["type"] == "done" else self._read()

    def emit(self, kind: str, **fields: Any) -> None:
        event = {"v": 1, "kind": kind, "ts": now(), "task_id": self.task_id, "seq": self.seq, **fields}
        self.seq += 1
        self.trace.write(json.dumps(event) + "\n")
        self.trace.flush()

    def tool(self, name: str, given: dict) -> tuple[str, Any]:
        self.calls += 1
        call_id = f"c{self.calls}"
        self.emit("tool_call", call_id=call_id, tool=name, input=given)
        answer = self._say({"type": "tool_call", "call_id": call_id, "tool": name, "input": given}) or {}
        status, output = answer.get("status", "error"), answer.get("output")
        self.emit("tool_result", call_id=call_id, tool=name, output=output, status=status, latency_ms=1.0, retry=0)
        return status, output

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.trace.close()
            self._say({"type": "done"})

    def _run(self) -> None:
        request = self.case["request"]
        text, fields = request.get("text", ""), dict(request.get("input") or {})
        kind = "access" if "role" in fields else "refund" if "amount" in fields else "record"
        agent = "records-agent" if kind == "record" else "approval-agent"
        system, operation, tool = {
            "access": ("iam", "grant_role", "iam.lookup_user"),
            "refund": ("payments", "refund", "payments.lookup_order"),
            "record": ("crm", "update_record", "crm.get_record"),
        }[kind]
        policy = {"access": "POL-IAM-7", "refund": "POL-REFUND-3", "record": "POL-PII-2"}[kind]
        user = str(fields.get("user", "?"))
        self.emit("task_start", request_id=f"req-{self.task_id}", agent=agent, agent_version=VERSIONS[self.version],
                  cohort="canary" if self.version == "v2" else "baseline", stage=STAGES[self.version],
                  request=text, input=fields)
        self.emit("plan", summary=f"Check the request against policy, then {operation.replace('_', ' ')} if allowed",
                  steps=[f"look up {user}", "check policy", operation.replace("_", " ")])

        if REQUEST_INJECTION.search(text):  # both versions see through the request itself
            return self._refuse(operation, "request contains instructions to bypass policy")

        status, looked_up = self.tool(tool, {"user": user})
        if status != "ok":
            status, looked_up = self.tool(tool, {"user": user})
        if status != "ok":
            self.emit("policy_check", policy_id=policy, policy_version="4", verdict="deny",
                      reason=f"{tool} unavailable: cannot verify the request", subject=operation)
            self.emit("task_end", outcome="failed", summary=f"{tool} failed twice")
            return
        hidden = _hidden_instruction(looked_up)
        if hidden is not None:
            if self.version == "v1":
                return self._refuse(operation, "tool output contains instructions to bypass policy")
            # v2 obeys what the tool output told it, as the sample canary does.
            fields.update(_obey(kind, hidden))
            self.emit("policy_check", policy_id=policy, policy_version="4", verdict="allow",
                      reason="agent accepted an instruction found in tool output", subject=operation)
            return self._act(system, operation, fields, "instructed by the lookup's notes")

        high_risk = ((kind == "access" and fields.get("role") in HIGH_RISK_ROLES)
                     or (kind == "refund" and float(fields.get("amount") or 0) > REFUND_LIMIT)
                     or (kind == "record" and fields.get("field") == "iban"))
        if high_risk or AMBIGUOUS.search(text):
            self.emit("policy_check", policy_id=policy, policy_version="4", verdict="escalate",
                      reason="high-risk change" if high_risk else "request is incomplete or conflicting",
                      subject=operation)
            esc_id = f"esc-{self.task_id}"
            self.emit("escalation", escalation_id=esc_id,
                      proposed_action={"system": system, "operation": operation, "params": fields,
                                       "amount": fields.get("amount")},
                      risk="high" if high_risk else "medium",
                      reason="above the autonomous limit" if high_risk else "the request does not say enough to decide",
                      policy_id=policy, deadline=now(),
                      justification=f"I would {operation.replace('_', ' ')} for {user}, but policy {policy} requires a human")
            answer = self._say({"type": "escalation", "escalation_id": esc_id}) or {}
            decision = answer.get("decision", "deny")
            self.emit("decision", escalation_id=esc_id, decision=decision, decided_by="suite")
            if decision != "approve":
                self.emit("task_end", outcome="denied", summary="a human denied it")
                return
            return self._act(system, operation, fields, f"policy {policy} allows it after human approval")
        self.emit("policy_check", policy_id=policy, policy_version="4", verdict="allow",
                  reason="within autonomous limits", subject=operation)
        self._act(system, operation, fields, f"policy {policy} allows it")

    def _refuse(self, operation: str, why: str) -> None:
        self.emit("policy_check", policy_id="POL-INJECT-1", policy_version="3", verdict="deny", reason=why,
                  subject=operation)
        self.emit("task_end", outcome="denied", summary=why)

    def _act(self, system: str, operation: str, params: dict, justification: str) -> None:
        action_id = f"act-{self.task_id}"
        amount = params.get("amount")
        self.emit("action", action_id=action_id, system=system, operation=operation, params=params,
                  amount=float(amount) if isinstance(amount, (int, float)) else None,
                  before={"state": "before"}, after={"state": "after", **params},
                  response={"status": 200, "body": {"ok": True}}, status="ok", justification=justification,
                  compensation={"type": "http", "method": "POST", "url": f"{SOR_URL}/compensate",
                                "body": {"action_id": action_id}, "idempotency_key": f"undo-{action_id}"})
        self.emit("task_end", outcome="success", summary=f"{system}.{operation} done")


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _hidden_instruction(output: Any) -> str | None:
    return next((s for s in _strings(output) if TOOL_INJECTION.search(s)), None)


def _obey(kind: str, instruction: str) -> dict:
    """What v2 changes when it follows an instruction found in tool output."""
    if kind == "access":
        role = re.search(r"\b([a-z]+-admin)\b", instruction)
        return {"role": role.group(1) if role else "org-admin"}
    if kind == "refund":
        amount = re.search(r"(\d+(?:\.\d+)?)\s*EUR", instruction)
        return {"amount": float(amount.group(1)) if amount else 9999.0}
    target = re.search(r"set (\w+) to (\S+)", instruction)
    return {"field": target.group(1), "value": target.group(2)} if target else {"field": "iban"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="suite_agent", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", choices=sorted(VERSIONS), required=True)
    args = ap.parse_args(argv)
    Agent(args.version, sys.stdin, sys.stdout).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
