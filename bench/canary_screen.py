"""Benchmark: the Canary screen (key 3) on a 1,000,000-event store while a fleet writes 200 events/s.

    .venv/bin/python bench/canary_screen.py [--db PATH] [--rate 200] [--rounds 8] [--size 160x45]

Uses bench/console.py's store (built once with its defaults, then reused: a
copy per run) and its fleet. The console runs as an operator starts it,
following a live trace folder, so its ingest process (and with it the canary
analyst, store/canary_reports.py) runs beside it. Prints, in one run:

* Canary screen **open** (from the Tasks screen, key 3) until settled: the
  report, its differences and the tasks behind the first metric on screen,
  no read in flight. The first open (the screen is built) apart from the
  later ones (it is resumed).
* **recompute** on ``w`` (next window) until the new window's report is on
  screen and settled.
* beside them, bare, in the same run and on the same store: the SQL behind
  one analysis (the aggregates and both cohorts' values, for window "all"),
  the whole analysis as ``agentdeck canary`` runs it (+ the differences),
  and what the screen now reads instead (the stored row and the tasks
  behind the metric); how long the analyst's rounds take and how old the
  reports shown were.
* where an open's time goes: the UI thread's CPU time from the key to
  settled (the rest is waiting: for a core, for the worker), the worker's read (``DeckService.canary``), the
  UI thread's handlers that fill the panels (``_show_view``, ``_show_tasks``…)
  and the rest (Textual's layout and rendering, the event loop, waiting for
  the CPU). ``--profile FILE`` also writes a cProfile of the UI thread over
  the opens and ``w`` presses (``python -m pstats FILE``).
* the load average before and after (2 shared cores: it moves every figure).

Target (issue 16): the screen with its panels settles within 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from siblings import sibling  # (bench/siblings.py: these scripts run by path)


def _bare(db: Path, rounds: int) -> dict[str, list[float]]:
    """The same work with no UI: the SQL, the analysis, and what the screen reads instead."""
    from agentdeck.store import canary, canary_diff
    from agentdeck.store import canary_reports as cr
    from agentdeck.store.contract import ContractCheck
    from agentdeck.store.db import connect

    conn = connect(db, readonly=True)
    book = ContractCheck().book(conn)
    pair = canary.pairs(conn)[0]
    contract = book.get(pair.agent)
    settings = contract.canary if contract is not None else canary.CanarySettings()
    defs = canary.metric_defs(settings)
    out: dict[str, list[float]] = {"sql": [], "analysis": [], "stored": []}
    for _ in range(rounds):
        t0 = time.perf_counter()
        canary._aggregates(conn, pair.agent, (pair.baseline, pair.canary), None, None, defs, settings.loop_tool_calls)
        canary._cohort_values(conn, pair.agent, pair.baseline, None, None, defs)
        canary._cohort_values(conn, pair.agent, pair.canary, None, None, defs)
        t1 = time.perf_counter()
        report = canary.analyse(conn, pair.agent, pair.baseline, pair.canary, window="all", now=time.time(),
                                contract=contract)
        canary_diff.differences(conn, pair.agent, pair.baseline, pair.canary)
        t2 = time.perf_counter()
        stored = cr.load(conn, pair.agent, pair.baseline, pair.canary, "all")
        canary.tasks_behind(conn, stored.report if stored else report, canary.DEFAULT_METRICS[0].key)
        t3 = time.perf_counter()
        out["sql"].append(t1 - t0)
        out["analysis"].append(t2 - t1)
        out["stored"].append(t3 - t2)
    conn.close()
    return out


class HandlerClock:
    """Time the Canary screen's UI-thread handlers (they run on the event loop's thread) by name."""

    NAMES = ("_show_view", "_show", "_show_tasks", "_show_differences", "_show_sparks", "_show_suites",
             "_show_violations", "_show_headline", "_layout")

    def __init__(self, cls) -> None:
        self.spent: dict[str, list[float]] = {}
        self.depth = 0
        for name in self.NAMES:
            if hasattr(cls, name):
                setattr(cls, name, self._wrap(name, getattr(cls, name)))

    def _wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent.setdefault(name, []).append(time.perf_counter() - t0)
        return timed


async def run(bc, db: Path, rate: float, rounds: int, size: tuple[int, int], profile: str | None = None,
              prewarm: bool = False) -> None:
    from agentdeck.console.app import AgentDeck
    from agentdeck.console.screens.base import settled
    from agentdeck.console.screens.canary import CanaryScreen
    from agentdeck.console.screens.tasks import TasksScreen
    from agentdeck.console.service.settings import for_tests
    from agentdeck.store import canary_reports as cr
    from agentdeck.store.db import connect

    clock = HandlerClock(CanaryScreen)
    live = Path(tempfile.mkdtemp(prefix="agentdeck-bench-canary-live-"))
    app = AgentDeck(for_tests(db, [live], tick=1.0, follow=True, operator="bench", prewarm=prewarm))
    writer = multiprocessing.Process(target=bc.fleet, args=(str(live), rate, 600, 3), daemon=True)
    ro = connect(db, readonly=True)
    async with app.run_test(size=size) as pilot:
        probe = bc.Probe(app)
        writer.start()
        # The analyst's first round (the fleet's first tasks committed, then a round over the store).
        t0 = time.time()
        while time.time() - t0 < 180:
            st = cr.state(ro)
            if st is not None and st.pairs:
                break
            await pilot.pause(0.2)
        print(f"analyst's first round stored after {time.time() - t0:.1f} s")
        await pilot.pause(2.0)

        def canary_settled(window: str | None = None):
            def done() -> bool:
                s = app.screen
                return (isinstance(s, CanaryScreen) and s.report is not None and settled(s)
                        and (window is None or s.report.window == window))
            return done

        def tasks_settled() -> bool:
            return isinstance(app.screen, TasksScreen) and settled(app.screen)

        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()  # this thread only: the UI's
            profiler.enable()
        reads: list[float] = []  # DeckService.canary on the worker, per view shown
        first: list[float] = []
        opens: list[float] = []
        # CPU time of the UI thread (the event loop's) from the key to settled: what the screen costs, apart
        # from waiting for a core on a loaded machine and for the worker's read.
        first_cpu: list[float] = []
        opens_cpu: list[float] = []
        recompute_cpu: list[float] = []
        ages: list[float] = []
        computed_here = 0
        for i in range(rounds):
            cpu0 = time.thread_time()
            took = await bc.press(app, probe, "3", canary_settled(), timeout=20)
            if took is not None:
                (first if i == 0 else opens).append(took)
                (first_cpu if i == 0 else opens_cpu).append(time.thread_time() - cpu0)
                view = app.screen.view
                if view is not None:
                    reads.append(view.seconds)
                if view is not None and view.computed_at is not None:
                    ages.append(max(0.0, time.time() - view.computed_at))
                    computed_here += view.computed_here
            await asyncio.sleep(0.3)
            await bc.press(app, probe, "1", tasks_settled, timeout=20)
            await asyncio.sleep(0.5)
        await bc.press(app, probe, "3", canary_settled(), timeout=20)
        screen = app.screen
        assert isinstance(screen, CanaryScreen)
        recompute: list[float] = []
        for _ in range(rounds):
            await asyncio.sleep(1.2)  # past the screen's reload throttle
            order = ("15m", "1h", "24h", "all")
            target = order[(order.index(screen.window) + 1) % len(order)] if screen.window in order else "all"
            cpu0 = time.thread_time()
            took = await bc.press(app, probe, "w", canary_settled(target), timeout=20)
            if took is not None:
                recompute.append(took)
                recompute_cpu.append(time.thread_time() - cpu0)
                computed_here += bool(screen.view and screen.view.computed_here)
                if screen.view is not None:
                    reads.append(screen.view.seconds)
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        app.exit()
    writer.terminate()
    shutil.rmtree(live, ignore_errors=True)
    bare = _bare(db, rounds)
    rows = ro.execute("SELECT win, seconds FROM canary_reports").fetchall()
    cost = {w: statistics.median(s for ww, s in rows if ww == w) for w in {r[0] for r in rows}}
    ro.close()

    print()
    bc.line("Canary open, first (composed ahead), settled" if prewarm else "Canary open, first (screen built), settled",
            first, "target <= 300 ms")
    bc.line("Canary open again (resumed), settled", opens, "target <= 300 ms")
    bc.line("Canary recompute (w), settled", recompute, "target <= 300 ms")
    bc.line("  UI thread CPU: first open", first_cpu, "thread_time, key to settled")
    bc.line("  UI thread CPU: open again", opens_cpu, "")
    bc.line("  UI thread CPU: recompute (w)", recompute_cpu, "")
    bc.line("  worker: DeckService.canary (the read)", reads, "on a thread worker, per view shown")
    for name, spent in sorted(clock.spent.items(), key=lambda kv: -sum(kv[1])):
        bc.line(f"  UI thread: CanaryScreen.{name}", spent, f"total {sum(spent) * 1000:.0f} ms")
    bc.line("  bare: SQL behind one analysis (all)", bare["sql"], "same run, same store")
    bc.line("  bare: analysis + differences (all)", bare["analysis"], "= agentdeck canary --differences")
    bc.line("  bare: stored report + tasks behind", bare["stored"], "what the screen reads now")
    bc.line("  age of the report shown on open", ages, f"{computed_here} of the looks computed in the UI process")
    print("  analyst, one report + differences, median s by window: "
          + ", ".join(f"{w} {c:.2f}" for w, c in sorted(cost.items())))
    if opens and bare["sql"]:
        print(f"  ratio open p50 / bare SQL p50: {statistics.median(opens) / statistics.median(bare['sql']):.2f}x; "
              f"recompute p50 / bare SQL p50: {statistics.median(recompute) / statistics.median(bare['sql']):.2f}x"
              if recompute else "")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default=str(Path(tempfile.gettempdir()) / "agentdeck-bench-console.db"),
                    help="bench/console.py's store (built with its defaults when missing)")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--size", default="160x45")
    ap.add_argument("--prewarm", action="store_true",
                    help="as the console runs by default: screens composed ahead of their first show, so the first "
                         "open is not a cold build (without it, the first open builds the screen)")
    ap.add_argument("--profile", default=None, help="write a cProfile of the UI thread here (slows it down)")
    args = ap.parse_args()
    bc = sibling("console")
    template = Path(args.db)
    if not template.exists():
        bc.build(template, args.events)
    work = Path(tempfile.mkdtemp(prefix="agentdeck-bench-canary-")) / "store.db"
    shutil.copy(template, work)
    from agentdeck.store.db import connect

    conn = connect(work)  # migrate the copy (a template built by older code lacks the canary tables)
    n_events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    n_tasks = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    conn.close()
    width, height = (int(x) for x in args.size.split("x"))
    print(f"store: {n_events:,} events, {n_tasks:,} tasks; fleet {args.rate:.0f} events/s; {args.size}")
    print(f"machine: {os.cpu_count()} CPUs, load average before {os.getloadavg()}")
    print(f"screens composed ahead (prewarm): {args.prewarm}")
    asyncio.run(run(bc, work, args.rate, args.rounds, (width, height), args.profile, args.prewarm))
    print(f"load average after {os.getloadavg()}")
    shutil.rmtree(work.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
