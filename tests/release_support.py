"""Traces for release tests: an agent's baseline and canary cohorts with chosen action failure rates.

Each task is complete under the sample contracts (plan, policy check, an
action with its evidence, task end), so only the failures differ between
the versions; latency, tokens and cost are alike.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from agentdeck.sample_data.scenarios import SOR_URL

SYSTEM_FOR = {"approval-agent": ("payments", "refund"), "records-agent": ("crm", "update_record")}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def task_lines(agent: str, version: str, cohort: str, key: str, ts: float, *, failed: bool, stage: str) -> list[str]:
    system, operation = SYSTEM_FOR[agent]
    tid = f"task-{key}"
    action_id = f"act-{key}"

    def ev(seq: int, kind: str, **body) -> str:
        return json.dumps({"v": 1, "kind": kind, "ts": iso(ts + seq * 0.5), "task_id": tid, "seq": seq, **body})

    return [
        ev(0, "task_start", request_id=f"req-{key}", agent=agent,
           agent_version={"id": version, "prompt": "p", "model": "m", "policy": "pol", "tool_schema": "ts"},
           cohort=cohort, stage=stage, request=f"refund order {key}", input={"user": "alice"}),
        ev(1, "plan", summary="check, then act", steps=["check", "act"]),
        ev(2, "policy_check", policy_id="POL-1", policy_version="1", verdict="allow", reason="within limits",
           subject=operation),
        ev(3, "action", action_id=action_id, system=system, operation=operation, params={"user": "alice"},
           amount=10.0, before={"x": 0}, after={"x": 1},
           response={"status": 502 if failed else 200, "body": {}}, status="failed" if failed else "ok",
           justification="policy allows it",
           compensation=None if failed else {"type": "http", "method": "POST", "url": f"{SOR_URL}/compensate",
                                              "body": {"action_id": action_id}, "idempotency_key": f"undo-{action_id}"}),
        ev(4, "task_end", outcome="failed" if failed else "success", tokens_in=1000, tokens_out=200,
           cost_usd=0.004, latency_ms=1500.0),
    ]


def write_cohorts(folder: Path, agent: str, *, start: float, baseline_n: int, canary_n: int,
                  baseline_fail_every: int = 0, canary_fail_every: int = 0, name: str | None = None,
                  prefix: str | None = None) -> Path:
    """One trace file with ``baseline_n`` v1 tasks and ``canary_n`` v2 tasks, interleaved a second apart.

    ``*_fail_every``: every Nth task of that cohort has a failed action (0: none).
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or agent}.jsonl"
    lines: list[str] = []
    b = c = 0
    ts = start
    prefix = prefix or agent.split("-")[0]
    while b < baseline_n or c < canary_n:
        if b < baseline_n:
            fail = bool(baseline_fail_every) and b % baseline_fail_every == baseline_fail_every - 1
            lines += task_lines(agent, "v1", "baseline", f"{prefix}-b{b}", ts, failed=fail, stage="bounded")
            b += 1
            ts += 1
        if c < canary_n:
            fail = bool(canary_fail_every) and c % canary_fail_every == canary_fail_every - 1
            lines += task_lines(agent, "v2", "canary", f"{prefix}-c{c}", ts, failed=fail, stage="partial")
            c += 1
            ts += 1
    with open(path, "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path
