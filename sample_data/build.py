"""Writes the bundled, fixed sample data set (``python -m agentdeck.sample_data.build``).

Deterministic: the same code writes the same bytes, so tests can rely on
its contents. It holds the seed's Top 30 scenarios plus a few hundred more
tasks for the canary statistics, spread over several files, with decisions
relayed through a separate file (so a task's events arrive out of order
across files) and ``MALFORMED`` bad lines.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, UTC
from pathlib import Path

from agentdeck.sample_data.driver import TaskRun
from agentdeck.sample_data.scenarios import random_spec, top30

HERE = Path(__file__).parent
TRACES = HERE / "traces"
START = datetime(2026, 11, 24, 9, 0, 0, tzinfo=UTC)
EXTRA_TASKS = 570

# Lines that must be rejected, each for a different reason.
MALFORMED = [
    b'{"v": 1, "kind": "plan", "ts": "2026-11-24T09:00:05Z", "task_id": "task-broken-1", "seq": 1, "summary": "unterminated',
    b'{"v": 1, "kind": "teleport", "ts": "2026-11-24T09:00:06Z", "task_id": "task-broken-2", "seq": 0}',
    b'{"v": 7, "kind": "plan", "ts": "2026-11-24T09:00:07Z", "task_id": "task-broken-3", "seq": 0, "summary": "from the future"}',
    b'{"v": 1, "kind": "tool_call", "ts": "2026-11-24T09:00:08Z", "task_id": "task-broken-4", "seq": "first", "tool": "x"}',
]


def dumps(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def build() -> dict[str, list[bytes]]:
    rng = random.Random(20261124)
    specs = top30() + [random_spec(rng) for _ in range(EXTRA_TASKS)]
    files: dict[str, list[tuple[datetime, bytes]]] = {}
    for i, spec in enumerate(specs):
        key = f"{i:04d}"
        run = TaskRun(spec, key)
        ts = START + timedelta(seconds=i * 37 + rng.uniform(0, 20))
        target = f"{run.agent}-{1 + i % 2}.jsonl" if run.agent == "approval-agent" else f"{run.agent}-1.jsonl"
        while True:
            event = run.step(ts)
            if event is None and run.waiting is not None:
                ts += timedelta(seconds=rng.uniform(30, 400))
                decision = run.decide(spec.decision, rng.choice(["maria.k", "tom.r", "li.w"]),
                                      "checked with the requester" if spec.decision == "approve" else "not justified", ts)
                files.setdefault("approval-relay.jsonl", []).append((ts, dumps(decision)))
                continue
            if event is None:
                break
            files.setdefault(target, []).append((ts, dumps(event)))
            ts += timedelta(milliseconds=rng.uniform(150, 2500))
    out = {name: [line for _, line in sorted(lines, key=lambda tl: tl[0])] for name, lines in files.items()}
    main = out["approval-agent-1.jsonl"]
    for j, bad in enumerate(MALFORMED):
        main.insert(50 + j * 97, bad)
    return out


def write(folder: Path = TRACES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.jsonl"):
        old.unlink()
    for name, lines in build().items():
        (folder / name).write_bytes(b"\n".join(lines) + b"\n")


if __name__ == "__main__":
    write()
    print(f"wrote {TRACES}")
