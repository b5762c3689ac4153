"""Benchmark: the console on a store of 1,000,000 events / 100,000 tasks (+ one 10,000-step task),
with a fleet appending 200 events/s.

    .venv/bin/python bench/console.py [--events 1000000] [--rate 200] [--seconds 15] [--db PATH] [--rebuild]
                                      [--build-only]

1. Builds (once, then reuses a copy of) a store: synthetic tasks of 10
   events each and one task of 10,000 steps, written as JSON Lines and
   ingested with the real tailer.
2. Bare baselines: the Tasks screen's queries with no UI (the newest window,
   the oldest window, one task's events).
3. Append-to-visible: the real app (``run_test``, headless, 140x40) follows a
   trace folder while another process appends ``--rate`` events/s, each
   stamped with the wall time just before it is written. The app's display
   hook notes when a new task's row, and later its final outcome, is first
   composed on screen in follow mode. (With the tailer in its own process
   there is no in-process batch hook: bench/live.py, run at the end, measures
   append -> committed beside headless ingest with a separate observer.)
   Target: p95 <= 100 ms.
4. Keypress-to-screen, while the fleet keeps writing: a key event is sent
   through the driver as a terminal would; the time until the screen that
   shows its effect is composed. Target: p95 <= 50 ms.
5. Screen switches (1-4) until the screen shows data read after the key
   (every store change it had heard by the key press is covered by a read it
   has answered and drawn: the first frame after the switch, still showing
   the last visit's data, does not count), target <= 100 ms; the Canary
   screen's recomputation (key w) until settled beside the same analysis run
   bare (target <= 2x); opening the 10,000-step task on Replay beside
   ``reconstruct`` alone (target <= 150 ms).
6. First paint: a fresh process importing and starting the console (headless,
   80x24) until its first frame, and until the Tasks rows are on it, beside
   ``python -c pass`` and its floors in the same run: a bare Textual app's
   first frame, the same after building the console's Settings (and with
   the garbage collector paused until the first frame, as the console
   does), ``import textual.app``. The same through the command line as an operator
   starts it (``agentdeck --db --traces``: its argument parsing, settings
   resolution, store check and log set-up included). With .pyc, as
   installed; CPU of the child too. Target <= 0.8 s. ``--first-paint-only``
   runs just this (about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import shutil
import statistics
import tempfile
import time
from contextlib import closing
from collections.abc import Callable
from datetime import datetime, timedelta, UTC
from pathlib import Path


import subprocess
import sys

from textual import events

from agentdeck.console.app import AgentDeck
from agentdeck.console.screens.base import settled
from agentdeck.console.screens.task_detail import TaskDetailScreen
from agentdeck.console.screens.tasks import TasksScreen
from agentdeck.console.service.settings import for_tests
from agentdeck.console.widgets.task_filter import parse_filter
from agentdeck.console.widgets.task_table import TaskTable
from agentdeck.store import queries
from agentdeck.store.db import connect
from agentdeck.store.tailer import Tailer

BIG = "bench-big"  # the 10,000-step task
BIG_STEPS = 10_000


def bare_task_page(conn, filt, anchor, limit=200):
    """The Tasks window's queries with no service and no UI (the bare baseline)."""
    if anchor is None:
        rows, newer = queries.tasks_newest(conn, filt, limit, listed=True), 0
    else:
        rows = queries.tasks_from(conn, filt, anchor, limit, listed=True)
        newer = queries.count_after(conn, filt, queries.task_key(rows[-1])) if rows else 0
    older = bool(rows) and queries.key_before(conn, filt, queries.task_key(rows[0]), 1) is not None
    return rows, older, newer


def big_task_events(t0: datetime) -> list[dict]:
    """One long task: a start, then tool calls, results, reasoning and policy checks, then its end."""
    kinds: list[tuple[str, Callable[[int], dict]]] = [
        ("tool_call", lambda s: {"call_id": f"c{s}", "tool": "payments.lookup_order", "input": {"order": s}}),
        ("tool_result", lambda s: {"call_id": f"c{s - 1}", "tool": "payments.lookup_order",
                                   "output": {"order": s, "total": 12.5}, "latency_ms": 40.0}),
        ("reasoning", lambda s: {"summary": "weighing it", "tokens_in": 900, "tokens_out": 120}),
        ("policy_check", lambda s: {"policy_id": "POL-1", "policy_version": "4", "verdict": "allow"}),
    ]
    env = lambda kind, seq, **kw: {"v": 1, "kind": kind, "ts": iso(t0 + timedelta(milliseconds=seq * 50)),
                                   "task_id": BIG, "seq": seq, **kw}
    out = [env("task_start", 0, request_id=f"req-{BIG}", agent="approval-agent", agent_version={"id": "v1"},
               cohort="baseline", stage="bounded", request="a very long task")]
    for seq in range(1, BIG_STEPS - 1):
        kind, body = kinds[(seq - 1) % len(kinds)]
        out.append(env(kind, seq, **body(seq)))
    out.append(env("task_end", BIG_STEPS - 1, outcome="success", cost_usd=1.0, latency_ms=500000.0))
    return out

AGENTS = [("approval-agent", "v1", "v2"), ("records-agent", "v1", "v2"), ("billing-agent", "v3", "v4"),
          ("triage-agent", "v1", "v2")]
OUTCOMES = ["success"] * 8 + ["failed", "denied", "escalated", "timeout"]
START = datetime(2026, 11, 1, tzinfo=UTC)


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds").replace("+00:00", "Z")


def task_events(rng: random.Random, task_id: str, t0: datetime, *, live: bool = False) -> list[dict]:
    """Ten valid events of one task (ts filled in by the caller when ``live``)."""
    agent, base, canary = rng.choice(AGENTS)
    cohort = "canary" if rng.random() < 0.2 else "baseline"
    tool = rng.choice(["iam.lookup_user", "crm.get_record", "payments.lookup_order", "tickets.search"])
    env = lambda kind, seq, **kw: {"v": 1, "kind": kind, "ts": iso(t0 + timedelta(seconds=seq * 0.4)),
                                   "task_id": task_id, "seq": seq, **kw}
    return [
        env("task_start", 0, request_id=f"req-{task_id}", agent=agent,
            agent_version={"id": canary if cohort == "canary" else base}, cohort=cohort,
            stage="partial" if cohort == "canary" else "bounded", request=f"request {task_id} for user {rng.randint(1, 999)}"),
        env("plan", 1, summary="look up, check policy, act", steps=["look up", "check", "act"]),
        env("tool_call", 2, call_id="c1", tool=tool, input={"q": task_id}),
        env("tool_result", 3, call_id="c1", tool=tool, output={"ok": True}, latency_ms=rng.uniform(20, 300)),
        env("reasoning", 4, summary="weighing it", tokens_in=rng.randint(500, 1500), tokens_out=rng.randint(50, 300)),
        env("policy_check", 5, policy_id="POL-1", policy_version="4", verdict="allow"),
        env("tool_call", 6, call_id="c2", tool=tool, input={"q": "again"}),
        env("tool_result", 7, call_id="c2", tool=tool, output={"ok": True}, latency_ms=rng.uniform(20, 300)),
        env("reasoning", 8, summary="done", tokens_in=300, tokens_out=40),
        env("task_end", 9, outcome=rng.choice(OUTCOMES), cost_usd=round(rng.uniform(0.005, 0.02), 4),
            latency_ms=rng.uniform(800, 5000)),
    ]


def build(db: Path, n_events: int) -> None:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        files = [open(folder / f"agent-{i}.jsonl", "w") for i in range(8)]
        for i in range(n_events // 10):
            out = files[i % len(files)]
            for e in task_events(rng, f"bench-{i:07d}", START + timedelta(seconds=i * 2.5)):
                out.write(json.dumps(e, separators=(",", ":")) + "\n")
        for f in files:
            f.close()
        with open(folder / "big.jsonl", "w") as big:
            for e in big_task_events(START):
                big.write(json.dumps(e, separators=(",", ":")) + "\n")
        t1 = time.perf_counter()
        conn = connect(db)
        Tailer(conn, [folder], post_commit=[]).poll()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("ANALYZE")
        conn.close()
        t2 = time.perf_counter()
    print(f"built {db}: written in {t1 - t0:.1f} s, ingested in {t2 - t1:.1f} s")


def fleet(folder: str, rate: float, seconds: float, seed: int) -> None:
    """Another process: append ``rate`` events/s over 4 files, ts taken just before each write."""
    if os.environ.get("AGENTDECK_BENCH_OWN_SESSIONS", "1") == "1":
        # A fleet is other machines, or at least other sessions: not in the console's. Linux shares the
        # CPU between sessions first (autogroup), so in the bench's session the fleet's CPU came out of
        # the console's share.
        os.setsid()
    rng = random.Random(seed)
    files = [open(Path(folder) / f"live-{i}.jsonl", "a", buffering=1) for i in range(4)]
    running: list[list[dict]] = []
    n, start = 0, time.time()
    while time.time() - start < seconds:
        due = int((time.time() - start) * rate) - n
        for _ in range(due):
            if len(running) < 12 and (not running or rng.random() < 0.2):
                tid = f"live-{seed}-{n:06d}"
                running.append(task_events(rng, tid, datetime.now(UTC)))
            task = rng.choice(running)
            event = task.pop(0)
            if not task:
                running.remove(task)
            event["ts"] = iso(datetime.now(UTC))
            files[hash(event["task_id"]) % 4].write(json.dumps(event, separators=(",", ":")) + "\n")
            n += 1
        time.sleep(0.005)
    for f in files:
        f.close()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def line(label: str, values: list[float], baseline: str = "") -> None:
    if not values:
        print(f"{label:44} (no samples)")
        return
    ms = [v * 1000 for v in values]
    print(f"{label:44} n={len(ms):4}  p50 {statistics.median(ms):7.1f}  p95 {pct(ms, 95):7.1f}  max {max(ms):7.1f} ms  {baseline}")


def best_ms(fn, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1000


class Probe:
    """Wraps the app's display hook: notes when a screen is composed."""

    def __init__(self, app: AgentDeck) -> None:
        self.app = app
        self.check: Callable[[], bool] | None = None  # checked on each composed frame
        self.hit = asyncio.Event()
        self.hit_at = 0.0
        self.appeared: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.watch_live = False
        inner = app._display

        def display(screen, renderable):
            # While Textual masks a switch (App.delay_update) it makes frames and drops them: not on the terminal.
            held_back = app._batch_count > 0
            inner(screen, renderable)
            if renderable is None or held_back:
                return
            now = time.time()
            if self.check is not None and self.check():
                self.check = None
                self.hit_at = now
                self.hit.set()
            if self.watch_live:
                self._note_live(now)

        app._display = display

    def _note_live(self, now: float) -> None:
        screen = self.app.screen
        if not isinstance(screen, TasksScreen) or not screen.follow:
            return
        table = screen.query_one(TaskTable)
        visible = max(1, table.scrollable_content_region.height - 1)
        for key in table.shown.keys[-visible:]:
            if key.startswith("live-"):
                self.appeared.setdefault(key, now)
                if key not in self.finished and table.shown.cells[key][8].plain != "running":
                    self.finished[key] = now


async def press(app: AgentDeck, probe: Probe, key: str, done, timeout: float = 2.0) -> float | None:
    char = key if len(key) == 1 else None
    event = events.Key(key, char)
    event.set_sender(app)
    probe.hit.clear()
    probe.check = done
    t0 = time.time()
    app._driver.send_message(event)
    try:
        await asyncio.wait_for(probe.hit.wait(), timeout)
    except TimeoutError:
        probe.check = None
        screen = app.screen
        table = screen.query(TaskTable).first() if screen.query(TaskTable) else None
        print(f"  ({key!r} showed no effect in {timeout:.0f} s: screen {type(screen).__name__}, focus "
              f"{type(app.focused).__name__}, cursor {getattr(table, 'cursor_row', '-')}/"
              f"{getattr(table, 'row_count', '-')} on {getattr(table, 'cursor_task', '-')}, "
              f"follow {getattr(screen, 'follow', '-')})")
        return None
    return probe.hit_at - t0


async def run_app(db: Path, rate: float, seconds: float, *, keys_only: bool = False,
                  switch_rounds: int = 0, replay_rounds: int = 0) -> None:
    """The app's figures; ``keys_only``: no switches or Replay (``--keys-only``); ``switch_rounds``: only that
    many rounds of screen switches (``--switch-only``); ``replay_rounds``: only that many rebuilt opens of the
    10,000-step task on Replay (``--replay-only``)."""
    live = Path(tempfile.mkdtemp(prefix="agentdeck-bench-live-"))
    # prewarm: as the console runs by default (Settings.prewarm; for_tests turns it off for tests).
    app = AgentDeck(for_tests(db, [live], tick=1.0, follow=True, operator="bench", prewarm=True))
    written: dict[str, tuple[float | None, float | None]] = {}  # task -> (start ts, end ts) as written
    # When the console's start-up work is over (screens composed ahead, the collector settled): rows
    # appended before that wait behind it, which is start-up, not what an operator sees once it runs.
    started_up: list[float] = []
    inner_prewarmed = app._prewarmed

    def prewarmed() -> None:
        inner_prewarmed()
        started_up.append(time.time())

    app._prewarmed = prewarmed  # type: ignore[method-assign]
    async with app.run_test(size=(140, 40)) as pilot:
        probe = Probe(app)
        for _ in range(100):  # first window shown
            await pilot.pause(0.05)
            if app.screen.query_one(TaskTable).row_count:
                break
        screen = app.screen
        table = screen.query_one(TaskTable)
        writer = multiprocessing.Process(target=fleet, args=(str(live), rate, seconds + 30, 1), daemon=True)
        writer.start()
        if switch_rounds or replay_rounds:
            # Past start-up (screens composed ahead), the fleet writing: then only the switches (or Replay).
            while not started_up:
                await asyncio.sleep(0.1)
            await asyncio.sleep(seconds)
            if switch_rounds:
                await switches(app, probe, switch_rounds)
            else:
                with closing(connect(db, readonly=True)) as conn:
                    await replay_open(app, probe, conn, reopen_rounds=2, rebuilt_rounds=replay_rounds)
            writer.terminate()
            app.exit()
            shutil.rmtree(live, ignore_errors=True)
            return

        # -- append-to-visible (follow mode, no keys) ----------------------
        probe.watch_live = True
        await asyncio.sleep(seconds)
        probe.watch_live = False
        for path in live.glob("*.jsonl"):
            for raw in path.read_text().splitlines():
                e = json.loads(raw)
                ts = datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp()
                start, end = written.get(e["task_id"], (None, None))
                if e["kind"] == "task_start":
                    written[e["task_id"]] = (ts, end)
                elif e["kind"] == "task_end":
                    written[e["task_id"]] = (start, ts)
        appear = [probe.appeared[t] - s for t, (s, _) in written.items() if s and t in probe.appeared]
        finish = [probe.finished[t] - e for t, (_, e) in written.items() if e and t in probe.finished]
        print()
        print(f"live fleet {rate:.0f} events/s for {seconds:.0f} s ({sum(1 for s, _ in written.values() if s)} tasks started)")
        # (append -> committed: the ingest is another process; bench/live.py, run at the end, measures it.)
        with closing(connect(db, readonly=True)) as page_conn:  # the read behind a new row, bare, same run
            page_ms = best_ms(lambda: bare_task_page(page_conn, queries.TaskFilter(), None))
        line("append-to-visible, new task row", appear, f"target p95 <= 100 ms; bare page query {page_ms:.2f} ms")
        line("append-to-visible, task_end -> outcome", finish, f"bare page query {page_ms:.2f} ms")
        if started_up:
            after = [probe.appeared[t] - s for t, (s, _) in written.items()
                     if s and s >= started_up[0] and t in probe.appeared]
            first_s = started_up[0] - min((s for s, _ in written.values() if s), default=started_up[0])
            line(f"  new task row, after start-up ({first_s:.1f} s in)", after, "")

        # -- keypress-to-screen, fleet still writing -------------------------
        keys: dict[str, list[float]] = {"j/k (move cursor)": [], "ctrl+d/ctrl+u (half page)": [],
                                        "g (oldest task: new window)": [], "G (newest: follow)": [],
                                        "enter (open task detail)": [], "escape (back to list)": []}
        missed: list[str] = []  # keys whose effect was not on screen within 2 s

        def moved_from(before):
            return lambda: table.cursor_task != before

        for i in range(60):
            k = "k" if i % 2 == 0 else "j"
            # The first k leaves follow mode: a new task shown just before it is handled puts the cursor on
            # that task, and k then moves it to the one that was newest before, which "moved from" would
            # take for no effect. Its effect is the list paused with the cursor above the newest row.
            done = (moved_from(table.cursor_task) if i else
                    lambda: not screen.follow and table.cursor_row < table.row_count - 1)
            took = await press(app, probe, k, done)
            keys["j/k (move cursor)"].append(took) if took is not None else None
            missed.extend([k] if took is None else [])
            await asyncio.sleep(random.uniform(0.03, 0.1))
        for i in range(20):
            k = "ctrl+d" if i % 2 else "ctrl+u"
            took = await press(app, probe, k, moved_from(table.cursor_task))
            keys["ctrl+d/ctrl+u (half page)"].append(took) if took is not None else None
            missed.extend([k] if took is None else [])
            await asyncio.sleep(random.uniform(0.03, 0.1))
        conn = connect(db, readonly=True)
        oldest = queries.tasks_from(conn, queries.TaskFilter(), None, 1)[0]["task_id"]
        for i in range(KEY_ROUNDS):
            took = await press(app, probe, "g", lambda: table.cursor_task == oldest)
            keys["g (oldest task: new window)"].append(took) if took is not None else None
            missed.extend(["g"] if took is None else [])
            await asyncio.sleep(0.1)
            took = await press(app, probe, "G", lambda: screen.follow and table.cursor_task != oldest
                               and table.cursor_task == (table.shown.keys or [None])[-1])
            keys["G (newest: follow)"].append(took) if took is not None else None
            missed.extend(["G"] if took is None else [])
            await asyncio.sleep(0.1)
        for i in range(KEY_ROUNDS):
            await press(app, probe, "k", moved_from(table.cursor_task))
            took = await press(app, probe, "enter", lambda: isinstance(app.screen, TaskDetailScreen)
                               and app.screen.found is not None and app.screen.query_one("#detail-events").row_count > 0)
            keys["enter (open task detail)"].append(took) if took is not None else None
            missed.extend(["enter"] if took is None else [])
            await asyncio.sleep(0.1)
            took = await press(app, probe, "escape", lambda: app.screen is screen)
            keys["escape (back to list)"].append(took) if took is not None else None
            missed.extend(["escape"] if took is None else [])
            await asyncio.sleep(0.1)
        writer.terminate()

        # Bare baselines: the same queries with no UI.
        newest = best_ms(lambda: bare_task_page(conn, queries.TaskFilter(), None))
        first = queries.task_key(queries.tasks_from(conn, queries.TaskFilter(), None, 1)[0])
        oldest_ms = best_ms(lambda: bare_task_page(conn, queries.TaskFilter(), first))
        some = table.cursor_task
        detail_ms = best_ms(lambda: (queries.task(conn, some), queries.task_events(conn, some, limit=2000)))
        baseline = {"j/k (move cursor)": "bare: no query",
                    "ctrl+d/ctrl+u (half page)": "bare: no query",
                    "g (oldest task: new window)": f"bare query {oldest_ms:.2f} ms",
                    "G (newest: follow)": f"bare query {newest:.2f} ms",
                    "enter (open task detail)": f"bare query {detail_ms:.2f} ms",
                    "escape (back to list)": "bare: no query"}
        print()
        print("keypress-to-screen while the fleet writes (target < 50 ms)")
        for name, values in keys.items():
            line(f"  {name}", values, baseline[name])
        if missed:
            print(f"  {len(missed)} keypresses showed no effect within 2 s: {' '.join(missed)}")
        print()
        print("filter queries, bare (newest window; run on a worker thread, the UI stays live meanwhile)")
        for text in ("outcome:failed", "cohort:canary agent:billing-agent", "user 42", "violations", "nomatchatall"):
            filt = parse_filter(text)
            print(f"  {text!r:44} {best_ms(lambda: bare_task_page(conn, filt, None), repeat=3):7.1f} ms")
        everything = [v for values in keys.values() for v in values]
        p95 = pct(everything, 95) * 1000
        print(f"all keys: p95 {p95:.1f} ms -> {'OK' if p95 <= 50 else 'over target'}")

        if not keys_only:
            writer = multiprocessing.Process(target=fleet, args=(str(live), rate, 120, 2), daemon=True)
            writer.start()
            await screens_and_replay(app, probe, conn)
            writer.terminate()
        app.exit()
    shutil.rmtree(live, ignore_errors=True)


def is_settled(app: AgentDeck, kind: type) -> bool:
    screen = app.screen
    return isinstance(screen, kind) and settled(screen)


MODES_BY_KEY = {"1": "tasks", "2": "escalations", "3": "canary", "4": "replay"}


def fresh_after(app: AgentDeck, key: str, kind: type) -> Callable[[], bool]:
    """Call as the key is pressed: then true once the screen shows data read after the press.

    Every store change the screen had heard by then is covered by a read it has answered. (Settled
    alone, no read in flight, passed on the first frame after the switch, before the screen had asked
    for anything; and under a live fleet the next change-driven read is often in flight already when
    this one's answer is drawn: that answer is what the operator sees.) Replay with no task reads nothing.
    """
    from agentdeck.console.screens.replay import ReplayScreen

    stack = app._screen_stacks.get(MODES_BY_KEY[key]) or []
    heard = getattr(stack[-1], "_changes_heard", 0) if stack and isinstance(stack[-1], kind) else 0

    def done() -> bool:
        s = app.screen
        if not isinstance(s, kind):
            return False
        if kind is ReplayScreen and not app.replay_task:
            return settled(s)
        return getattr(s, "_changes_covered", 0) >= heard
    return done


# Rounds of screen switches in the full run: with 8, each "p95" was the single worst switch; 20 make
# it the 95th percentile of what an operator sees (max is printed beside it).
SWITCH_ROUNDS = 20
# Presses of each of g, G, enter and escape. With 10, each key's "p95" was its single worst press (as the
# switches' was with 8 rounds); with 20 it is a percentile, and max is printed beside it.
KEY_ROUNDS = 20


async def switches(app: AgentDeck, probe: Probe, rounds: int = SWITCH_ROUNDS) -> int:
    """Rounds of 2, 3, 4, 1 until each screen shows data read after its key; prints them, returns the misses."""
    from agentdeck.console.screens.canary import CanaryScreen
    from agentdeck.console.screens.escalations import EscalationsScreen
    from agentdeck.console.screens.replay import ReplayScreen

    switch: dict[str, list[float]] = {"1 Tasks": [], "2 Escalations": [], "3 Canary (first: computes)": [],
                                      "3 Canary (again)": [], "4 Replay": []}
    targets = [("2", "2 Escalations", EscalationsScreen), ("3", "3 Canary", CanaryScreen),
               ("4", "4 Replay", ReplayScreen), ("1", "1 Tasks", TasksScreen)]
    missed = 0

    def canary_shown() -> bool:
        # Under a live fleet the Canary screen recomputes now and then whatever
        # the keys do (throttled): "settled" is a report on screen (the first
        # time, the one computed on opening it).
        s = app.screen
        return isinstance(s, CanaryScreen) and s.report is not None

    for round_ in range(rounds):
        for key, name, kind in targets:
            done: Callable[[], bool] = canary_shown if kind is CanaryScreen else fresh_after(app, key, kind)
            took = await press(app, probe, key, done, timeout=10)
            if name == "3 Canary":
                name = "3 Canary (first: computes)" if round_ == 0 else "3 Canary (again)"
            if took is None:
                missed += 1
            else:
                switch[name].append(took)
            await asyncio.sleep(random.uniform(0.2, 0.4))
    print()
    print(f"screen switch until it shows data read after the key, fleet writing (target <= 100 ms; "
          f"load average {os.getloadavg()[0]:.1f})")
    for name, values in switch.items():
        line(f"  {name}", values)
    line("  bare: the Escalations read (queue + detail)", bare_escalation_read(app), "the same store, no UI")
    if missed:
        print(f"  {missed} switches did not show fresh data within 10 s")
    return missed


def bare_escalation_read(app: AgentDeck, runs: int = 8) -> list[float]:
    """What a switch to Escalations reads (EscalationsScreen.reload's job), timed alone, the fleet still writing."""
    deck, took = app.deck, []
    for _ in range(runs):
        t0 = time.perf_counter()
        queue = deck.escalation_queue(False)
        if queue.rows:
            deck.escalation(queue.rows[0]["escalation_id"])
        took.append(time.perf_counter() - t0)
    return took


async def replay_open(app: AgentDeck, probe: Probe, conn, *, reopen_rounds: int = 6, rebuilt_rounds: int = 4) -> None:
    """Open the 10,000-step task on Replay (from Replay and from Tasks), re-opened and rebuilt, beside the bare
    reconstruct of the same task in the same run. Also the rebuilt opens' own CPU: the service's read on its
    worker thread and the screen's ``_show`` on the UI thread (thread CPU time; the rest of the wall time is
    waiting for a CPU or for the GIL, and drawing)."""
    from agentdeck.console.screens.replay import ReplayScreen
    from agentdeck.console.widgets.replay_timeline import ReplayTimeline
    from agentdeck.replay import reconstruct as rc

    def shown(task: str) -> bool:
        s = app.screen
        rec = getattr(s, "rec", None)
        return (isinstance(s, ReplayScreen) and rec is not None and rec.task_id == task and settled(s)
                and len(s.query_one(ReplayTimeline).steps) == len(rec.steps))

    async def open_small() -> None:
        app.open_replay(small)
        while not shown(small):  # bounded: a bench must not hang
            await asyncio.sleep(0.005)

    async def open_big(start: Callable[[], object]) -> float:
        """``start()`` opens BIG; when it was called (time.time()), awaited until the probe saw BIG shown whole."""
        probe.hit.clear()
        probe.check = lambda: shown(BIG)
        t0 = time.time()
        start()
        await asyncio.wait_for(probe.hit.wait(), 10)
        return t0

    def replay_big() -> None:  # (the Replay screen's own task switch)
        app.replay_task = BIG

    load_before = os.getloadavg()[0]
    small = queries.tasks_newest(conn, queries.TaskFilter(), 1)[0]["task_id"]
    on_replay, from_tasks = [], []
    for _ in range(reopen_rounds):
        await asyncio.wait_for(open_small(), 10)
        await app.settled()
        t0 = await open_big(replay_big)
        on_replay.append(probe.hit_at - t0)
        await asyncio.wait_for(open_small(), 10)
        await press(app, probe, "1", lambda: is_settled(app, TasksScreen), timeout=10)
        await asyncio.sleep(0.2)
        t0 = await open_big(lambda: app.open_replay(BIG))
        from_tasks.append(probe.hit_at - t0)
    # The same open with the service's reconstruction cache emptied first: the task rebuilt
    # (the runs above re-open an unchanged task, which the service keeps; the first of them was rebuilt).
    cpu: dict[str, list[float]] = {"worker": [], "ui": []}
    deck, screen_show = app.deck, ReplayScreen._show
    inner_replay = deck.replay

    def timed_replay(*args, **kwargs):
        t = time.thread_time()
        try:
            return inner_replay(*args, **kwargs)
        finally:
            cpu["worker"].append(time.thread_time() - t)

    def timed_show(self, view):
        t = time.thread_time()
        try:
            return screen_show(self, view)
        finally:
            if view.rec is not None and view.rec.task_id == BIG:
                cpu["ui"].append(time.thread_time() - t)
                shown_at.append(time.time())

    rebuilt: list[float] = []
    worker_cpu: list[float] = []
    shown_at: list[float] = []  # when _show (the rebuilt task's data handed to the widgets) returned
    data_in: list[float] = []
    first_frame: list[float] = []
    # The first frame composed after _show: the rebuilt task on screen, whole, though reads for store changes
    # heard since (the fleet's) may still be in flight; "shown" waits for those and for a frame after them.
    framed: list[float] = []
    drawn = app._display

    def display(screen, renderable):
        drawn(screen, renderable)
        if renderable is not None and len(shown_at) > len(framed) and app._batch_count == 0:
            framed.append(time.time())
    reads: list[int] = []
    deck.replay = timed_replay  # type: ignore[method-assign]
    ReplayScreen._show = timed_show  # type: ignore[method-assign]
    app._display = display  # type: ignore[method-assign]
    try:
        for _ in range(rebuilt_rounds):
            await asyncio.wait_for(open_small(), 10)
            await app.settled()
            deck._replays.clear()
            cpu["worker"].clear()
            t0 = await open_big(replay_big)
            rebuilt.append(probe.hit_at - t0)
            worker_cpu.append(max(cpu["worker"], default=0.0))  # the rebuild (the refreshes' reads are cheap)
            data_in.append(shown_at[-1] - t0 if shown_at else 0.0)
            first_frame.append(framed[-1] - t0 if len(framed) == len(shown_at) and framed else 0.0)
            reads.append(len(cpu["worker"]))
    finally:
        app._display = drawn  # type: ignore[method-assign]
        deck.replay = inner_replay  # type: ignore[method-assign]
        ReplayScreen._show = screen_show  # type: ignore[method-assign]
    # The baseline is the eager full reconstruct (every step made and its row read whole, as before the
    # lazy timeline); where the lazy one exists it is printed beside it.
    eager = getattr(rc, "reconstruct_eager", rc.reconstruct)
    eager_ms = best_ms(lambda: eager(conn, BIG), repeat=3)
    lazy_ms = best_ms(lambda: rc.reconstruct(conn, BIG), repeat=3) if eager is not rc.reconstruct else None
    bare = f"bare eager reconstruct {eager_ms:.1f} ms" + (f" (lazy {lazy_ms:.1f} ms)" if lazy_ms is not None else "")
    print()
    print(f"Replay (load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after)")
    line(f"Replay: open {BIG} ({BIG_STEPS:,} steps) on Replay", on_replay[1:], "target <= 150 ms")
    line("  from the Tasks screen (incl. the switch)", from_tasks[1:], bare)
    line("  on Replay, rebuilt (service cache emptied)", rebuilt, bare)
    line("    its data handed to the widgets (_show)", data_in, f"service reads until shown: {reads}")
    line("    its first frame after that (not settled)", first_frame, "diagnostic: not the target's measure")
    line("    its CPU: the service's read (worker)", worker_cpu, "")
    line("    its CPU: the screen's _show (UI thread)", cpu["ui"], "")
    print(f"  first open of the run (rebuilt): {on_replay[0] * 1000:.1f} ms  ({bare})")


async def screens_and_replay(app: AgentDeck, probe: Probe, conn) -> None:
    """Screen switches, Canary recomputation and Replay open, while the fleet writes."""
    from agentdeck.console.screens.canary import CanaryScreen
    from agentdeck.store import canary
    from agentdeck.store.contract import book_for_store

    missed = await switches(app, probe)

    # -- Canary: recompute on w (next window) until shown, beside the bare analysis ------------
    await press(app, probe, "3", lambda: is_settled(app, CanaryScreen), timeout=10)
    screen = app.screen
    assert isinstance(screen, CanaryScreen)
    agent, window_took, bare_ms = screen.agent, [], []
    book = book_for_store(conn)
    now = time.time()

    def bare(window: str) -> None:
        pair = next(p for p in canary.pairs(conn) if p.agent == agent)
        report = canary.analyse(conn, agent, pair.baseline, pair.canary, window=window, now=now,
                                contract=book.get(agent))
        canary.tasks_behind(conn, report, canary.DEFAULT_METRICS[0].key)

    for _ in range(8):
        await asyncio.sleep(1.1)  # past the screen's reload throttle
        took = await press(app, probe, "w", lambda: screen.report is not None
                           and screen.report.window == screen.window, timeout=10)
        if took is None:
            missed += 1
        else:
            window_took.append(took)
            bare_ms.append(best_ms(lambda: bare(screen.window), repeat=1) / 1000)
    print()
    line("Canary: w (recompute) until settled", window_took, "target <= 2x bare")
    line("  bare: pairs + analyse + tasks_behind", bare_ms, "(same windows, same run)")
    if window_took and bare_ms:
        print(f"  ratio of medians: {statistics.median(window_took) / statistics.median(bare_ms):.2f}x")

    await replay_open(app, probe, conn)
    if missed:
        print(f"  {missed} switches did not settle within 10 s")


FIRST_PAINT = """
import sys, time
t0 = float(sys.argv[1])
from agentdeck.console.app import AgentDeck
from agentdeck.console.service.settings import for_tests
from pathlib import Path
app = AgentDeck(for_tests(Path(sys.argv[2]), [Path(sys.argv[3])], follow=True, tick=1.0, prewarm=True))
marks = {}
inner = app._display
def display(screen, renderable):
    inner(screen, renderable)
    if renderable is None:
        return
    if "frame" not in marks:
        marks["frame"] = time.time() - t0
        marks["cpu"] = time.process_time()
    try:
        rows = app.screen.query_one("#tasks").row_count
    except Exception:
        rows = 0
    if rows and "rows" not in marks:
        marks["rows"] = time.time() - t0
        marks["rows_cpu"] = time.process_time()
        app.exit()
app._display = display
app.run(headless=True, size=(80, 24))
print(marks.get("frame", -1), marks.get("rows", -1), marks.get("cpu", -1), marks.get("rows_cpu", -1))
"""

# FIRST_PAINT through the command line, as an operator starts the console: `agentdeck --db DB --traces DIR`
# (argument parsing, Settings.resolve, the store opened and checked, the log file set up, then the app).
CLI_FIRST_PAINT = """
import sys, time
t0 = float(sys.argv[1])
import textual.app as ta
marks = {}
draw, start = ta.App._display, ta.App.run
def display(app, screen, renderable):
    draw(app, screen, renderable)
    if renderable is None:
        return
    if "frame" not in marks:
        marks["frame"] = time.time() - t0
        marks["cpu"] = time.process_time()
    try:
        rows = app.screen.query_one("#tasks").row_count
    except Exception:
        rows = 0
    if rows and "rows" not in marks:
        marks["rows"] = time.time() - t0
        marks["rows_cpu"] = time.process_time()
        app.exit()
def run(app, *args, **kwargs):
    return start(app, headless=True, size=(80, 24))
ta.App._display, ta.App.run = display, run
from agentdeck.console.cli import main
main(["--db", sys.argv[2], "--traces", sys.argv[3], "--user", "bench"])
print(marks.get("frame", -1), marks.get("rows", -1), marks.get("cpu", -1), marks.get("rows_cpu", -1))
"""

# The floor under FIRST_PAINT: Textual's own import and start-up, the same way (headless, 80x24,
# a fresh process), for an app of one Static and no CSS of its own. With a store path among its
# arguments, it first builds the console's Settings as FIRST_PAINT does (the CLI's boundary model,
# resolved before the app starts): Textual's floor plus the settings'. With --gc-paused, the garbage
# collector waits as the console's does until its first frame (store/gc_pause.py): the console gets
# that for free, so the floor beside it should too, or "ours above the floor" reads ~40 ms CPU too low.
BARE_FRAME = """
import sys, time
t0 = float(sys.argv[1])
if "--gc-paused" in sys.argv:
    from agentdeck.store import gc_pause
    gc_pause.pause_for_start_up()  # as console/app.py does first
stores = [a for a in sys.argv[2:] if not a.startswith("--")]
if stores:
    from pathlib import Path
    from agentdeck.console.service.settings import for_tests
    for_tests(Path(stores[0]), [Path(stores[0]).parent], follow=True, tick=1.0, prewarm=True)
from textual.app import App
from textual.widgets import Static
class Bare(App):
    def compose(self):
        yield Static("bare")
app = Bare()
marks = {}
inner = app._display
def display(screen, renderable):
    inner(screen, renderable)
    if renderable is not None and "frame" not in marks:
        marks["frame"] = time.time() - t0
        marks["cpu"] = time.process_time()
        app.exit()
app._display = display
app.run(headless=True, size=(80, 24))
print(marks.get("frame", -1), marks.get("cpu", -1))
"""


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.time()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.time() - t0


def first_paint(db: Path, runs: int = 5) -> None:
    """A fresh process to the console's first frame (and its Tasks rows), beside its floor and ``python -c pass``.

    Each child runs with compiled bytecode (.pyc), as a user's install has it:
    this machine sets PYTHONDONTWRITEBYTECODE=1, under which an editable
    install compiles agentdeck's modules from source on every start, so the
    children write and read theirs under a PYTHONPYCACHEPREFIX of their own
    (one warm-up run each, not counted). One line also shows the console
    from source, as this machine starts it. CPU is the child's own (user +
    system, all threads) up to its first frame: what load cannot inflate.
    """
    live = Path(tempfile.mkdtemp(prefix="agentdeck-bench-fp-"))
    pyc = dict(os.environ, PYTHONPYCACHEPREFIX=str(live / "pycache"))
    pyc.pop("PYTHONDONTWRITEBYTECODE", None)
    source = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    source.pop("PYTHONPYCACHEPREFIX", None)
    py = sys.executable

    def console(env: dict[str, str], script: str = FIRST_PAINT) -> list[float]:
        t0 = time.time()
        out = subprocess.run([py, "-c", script, str(t0), str(db), str(live / "traces")], check=True,
                             capture_output=True, text=True, env=env).stdout.split()
        return [float(v) for v in out]

    def bare_frame(*settings: str) -> list[float]:
        t0 = time.time()
        out = subprocess.run([py, "-c", BARE_FRAME, str(t0), *settings], check=True, capture_output=True,
                             text=True, env=pyc).stdout.split()
        return [float(v) for v in out]

    console(pyc)  # warm-up: writes the .pyc (and migrates the store if it is older)
    console(pyc, CLI_FIRST_PAINT)
    bare_frame()
    load = os.getloadavg()[0]
    frames, rows, cpu, rows_cpu, src_frames, src_cpu = [], [], [], [], [], []
    bare, imports, floor, floor_cpu, settings_floor, settings_cpu = [], [], [], [], [], []
    gc_floor, gc_floor_cpu = [], []
    cli_frames, cli_rows, cli_cpu = [], [], []
    for _ in range(runs):  # interleaved, so a change of load hits every line alike
        bare.append(_timed([py, "-c", "pass"], pyc))
        imports.append(_timed([py, "-c", "import textual.app"], pyc))
        frame, cpu_s = bare_frame()
        floor.append(frame)
        floor_cpu.append(cpu_s)
        frame, cpu_s = bare_frame(str(db))
        settings_floor.append(frame)
        settings_cpu.append(cpu_s)
        frame, cpu_s = bare_frame(str(db), "--gc-paused")
        gc_floor.append(frame)
        gc_floor_cpu.append(cpu_s)
        frame, row, cpu_s, row_cpu_s = console(pyc)
        frames.append(frame)
        rows.append(row)
        cpu.append(cpu_s)
        rows_cpu.append(row_cpu_s)
        frame, _, cpu_s, _ = console(source)
        src_frames.append(frame)
        src_cpu.append(cpu_s)
        frame, row, cpu_s, _ = console(pyc, CLI_FIRST_PAINT)
        cli_frames.append(frame)
        cli_rows.append(row)
        cli_cpu.append(cpu_s)
    ms = statistics.median
    print()
    print(f"first paint (load average {load:.1f} before, {os.getloadavg()[0]:.1f} after; .pyc as installed)")
    line("first paint: process start -> first frame", frames,
         f"target <= 0.8 s; CPU {ms(cpu) * 1000:.0f} ms")
    line("  -> Tasks rows on screen", rows, f"CPU {ms(rows_cpu) * 1000:.0f} ms")
    line("  from source (no .pyc: this machine's way)", src_frames, f"CPU {ms(src_cpu) * 1000:.0f} ms")
    line("  through the CLI: agentdeck --db --traces", cli_frames, f"CPU {ms(cli_cpu) * 1000:.0f} ms")
    line("    -> Tasks rows on screen", cli_rows, "")
    line("  floor: bare Textual app, first frame", floor, f"CPU {ms(floor_cpu) * 1000:.0f} ms")
    line("  floor + the console's Settings", settings_floor, f"CPU {ms(settings_cpu) * 1000:.0f} ms")
    line("  floor + Settings, GC paused as ours", gc_floor, f"CPU {ms(gc_floor_cpu) * 1000:.0f} ms")
    line("  floor: python -c 'import textual.app'", imports, "")
    line("  bare: python -c pass", bare, "")
    shutil.rmtree(live, ignore_errors=True)


def live_bench(bc, db: Path, rate: float, seconds: float) -> None:
    """bench/live.py's figures, in this run (it reuses this module's fleet, probe and store)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_live", Path(__file__).with_name("live.py"))
    assert spec is not None and spec.loader is not None
    live = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(live)
    live.run(bc, db, rate, seconds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--db", default=str(Path(tempfile.gettempdir()) / "agentdeck-bench-console.db"))
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--first-paint-only", action="store_true", help="only the first-paint figures (a minute)")
    ap.add_argument("--keys-only", action="store_true",
                    help="only append -> visible and the keys within the Tasks screen (no first paint, screen "
                         "switches, Replay or bench/live.py): a few minutes less")
    ap.add_argument("--switch-only", type=int, default=0, metavar="ROUNDS",
                    help="only ROUNDS rounds of screen switches (2, 3, 4, 1), the fleet writing")
    ap.add_argument("--replay-only", type=int, default=0, metavar="ROUNDS",
                    help="only opening the 10,000-step task on Replay: two re-opens and ROUNDS rebuilt opens "
                         "(service cache emptied), the fleet writing (a minute)")
    args = ap.parse_args()
    template = Path(args.db)
    if args.rebuild or not template.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(str(template) + suffix).unlink(missing_ok=True)
        build(template, args.events)
    if args.build_only:
        return
    work = Path(tempfile.mkdtemp(prefix="agentdeck-bench-console-")) / "store.db"
    shutil.copy(template, work)  # live appends go to a copy: every run starts from the same store
    conn = connect(work, readonly=True)
    n_events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    n_tasks = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    conn.close()
    print(f"store: {n_events:,} events, {n_tasks:,} tasks")
    # Latencies here are wall-clock: on a shared machine they include waiting
    # for a CPU, so say how busy it was.
    print(f"machine: {os.cpu_count()} CPUs, load average before the run {os.getloadavg()[0]:.1f}")
    if args.switch_only or args.replay_only:
        asyncio.run(run_app(work, args.rate, args.seconds, switch_rounds=args.switch_only,
                            replay_rounds=args.replay_only))
        print(f"load average after the run {os.getloadavg()[0]:.1f} (1, 5, 15 min: {os.getloadavg()})")
        shutil.rmtree(work.parent, ignore_errors=True)
        return
    if not args.keys_only:
        first_paint(work)
    if args.first_paint_only:
        shutil.rmtree(work.parent, ignore_errors=True)
        return
    asyncio.run(run_app(work, args.rate, args.seconds, keys_only=args.keys_only))
    # Ingest beside the console: append -> committed (the console's ingest
    # process beside headless `agentdeck ingest --follow`) and append -> row visible.
    if not args.keys_only:
        live_bench(sys.modules[__name__], work, args.rate, args.seconds)
    print(f"load average after the run {os.getloadavg()[0]:.1f} (1, 5, 15 min: {os.getloadavg()})")
    shutil.rmtree(work.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
