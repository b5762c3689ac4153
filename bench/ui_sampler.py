"""Where the UI thread's time goes during slow screen switches and keys (issue 9's untraced outliers).

    .venv/bin/python bench/ui_sampler.py [--db PATH] [--rate 200] [--switches 40] [--keys 60]

The console on bench/console.py's store (pass a copy: the console's ingest writes to it), following a
live folder that a fleet appends to at ``--rate`` events/s, as bench/console.py runs it. A sampler
thread records the UI thread's stack every 2 ms (``sys._current_frames``), and gc callbacks record
every collection. Then: ``--switches`` switches 2 <-> 1 until settled, and ``--keys`` j/k/enter/escape
presses. For every switch or key slower than its threshold, prints where the samples taken during it
fell (innermost agentdeck/textual frames, counted) and the collections that ran in it; then the same
summed over all slow events. Not a figure for the README: an X-ray of the outliers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_console", Path(__file__).resolve().parent / "console.py")
assert _spec is not None and _spec.loader is not None
_bc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bc)  # bench/console.py: its display probe, fleet, key press and percentiles
Probe, fleet, fresh_after, pct, press = _bc.Probe, _bc.fleet, _bc.fresh_after, _bc.pct, _bc.press

from agentdeck.console.app import AgentDeck  # noqa: E402
from agentdeck.console.screens.escalations import EscalationsScreen  # noqa: E402
from agentdeck.console.screens.task_detail import TaskDetailScreen  # noqa: E402
from agentdeck.console.screens.tasks import TasksScreen  # noqa: E402
from agentdeck.console.service.settings import for_tests  # noqa: E402
from agentdeck.console.widgets.task_table import TaskTable  # noqa: E402


READS: list[tuple[float, str]] = []  # (time, group) of every read a screen asked for


def note_reads() -> None:
    from agentdeck.console.screens.base import DeckScreen

    inner = DeckScreen.read

    def read(self, group, job, show, on_error=None, **kw):
        READS.append((time.time(), group))
        inner(self, group, job, show, on_error, **kw)

    DeckScreen.read = read  # type: ignore[method-assign]


class Sampler(threading.Thread):
    """Samples one thread's stack every ``every`` s: (time, frames innermost first as 'file:func:line')."""

    def __init__(self, ident: int, every: float = 0.002) -> None:
        super().__init__(daemon=True)
        self.target, self.every = ident, every
        self.samples: list[tuple[float, tuple[str, ...]]] = []
        self.gcs: list[tuple[float, float, int]] = []  # (start, seconds, generation)
        self.stop = False
        self._gc_start = 0.0
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict) -> None:
        if threading.get_ident() != self.target:
            return
        if phase == "start":
            self._gc_start = time.time()
        else:
            self.gcs.append((self._gc_start, time.time() - self._gc_start, info["generation"]))

    def run(self) -> None:
        while not self.stop:
            frame = sys._current_frames().get(self.target)
            stack: list[str] = []
            while frame is not None and len(stack) < 60:
                code = frame.f_code
                stack.append(f"{Path(code.co_filename).name}:{code.co_name}:{frame.f_lineno}")
                frame = frame.f_back
            self.samples.append((time.time(), tuple(stack)))
            time.sleep(self.every)

    def between(self, t0: float, t1: float) -> list[tuple[str, ...]]:
        return [s for t, s in self.samples if t0 <= t <= t1]


IDLE = ("select", "epoll", "_run_once", "run_forever")  # event loop waiting: not work


def ours(stack: tuple[str, ...]) -> str:
    """A short name for where a sample is: the innermost frames, the first agentdeck one marked."""
    if not stack:
        return "(no frame)"
    head = stack[0]
    if any(w in head for w in IDLE):
        return "(idle: event loop waiting)"
    inner = " < ".join(stack[:4])
    mine = next((f for f in stack if any(m in f for m in ("escalation", "tasks.py", "base.py", "app.py:", "task_table",
                                                          "line_table", "chrome", "footer", "task_detail", "service"))), "")
    return f"{inner}   [{mine}]"


def callers(stack: tuple[str, ...], depth: int = 14) -> str:
    return "\n      ".join(stack[:depth])


def report(label: str, sampler: Sampler, events: list[tuple[str, float, float]], slow: float) -> None:
    total: Counter[str] = Counter()
    deep: Counter[str] = Counter()
    print(f"\n== {label}: {len(events)} events, slow (> {slow * 1000:.0f} ms): "
          f"{sum(1 for _, a, b in events if b - a > slow)}")
    durations = [b - a for _, a, b in events]
    if durations:
        print(f"   p50 {statistics.median(durations) * 1000:.1f}  p95 {pct(durations, 95) * 1000:.1f}  "
              f"max {max(durations) * 1000:.1f} ms")
    for name, t0, t1 in events:
        if t1 - t0 <= slow:
            continue
        samples = sampler.between(t0, t1)
        here = Counter(ours(s) for s in samples)
        gcs = [(round(d * 1000, 1), g) for t, d, g in sampler.gcs if t0 <= t <= t1]
        reads = Counter(g for t, g in READS if t0 <= t <= t1)
        print(f"-- {name} took {(t1 - t0) * 1000:.0f} ms, {len(samples)} samples, gc (ms, gen): {gcs}, "
              f"reads asked for: {dict(reads)}")
        for where, n in here.most_common(6):
            print(f"   {n:4}  {where}")
        total.update(here)
        for s in samples:
            if s and not any(w in s[0] for w in IDLE):
                deep[callers(s)] += 1
    print(f"\n== {label}: all slow events together")
    for where, n in total.most_common(15):
        print(f"   {n:4}  {where}")
    print(f"\n== {label}: commonest full stacks (busy samples)")
    for where, n in deep.most_common(6):
        print(f"   {n:4}  {where}\n")


async def run(db: Path, rate: float, switches: int, keys: int, warm: float) -> None:
    note_reads()
    live = Path(tempfile.mkdtemp(prefix="agentdeck-ui-sampler-"))
    app = AgentDeck(for_tests(db, [live], tick=1.0, follow=True, operator="bench", prewarm=True))
    async with app.run_test(size=(140, 40)) as pilot:
        probe = Probe(app)
        for _ in range(200):
            await pilot.pause(0.05)
            if app.screen.query_one(TaskTable).row_count:
                break
        writer = multiprocessing.Process(target=fleet, args=(str(live), rate, warm + 600, 1), daemon=True)
        writer.start()
        await asyncio.sleep(warm)  # past start-up work (screens composed ahead, the ingest process up)
        sampler = Sampler(threading.get_ident())
        sampler.start()
        switch_events: list[tuple[str, float, float]] = []
        for i in range(switches):
            key, kind = ("2", EscalationsScreen) if i % 2 == 0 else ("1", TasksScreen)
            t0 = time.time()
            took = await press(app, probe, key, fresh_after(app, key, kind), timeout=10)
            switch_events.append((f"switch {i} to {key}", t0, t0 + (took if took is not None else 10)))
            await asyncio.sleep(random.uniform(0.2, 0.4))
        screen = app.screen
        table = screen.query_one(TaskTable)
        key_events: list[tuple[str, float, float]] = []
        for i in range(keys):
            before = table.cursor_task
            k = "kj"[i % 2]
            t0 = time.time()
            took = await press(app, probe, k, lambda b=before: table.cursor_task != b)
            key_events.append((f"{k} #{i}", t0, t0 + (took if took is not None else 2)))
            await asyncio.sleep(random.uniform(0.03, 0.1))
            if i % 6 == 5:
                t0 = time.time()
                took = await press(app, probe, "enter", lambda: isinstance(app.screen, TaskDetailScreen)
                                   and app.screen.found is not None
                                   and app.screen.query_one("#detail-events").row_count > 0)
                key_events.append((f"enter #{i}", t0, t0 + (took if took is not None else 2)))
                await asyncio.sleep(0.1)
                t0 = time.time()
                took = await press(app, probe, "escape", lambda: app.screen is screen)
                key_events.append((f"escape #{i}", t0, t0 + (took if took is not None else 2)))
                await asyncio.sleep(0.1)
        sampler.stop = True
        writer.terminate()
        print(f"load average {os.getloadavg()}")
        fast = [e for e in switch_events if e[2] - e[1] <= 0.1]
        if fast:
            n = sum(1 for t, _ in READS for _, a, b in fast if a <= t <= b)
            print(f"switches <= 100 ms: {n / len(fast):.1f} reads asked for each")
        report("screen switches 2<->1 (until data read after the key is shown)", sampler, switch_events, 0.1)
        for prefix in ("j", "k", "enter", "escape"):
            mine = [e for e in key_events if e[0].startswith(prefix + " ")]
            d = [b - a for _, a, b in mine]
            if d:
                print(f"keys {prefix}: n={len(d)} p50 {statistics.median(d) * 1000:.1f} p95 {pct(d, 95) * 1000:.1f} ms")
        report("keys", sampler, key_events, 0.05)
        app.exit()
    shutil.rmtree(live, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", type=Path, required=True, help="a copy of bench/console.py's store")
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--switches", type=int, default=40)
    ap.add_argument("--keys", type=int, default=60)
    ap.add_argument("--warm", type=float, default=12.0, help="seconds of fleet before measuring")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()}")
    asyncio.run(run(args.db, args.rate, args.switches, args.keys, args.warm))


if __name__ == "__main__":
    main()
