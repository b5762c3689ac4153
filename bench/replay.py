"""Benchmark: opening the replay of a 10,000-step task in a store of 1,000,000 events.

Target: < 300 ms to open (reconstruct the task and show it in the Replay
screen). Printed beside a bare baseline measured in the same run: the raw
SELECT of that task's events.

    .venv/bin/python bench/replay.py [--db PATH] [--events N] [--steps N] [--rebuild]

The store is built once (synthetic but realistic events written straight
into the tables, ~1 minute) and reused from --db on later runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path


from agentdeck.replay.reconstruct import reconstruct
from agentdeck.store.db import connect

BIG = "task-big"
T0 = 1795510800.0  # 2026-11-24T09:00Z


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def event(task: str, seq: int, ts: float, i: int) -> tuple[str, dict]:
    env = {"v": 1, "ts": iso(ts), "task_id": task, "seq": seq}
    if seq == 0:
        return "task_start", env | {"kind": "task_start", "request_id": f"req-{task}", "agent": "approval-agent",
                                    "agent_version": {"id": "v1", "prompt": "p7", "model": "m", "policy": "pol", "tool_schema": "ts"},
                                    "request": f"refund order {i} for alice", "input": {"user": "alice"}}
    if seq % 100 == 99:  # a long run acts now and then: 1 action every 100 steps
        return _action(env, task, seq, i)
    r = seq % 6
    if r == 1:
        return "tool_call", env | {"kind": "tool_call", "call_id": f"c{seq}", "tool": "payments.lookup_order",
                                   "input": {"order": i, "user": "alice"}}
    if r == 2:
        return "tool_result", env | {"kind": "tool_result", "call_id": f"c{seq - 1}", "tool": "payments.lookup_order",
                                     "output": {"order": i, "total": 123.45, "items": [{"sku": "A1", "qty": 2}]},
                                     "latency_ms": 80.5}
    if r == 3:
        return "reasoning", env | {"kind": "reasoning", "model": "m", "summary": "weighing the request", "tokens_in": 900,
                                   "tokens_out": 120}
    if r == 4:
        return "policy_check", env | {"kind": "policy_check", "policy_id": "POL-REFUND-3", "policy_version": "4",
                                      "verdict": "allow", "reason": "within limits", "subject": "refund"}
    if r == 5:
        return "plan", env | {"kind": "plan", "summary": "check then refund", "steps": ["look up", "check", "refund"]}
    return "plan", env | {"kind": "plan", "summary": "re-plan after the last result", "steps": ["continue"]}


def _action(env: dict, task: str, seq: int, i: int) -> tuple[str, dict]:
    return "action", env | {"kind": "action", "action_id": f"act-{task}-{seq}", "system": "payments", "operation": "refund",
                            "params": {"order": i}, "amount": 42.0, "before": {"refunded": 0}, "after": {"refunded": 42.0},
                            "response": {"status": 200, "body": {"ok": True}}, "justification": "allowed",
                            "compensation": {"type": "http", "url": "http://127.0.0.1:8765/compensate",
                                             "body": {"action_id": f"act-{task}-{seq}"}, "idempotency_key": f"undo-{seq}"}}


def build(path: Path, total: int, steps: int) -> None:
    path.unlink(missing_ok=True)
    conn = connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    per_task = 10
    others = (total - steps) // per_task
    t_start = time.perf_counter()
    # The big task's events are spread over the whole file (arriving among the others), not contiguous.
    big_every = max(1, others // steps)
    big_seq = 0
    batch, tasks, actions = [], [], []
    ts = T0

    def add(task: str, seq: int, i: int) -> None:
        nonlocal ts
        ts += 0.01
        kind, e = event(task, seq, ts, i)
        batch.append((task, seq, kind, ts, json.dumps(e, separators=(",", ":"))))
        if kind == "action":
            actions.append((e["action_id"], task, seq, ts, "payments", "refund", 42.0, "ok", "allowed",
                            json.dumps(e["compensation"]), e["compensation"]["idempotency_key"]))

    conn.execute("BEGIN")
    for n in range(others):
        task = f"task-{n:07d}"
        for seq in range(per_task):
            add(task, seq, n)
        tasks.append((task, f"req-{task}", "approval-agent", "v1", T0, per_task, per_task - 1))
        if n % big_every == 0 and big_seq < steps:
            add(BIG, big_seq, big_seq)
            big_seq += 1
        if len(batch) >= 50_000:
            conn.executemany("INSERT INTO events (task_id, seq, kind, ts, payload) VALUES (?, ?, ?, ?, ?)", batch)
            batch.clear()
    while big_seq < steps:
        add(BIG, big_seq, big_seq)
        big_seq += 1
    conn.executemany("INSERT INTO events (task_id, seq, kind, ts, payload) VALUES (?, ?, ?, ?, ?)", batch)
    tasks.append((BIG, f"req-{BIG}", "approval-agent", "v1", T0, steps, steps - 1))
    conn.executemany("INSERT INTO tasks (task_id, request_id, agent, version, started, events, max_seq) VALUES (?, ?, ?, ?, ?, ?, ?)", tasks)
    conn.executemany("""INSERT INTO actions (action_id, task_id, seq, ts, system, operation, amount, status, justification,
                        compensation, idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", actions)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    conn.close()
    print(f"built {path}: {count:,} events ({steps:,} in {BIG}) in {time.perf_counter() - t_start:.0f} s")


def timed(fn, runs: int = 7) -> float:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


async def open_in_screen(db: Path) -> dict[str, float]:
    """Wall times in the console (headless, 140x40), median of 5 after a warm-up.

    * ``on_replay``: the Replay screen is showing another task; the big one is opened (as when an id is typed):
      until the timeline holds all its steps and the screen has rendered;
    * ``from_tasks``: the same, pressed on the Tasks screen (includes switching screens);
    * ``switch_floor``: switching from Tasks to Replay with the big task already loaded (nothing to read):
      what Textual itself costs for that screen switch on this machine.
    """
    from agentdeck.console.app import AgentDeck
    from agentdeck.console.widgets.replay_timeline import ReplayTimeline

    from agentdeck.console.service.settings import for_tests

    app = AgentDeck(for_tests(db, [], operator="bench", tick=0, follow=False), clock=lambda: T0)
    times: dict[str, list[float]] = {"on_replay": [], "from_tasks": [], "switch_floor": []}

    def shown(task: str) -> bool:
        rec = getattr(app.screen, "rec", None)
        return rec is not None and rec.task_id == task and len(app.screen.query_one(ReplayTimeline).steps) == len(rec.steps)

    async def wait_shown(task: str) -> None:
        while not shown(task):
            await asyncio.sleep(0.001)

    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        for _ in range(6):
            app.open_replay("task-0000001")  # another task first, so the big one is really read again
            await wait_shown("task-0000001")
            await pilot.pause(0.2)
            t = time.perf_counter()
            app.replay_task = BIG
            await wait_shown(BIG)
            await pilot.pause()  # one render of the visible lines and the detail pane
            times["on_replay"].append((time.perf_counter() - t) * 1000)

            app.open_replay("task-0000001")
            await wait_shown("task-0000001")
            app.switch_mode("tasks")
            await pilot.pause(0.3)  # let the Tasks screen settle
            t = time.perf_counter()
            app.open_replay(BIG)
            await wait_shown(BIG)
            await pilot.pause()
            times["from_tasks"].append((time.perf_counter() - t) * 1000)

            app.switch_mode("tasks")
            await pilot.pause(0.3)
            t = time.perf_counter()
            app.switch_mode("replay")
            await pilot.pause()
            times["switch_floor"].append((time.perf_counter() - t) * 1000)
    return {k: statistics.median(v[1:]) for k, v in times.items()}  # the first includes composing and imports


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="/tmp/agentdeck-bench-replay.db")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    db = Path(args.db)
    if args.rebuild or not db.exists():
        build(db, args.events, args.steps)
    conn = connect(db, readonly=True)
    events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    steps = conn.execute("SELECT count(*) FROM events WHERE task_id = ?", (BIG,)).fetchone()[0]
    baseline = timed(lambda: conn.execute(
        "SELECT id, seq, kind, ts, payload FROM events WHERE task_id = ? ORDER BY seq, id", (BIG,)).fetchall())
    rec = reconstruct(conn, BIG)
    data = timed(lambda: reconstruct(conn, BIG))
    ui = asyncio.run(open_in_screen(db))
    print(f"store: {events:,} events; task {BIG}: {steps:,} steps, {len(rec.actions):,} actions")
    print(f"{'bare SELECT of the task events (baseline)':<58} {baseline:8.1f} ms")
    print(f"{'reconstruct (the replay data structure)':<58} {data:8.1f} ms")
    ok = ui["on_replay"] < 300
    print(f"{'open it on the Replay screen (target < 300 ms)':<58} {ui['on_replay']:8.1f} ms   {'OK' if ok else 'SLOW'}")
    print(f"{'open it from the Tasks screen (incl. the screen switch)':<58} {ui['from_tasks']:8.1f} ms")
    print(f"{'  floor: switch Tasks → Replay, nothing to read':<58} {ui['switch_floor']:8.1f} ms")
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
