"""Benchmark: drawing the Escalations list (console/widgets/escalation_table.py), beside the read behind it.

    .venv/bin/python bench/escalation_table.py [--escalations 20000] [--pending 500] [--repeat 8]

A store of ``--escalations`` escalations, ``--pending`` of them pending (bench/escalations.py's ``build``);
the console headless at 140x40 and 80x24. For each, the time to draw the list's lines (what the compositor asks
of the table in a frame, Textual's per-widget line cache emptied as a changed frame has it):

1. after a tick: the queue read back with the clock a second on (every age and time left moves);
2. the first frame of the decided list after ``h`` (every cell new);
3. after ``j`` (the cursor moved a row);

beside the bare read of the same run (``DeckService.escalation_queue``, what the screen reads on a tick, no UI).
Before the list drew its own rows it was a DataTable, which rendered every cell in view through Rich after any
change (figures before and after: bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import tempfile
import time
from pathlib import Path

from textual.geometry import Region

from agentdeck.console.app import AgentDeck
from agentdeck.console.service.settings import for_tests
from agentdeck.console.widgets.escalation_table import EscalationTable


def build(path: Path, total: int, pending: int) -> None:
    spec = importlib.util.spec_from_file_location("bench_escalations", Path(__file__).with_name("escalations.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build(path, total, pending)


def line(label: str, values: list[float], baseline: str = "") -> None:
    print(f"  {label:<40} n={len(values):3}  median {statistics.median(values):7.2f}  max {max(values):7.2f} ms  {baseline}")


async def run(db: Path, size: tuple[int, int], repeat: int) -> None:
    now = [time.time()]
    app = AgentDeck(for_tests(db, [], tick=0, follow=False, operator="bench"), clock=lambda: now[0])
    async with app.run_test(size=size) as pilot:

        async def settle() -> None:
            for _ in range(3):
                await app.settled()
                await pilot.pause()

        await pilot.press("2")
        await settle()
        screen = app.screen
        table = screen.query_one(EscalationTable)
        full = Region(0, 0, table.region.width, table.region.height)

        def draw() -> float:
            table._styles_cache.clear()  # (as after a change: Textual's line cache for the widget emptied)
            t0 = time.perf_counter()
            table.render_lines(full)
            return (time.perf_counter() - t0) * 1000

        # The frame after the rows are shown is drawn here, as the screen shows them (before Textual's own frame
        # would draw them: then it is that frame's work that is timed).
        armed: list[list[float]] = []
        shown = screen._show_rows

        def show_rows(*a, **kw) -> None:
            shown(*a, **kw)
            if armed:
                armed.pop().append(draw())

        screen._show_rows = show_rows  # type: ignore[method-assign]
        tick: list[float] = []
        decided: list[float] = []
        moved: list[float] = []
        bare: list[float] = []
        for _ in range(repeat):
            now[0] += 1
            armed.append(tick)
            screen.reload()
            await settle()
            t0 = time.perf_counter()
            app.deck.escalation_queue(False)
            bare.append((time.perf_counter() - t0) * 1000)
        for _ in range(repeat):
            armed.append(decided)
            await pilot.press("h")  # to the decided list: every cell new
            await settle()
            table.action_cursor_down()  # j
            moved.append(draw())
            await pilot.press("h")
            await settle()
        print(f"{size[0]}x{size[1]}: {table.row_count} pending rows, {table.region.height - 1} in view "
              f"(load average {os.getloadavg()[0]:.1f})")
        line("after a tick (ages and time left move)", tick)
        line("first frame of the decided list (h)", decided)
        line("after j", moved)
        line("bare: the queue read (no UI)", bare)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--escalations", type=int, default=20_000)
    ap.add_argument("--pending", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentdeck-bench-esc-table-") as tmp:
        db = Path(tmp) / "store.db"
        build(db, args.escalations, args.pending)
        for size in ((140, 40), (80, 24)):
            asyncio.run(run(db, size, args.repeat))


if __name__ == "__main__":
    main()
