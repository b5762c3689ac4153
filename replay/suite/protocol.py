"""How the runner and the agent under test talk: JSON lines over stdin and stdout.

The runner starts the agent's command and writes one line on its stdin::

    {"type": "case", "protocol": 1, "case_id": "...", "task_id": "...", "agent": "...",
     "request": {"text": "...", "input": {...}}, "trace_file": "/abs/path/trace.jsonl"}

The agent then writes lines on its stdout, each answered on its stdin:

* ``{"type": "tool_call", "call_id": "c1", "tool": "iam.lookup_user", "input": {...}}``
  -> ``{"type": "tool_result", "call_id": "c1", "status": "ok", "output": ...}``
  (the case's recorded response; a call the case does not cover is answered
  ``status: "error"`` and fails the run: nothing live is ever called);
* ``{"type": "escalation", "escalation_id": "e1"}``
  -> ``{"type": "decision", "escalation_id": "e1", "decision": "approve" | "deny"}``
  (the case's ``decision``: what a human answers, so the run reaches its end);
* ``{"type": "done"}`` ends the run (the agent may then exit; it must exit 0).

The agent writes its trace to ``trace_file``: agentdeck's JSONL format or
OTLP JSON lines, exactly what it writes in production. Anything else on
stdout is a protocol error; stderr is kept for the report.
"""

from __future__ import annotations

import json
from typing import Any

PROTOCOL = 1


def line(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, ensure_ascii=True, separators=(",", ":")) + "\n").encode()


def parse(raw: bytes) -> dict[str, Any]:
    """One message from the agent; ValueError with a reason when it is not one."""
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a JSON line: {raw[:120]!r}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ValueError(f"not a message (an object with a type): {raw[:120]!r}")
    return message
