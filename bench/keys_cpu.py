"""The UI thread's CPU per key on the Tasks screen and its task detail (issue 9's key tail, an X-ray).

    .venv/bin/python bench/keys_cpu.py --db COPY [--rate 0] [--rounds 30] [--rest 0] [--profile enter] [--top 40]
                                       [--span module:Class.method ...] [--mark module:Class.method ...]

The console on a copy of bench/console.py's store (140x40, as bench/console.py runs it; pass a copy: the
console's ingest writes to it), optionally with the fleet appending ``--rate`` events/s. Presses k, enter,
escape, g, G ``--rounds`` times each, as bench/console.py does, and prints per key the wall time until the
frame showing its effect and the UI thread's CPU (``time.thread_time``) over the same span, p50 / p95.
``--rest S`` waits S more before each enter (the cursor resting on the row, as a person reads it).
``--profile KEY`` runs cProfile on the UI thread during that key's presses only and prints the top
functions by own and cumulative time. Not a README figure by itself (no fleet by default): it says where a
key's CPU goes, so a change can be judged by its CPU before the loaded wall-time bench.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import io
import multiprocessing
import pstats
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

_spec = importlib.util.spec_from_file_location("bench_console", Path(__file__).resolve().parent / "console.py")
assert _spec is not None and _spec.loader is not None
_bc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bc)  # bench/console.py: its display probe, fleet, key press and percentiles
Probe, fleet, pct, press = _bc.Probe, _bc.fleet, _bc.pct, _bc.press

from agentdeck.console.app import AgentDeck  # noqa: E402
from agentdeck.console.screens.task_detail import TaskDetailScreen  # noqa: E402
from agentdeck.console.service.settings import for_tests  # noqa: E402
from agentdeck.console.widgets.task_table import TaskTable  # noqa: E402


def _resolve(dotted: str) -> tuple[object, str, str, Callable]:
    """``module:Class.method`` -> (the object holding it, its name, ``Class.method``, the function now there)."""
    module, _, attr = dotted.partition(":")
    owner: object = importlib.import_module(module)
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, name, attr, getattr(owner, name)


SPANS: dict[str, list[float]] = {}  # --span: each wrapped function's UI-thread CPU, summed per key press
_in_key: list[str] = []


def wrap_span(dotted: str) -> None:
    """Wrap ``module:Class.method`` so its CPU (thread time) during a key press adds to that press's span."""
    owner, name, attr, inner = _resolve(dotted)
    depth = [0]

    def timed(*args, **kwargs):
        if not _in_key or depth[0]:
            return inner(*args, **kwargs)
        depth[0] += 1
        t = time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            depth[0] -= 1
            SPANS.setdefault(f"{_in_key[0]} {attr}", [0.0])[-1] += time.thread_time() - t

    setattr(owner, name, timed)


MARKS: dict[str, list[float]] = {}  # --mark: when a wrapped function was first called in a key press (since the key)
_key_at: list[float] = []


def wrap_mark(dotted: str) -> None:
    """Wrap ``module:Class.method`` so its first call in a key press notes the wall time since the key was sent."""
    owner, name, attr, inner = _resolve(dotted)

    def marked(*args, **kwargs):
        if _in_key and _key_at:
            values = MARKS.setdefault(f"{_in_key[0]} {attr}", [])
            if len(values) < _presses.get(_in_key[0], 0):
                values.append(time.perf_counter() - _key_at[0])
        return inner(*args, **kwargs)

    setattr(owner, name, marked)


_presses: dict[str, int] = {}


async def main(db: Path, rate: float, rounds: int, profile: str | None, top: int, rest: float = 0.0) -> None:
    live = Path(tempfile.mkdtemp(prefix="agentdeck-keys-cpu-"))
    app = AgentDeck(for_tests(db, [live], tick=1.0, follow=True, operator="bench", prewarm=True))
    started: list[bool] = []
    inner = app._prewarmed

    def prewarmed() -> None:
        inner()
        started.append(True)

    app._prewarmed = prewarmed  # type: ignore[method-assign]
    writer = None
    async with app.run_test(size=(140, 40)) as pilot:
        probe = Probe(app)
        while not started:
            await pilot.pause(0.05)
        screen = app.screen
        table = screen.query_one(TaskTable)
        if rate:
            writer = multiprocessing.Process(target=fleet, args=(str(live), rate, 600, 1), daemon=True)
            writer.start()
            await asyncio.sleep(5)
        wall: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        prof = cProfile.Profile()

        async def timed(key: str, done) -> None:
            for span in SPANS:
                if span.startswith(f"{key} "):
                    SPANS[span].append(0.0)
            _in_key[:] = [key]
            _key_at[:] = [time.perf_counter()]
            _presses[key] = _presses.get(key, 0) + 1
            for mark in MARKS:
                if mark.startswith(f"{key} ") and len(MARKS[mark]) < _presses[key] - 1:
                    MARKS[mark].append(float("nan"))
            c0 = time.thread_time()
            if profile == key:
                prof.enable()
            took = await press(app, probe, key, done)
            if profile == key:
                prof.disable()
            c1 = time.thread_time()
            _in_key.clear()
            if took is not None:
                wall.setdefault(key, []).append(took)
                cpu.setdefault(key, []).append(c1 - c0)
            await asyncio.sleep(0.1)

        def moved_from(before):
            return lambda: table.cursor_task != before

        await press(app, probe, "k", lambda: not screen.follow)
        for _ in range(rounds):
            await timed("k", moved_from(table.cursor_task))
            await timed("j", moved_from(table.cursor_task))
            await timed("k", moved_from(table.cursor_task))
            await asyncio.sleep(rest)  # (a person reads the row before opening it: its detail is read ahead)
            await timed("enter", lambda: isinstance(app.screen, TaskDetailScreen) and app.screen.found is not None
                        and app.screen.query_one("#detail-events").row_count > 0)
            await timed("escape", lambda: app.screen is screen)
        oldest = None
        for _ in range(rounds):
            await timed("g", lambda: not screen.follow and table.cursor_row == 0 and not table.more_older)
            oldest = table.cursor_task
            await timed("G", lambda: screen.follow and table.cursor_task != oldest
                        and table.cursor_task == (table.shown.keys or [None])[-1])
        if writer is not None:
            writer.terminate()
    shutil.rmtree(live, ignore_errors=True)
    print(f"UI thread per key (fleet {rate:.0f} events/s), ms: wall p50 / p95 · CPU p50 / p95")
    for key in wall:
        w = [v * 1000 for v in wall[key]]
        c = [v * 1000 for v in cpu[key]]
        print(f"  {key:7} n={len(w):3}  wall {statistics.median(w):6.1f} / {pct(w, 95):6.1f}"
              f"   cpu {statistics.median(c):6.1f} / {pct(c, 95):6.1f}   in order: "
              + " ".join(f"{v:.0f}/{u:.0f}" for v, u in zip(w[:12], c[:12])))
    for span, values in SPANS.items():
        ms = [v * 1000 for v in values if v]
        if ms:
            print(f"  {span:60} n={len(ms):3} cpu {statistics.median(ms):6.2f} / {pct(ms, 95):6.2f}")
    for mark, values in sorted(MARKS.items(), key=lambda kv: statistics.median([v for v in kv[1] if v == v] or [0])):
        ms = [v * 1000 for v in values if v == v]
        if ms:
            print(f"  at {mark:57} n={len(ms):3} wall {statistics.median(ms):6.2f} / {pct(ms, 95):6.2f} after the key")
    if profile:
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats(order).print_stats(top)
            print(out.getvalue())


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", type=Path, required=True, help="a copy of bench/console.py's store")
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--profile", default=None, help="a key: cProfile the UI thread during its presses")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--rest", type=float, default=0.0,
                    help="seconds more between the k before enter and enter (on top of the 0.1 after every key)")
    ap.add_argument("--span", action="append", default=[],
                    help="module:Class.method whose UI-thread CPU per key press to print (repeatable)")
    ap.add_argument("--mark", action="append", default=[],
                    help="module:Class.method: when it is first called in a key press, after the key (repeatable)")
    a = ap.parse_args()
    for dotted in a.mark:
        wrap_mark(dotted)
    for dotted in a.span:
        wrap_span(dotted)
    asyncio.run(main(a.db, a.rate, a.rounds, a.profile, a.top, a.rest))
