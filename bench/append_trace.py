"""Where an appended task's time goes on the way to its row on the Tasks screen (issue 9, append -> visible).

    .venv/bin/python bench/append_trace.py --db COPY [--rate 200] [--seconds 20] [--warm 8]

The console on bench/console.py's store (pass a copy: the console's ingest writes to it), in follow
mode, while a fleet appends ``--rate`` events/s (bench/console.py's fleet and display probe). Timestamps
are taken along the path of every new task's row:

    written (fleet, just before the write)
    -> noticed   the UI was told of the commit that holds it (the store watcher's Ingested, posted at most
                 once per refresh_every: the throttle's wait is in this stage)
    -> handled   the app handled that notice (on_ingested, UI thread)
    -> asked     the Tasks screen asked for the window that holds it (DeckScreen.read)
    -> started   the read began on its worker thread
    -> read      the read's query returned
    -> given     its answer reached the UI thread (shown)
    -> on screen the first composed frame with the row (bench/console.py's Probe)

and each stage's p50/p95 over the tasks is printed, beside append -> visible itself. Give each run a fresh
copy: the fleet's task ids are the same every run, so on a copy a run already wrote to, its tasks are not new
rows and few are traced. Not a figure for
the README: an X-ray of append -> visible.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import shutil
import statistics
import tempfile
import threading
from collections import Counter
import time
from bisect import bisect_left
from datetime import datetime
from pathlib import Path

_spec = importlib.util.spec_from_file_location("bench_console", Path(__file__).resolve().parent / "console.py")
assert _spec is not None and _spec.loader is not None
_bc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bc)  # bench/console.py: its display probe, fleet and percentiles

_sspec = importlib.util.spec_from_file_location("bench_ui_sampler", Path(__file__).resolve().parent / "ui_sampler.py")
assert _sspec is not None and _sspec.loader is not None
_us = importlib.util.module_from_spec(_sspec)
_sspec.loader.exec_module(_us)  # bench/ui_sampler.py: its stack sampler

from agentdeck.console.app import AgentDeck  # noqa: E402
from agentdeck.console.screens.base import DeckScreen  # noqa: E402
from agentdeck.console.service.settings import for_tests  # noqa: E402
from agentdeck.console.widgets.task_table import TaskTable  # noqa: E402

NOTICED: list[float] = []  # when an Ingested message was made (the console heard of a commit)
HANDLED: list[float] = []  # when the app handled one (on_ingested)
READS: list[dict] = []  # one per Tasks window read: asked, started, read, given, drawn (times), ids
UPDATES: list[tuple[float, float]] = []  # Textual's screen updates (layout, compose a frame): start, end


def instrument() -> None:
    from agentdeck.console import ingest_service, messages

    real = messages.Ingested

    def ingested(*args, **kw):
        NOTICED.append(time.time())
        return real(*args, **kw)

    ingest_service.Ingested = ingested  # type: ignore[assignment,misc]
    inner_handled = AgentDeck.on_ingested

    def on_ingested(self, message) -> None:
        HANDLED.append(time.time())
        inner_handled(self, message)

    AgentDeck.on_ingested = on_ingested  # type: ignore[method-assign]
    inner_read = DeckScreen.read

    def read(self, group, job, show, on_error=None, **kw):
        if group != "tasks-page":
            return inner_read(self, group, job, show, on_error, **kw)
        rec: dict = {"asked": time.time()}

        def timed_job():
            rec["started"] = time.time()
            page = job()
            rec["read"] = time.time()
            rec["ids"] = {r["task_id"] for r in page.rows}
            return page

        def timed_show(page):
            rec["given"] = time.time()
            READS.append(rec)
            show(page)
            rec["drawn"] = time.time()

        return inner_read(self, group, timed_job, timed_show, on_error, **kw)

    DeckScreen.read = read  # type: ignore[method-assign]
    from textual.screen import Screen

    inner_update = Screen._on_timer_update

    def on_timer_update(self) -> None:
        t0 = time.time()
        inner_update(self)
        UPDATES.append((t0, time.time()))

    Screen._on_timer_update = on_timer_update  # type: ignore[method-assign]


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc), 0 if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def after(times: list[float], t: float) -> float | None:
    i = bisect_left(times, t)
    return times[i] if i < len(times) else None


async def run(db: Path, rate: float, seconds: float, warm: float, ingest: dict, sample: bool) -> None:
    instrument()
    live = Path(tempfile.mkdtemp(prefix="agentdeck-append-trace-"))
    from agentdeck.console.service.ingest_settings import IngestSettings

    app = AgentDeck(for_tests(db, [live], tick=1.0, follow=True, operator="bench", prewarm=True,
                              ingest=IngestSettings(**ingest)))
    async with app.run_test(size=(140, 40)) as pilot:
        probe = _bc.Probe(app)
        for _ in range(200):
            await pilot.pause(0.05)
            if app.screen.query_one(TaskTable).row_count:
                break
        writer = multiprocessing.Process(target=_bc.fleet, args=(str(live), rate, warm + seconds + 30, 1), daemon=True)
        writer.start()
        await asyncio.sleep(warm)  # start-up over (screens composed ahead, the ingest process up)
        t_from, cpu_from = time.time(), time.process_time()
        proc = app.ingest.supervisor.proc if app.ingest.supervisor is not None else None
        ingest_from = process_cpu(proc.pid) if proc is not None else 0.0
        sampler = _us.Sampler(threading.get_ident())
        if sample:
            sampler.start()
        probe.watch_live = True
        await asyncio.sleep(seconds)
        probe.watch_live = False
        sampler.stop = True
        cpu = (time.process_time() - cpu_from) / (time.time() - t_from)
        ingest_cpu = (process_cpu(proc.pid) - ingest_from) / (time.time() - t_from) if proc is not None else 0.0
        writer.terminate()
        load = os.getloadavg()
        print(f"at the end: screen {type(app.screen).__name__}, follow {getattr(app.screen, 'follow', '-')}; "
              f"{sum(1 for u in UPDATES if u[0] >= t_from)} frames composed while traced")
        app.exit()
    written: dict[str, float] = {}
    for path in live.glob("*.jsonl"):
        for raw in path.read_text().splitlines():
            e = json.loads(raw)
            if e["kind"] == "task_start":
                written[e["task_id"]] = datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp()
    shutil.rmtree(live, ignore_errors=True)
    reads = sorted((r for r in READS if "given" in r), key=lambda r: r["given"])
    stages: dict[str, list[float]] = {k: [] for k in (
        "written -> noticed", "noticed -> handled", "handled -> asked", "asked -> started", "started -> read",
        "read -> given", "given -> on screen", "  given -> rows set (show)", "  rows set -> frame begins",
        "  frame begins -> on screen", "written -> on screen")}
    starts = [u[0] for u in UPDATES]
    waited_on_read = 0
    for task, w in written.items():
        shown = probe.appeared.get(task)
        if w < t_from or shown is None:
            continue
        first = next((r for r in reads if task in r["ids"] and r["given"] <= shown + 1e-6), None)
        if first is None:
            continue
        noticed = after(NOTICED, w)
        if noticed is None or noticed > first["started"]:
            noticed = first["started"]  # the read began before the console heard of the commit
        handled = after(HANDLED, noticed) or first["asked"]
        handled = min(handled, first["asked"])
        waited_on_read += any(r["asked"] < first["asked"] and r["given"] > noticed for r in reads)
        for name, a, b in (("written -> noticed", w, noticed), ("noticed -> handled", noticed, handled),
                           ("handled -> asked", handled, first["asked"]), ("asked -> started", first["asked"], first["started"]),
                           ("started -> read", first["started"], first["read"]), ("read -> given", first["read"], first["given"]),
                           ("given -> on screen", first["given"], shown),
                           ("  given -> rows set (show)", first["given"], first["drawn"]),
                           ("  rows set -> frame begins", first["drawn"], min(after(starts, first["drawn"]) or shown, shown)),
                           ("  frame begins -> on screen", min(after(starts, first["drawn"]) or shown, shown), shown),
                           ("written -> on screen", w, shown)):
            stages[name].append(max(0.0, b - a))
    n = len(stages["written -> on screen"])
    print(f"ingest settings {ingest}; console CPU {cpu * 100:.0f}% of one core (all its threads"
          f"{', the sampler too' if sample else ''}); its ingest process {ingest_cpu * 100:.0f}%")
    print(f"load average {load}; {n} new task rows traced; {len(NOTICED)} commits noticed, "
          f"{len(HANDLED)} notices handled, {len(READS)} window reads answered in all")
    for name, values in stages.items():
        _bc.line(f"  {name}", values)
    if n:
        print(f"  rows whose read was asked while an older read was in flight past the notice: {waited_on_read} of {n}")
    if sample:
        busy = [st for t, st in sampler.samples if t >= t_from and st and not any(w in st[0] for w in _us.IDLE)]
        print(f"  UI thread busy in {len(busy)} of {sum(1 for t, _ in sampler.samples if t >= t_from)} samples; "
              "where (innermost agentdeck/textual frames):")
        for where, count in Counter(_us.ours(st) for st in busy).most_common(12):
            print(f"   {count:4}  {where}")
        deep = Counter(" < ".join(f for f in st if "agentdeck" in f or any(m in f for m in (
            "tasks.py", "base.py", "app.py", "task_table", "screen.py", "widget.py", "_compositor", "message_pump"))
                                 )[:200] for st in busy)
        for where, count in deep.most_common(12):
            print(f"   {count:4}  {where}")
    gaps = [b["asked"] - a["asked"] for a, b in zip(reads, reads[1:])]
    if gaps:
        print(f"  reads: asked every {statistics.median(gaps) * 1000:.0f} ms (median); "
              f"query p50 {statistics.median([r['read'] - r['started'] for r in reads]) * 1000:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", type=Path, required=True, help="a copy of bench/console.py's store")
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warm", type=float, default=8.0, help="seconds of fleet before tracing")
    ap.add_argument("--refresh-every", type=float, default=None, help="[ingest] refresh_every (the default if not given)")
    ap.add_argument("--sample", action="store_true", help="sample the UI thread's stack every 2 ms (costs CPU)")
    ap.add_argument("--batch-wait", type=float, default=None, help="[ingest] batch_wait (the default if not given)")
    args = ap.parse_args()
    ingest = {k: v for k, v in (("refresh_every", args.refresh_every), ("batch_wait", args.batch_wait)) if v is not None}
    print(f"load average {os.getloadavg()}")
    asyncio.run(run(args.db, args.rate, args.seconds, args.warm, ingest, args.sample))


if __name__ == "__main__":
    main()
