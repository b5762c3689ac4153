"""First paint of two checkouts, interleaved: this one and another (main), beside the floor, in the same rounds.

    .venv/bin/python bench/first_paint_ab.py --other /work/main [--rounds 12] [--db STORE]

Each round starts, as fresh processes and in turn: a bare Textual app with the garbage collector paused
as the console's is (the floor of bench/console.py, ``BARE_FRAME --gc-paused``), the console of the other
checkout (its own venv, its own copy of the store) and this checkout's console, each to its first frame
and its Tasks rows (``FIRST_PAINT``, the same script bench/console.py runs). Each child runs with .pyc (a
``PYTHONPYCACHEPREFIX`` of its own, one warm-up run each) and prints its own CPU time up to the frame.

Prints p50 / p95 of wall time and p50 of CPU for each, the CPU above the floor of the same rounds, and the
load average before and after: with other work on the machine the wall figures move by hundreds of ms
between runs; the CPU and the difference between two lines of the same rounds much less.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from siblings import sibling  # (bench/siblings.py: these scripts run by path)

HERE = Path(__file__).resolve().parent


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--other", required=True, help="the other checkout (its .venv is used), e.g. /work/main")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--db", default=str(Path(tempfile.gettempdir()) / "agentdeck-bench-console.db"),
                    help="the 1M-event store (copied: each checkout migrates and opens its own copy)")
    args = ap.parse_args()
    bc = sibling("console")
    work = Path(tempfile.mkdtemp(prefix="agentdeck-fp-ab-"))
    checkouts = {"other": Path(args.other).resolve(), "this": HERE.parent}
    pythons = {name: str(path / ".venv" / "bin" / "python") for name, path in checkouts.items()}
    stores = {}
    for name in checkouts:
        stores[name] = work / f"{name}.db"
        shutil.copy(args.db, stores[name])
    (work / "traces").mkdir()
    envs = {}
    for name in ("floor", *checkouts):
        env = dict(os.environ, PYTHONPYCACHEPREFIX=str(work / f"pycache-{name}"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        envs[name] = env

    def console(name: str) -> list[float]:
        t0 = time.time()
        out = subprocess.run([pythons[name], "-c", bc.FIRST_PAINT, str(t0), str(stores[name]), str(work / "traces")],
                             check=True, capture_output=True, text=True, cwd=checkouts[name], env=envs[name])
        return [float(v) for v in out.stdout.split()]

    def floor() -> list[float]:
        t0 = time.time()
        out = subprocess.run([pythons["this"], "-c", bc.BARE_FRAME, str(t0), str(stores["this"]), "--gc-paused"],
                             check=True, capture_output=True, text=True, env=envs["floor"])
        return [float(v) for v in out.stdout.split()]

    for name in checkouts:
        console(name)  # warm-up: .pyc written, the store migrated if it is older than the checkout
    floor()
    load = os.getloadavg()
    frames: dict[str, list[float]] = {name: [] for name in ("floor", *checkouts)}
    rows: dict[str, list[float]] = {name: [] for name in checkouts}
    cpu: dict[str, list[float]] = {name: [] for name in ("floor", *checkouts)}
    for _ in range(args.rounds):
        frame, cpu_s = floor()
        frames["floor"].append(frame)
        cpu["floor"].append(cpu_s)
        for name in checkouts:
            frame, row, cpu_s, _ = console(name)
            frames[name].append(frame)
            rows[name].append(row)
            cpu[name].append(cpu_s)
    after = os.getloadavg()
    ms = statistics.median
    print(f"load average before {load[0]:.2f} ({load[1]:.2f} 5 min), after {after[0]:.2f} ({after[1]:.2f}); "
          f"{args.rounds} rounds, {os.cpu_count()} CPUs")
    print(f"this: {checkouts['this']}  other: {checkouts['other']}")
    for name in ("floor", "other", "this"):
        label = {"floor": "floor: bare Textual app, GC paused", "other": "other: first frame",
                 "this": "this: first frame"}[name]
        line = (f"{label:38s} p50 {ms(frames[name]) * 1000:6.0f}  p95 {_p95(frames[name]) * 1000:6.0f} ms   "
                f"CPU p50 {ms(cpu[name]) * 1000:5.0f} ms")
        if name != "floor":
            line += (f" (+{(ms(cpu[name]) - ms(cpu['floor'])) * 1000:.0f} over the floor)   rows p50 "
                     f"{ms(rows[name]) * 1000:.0f} p95 {_p95(rows[name]) * 1000:.0f} ms")
        print(line)
    diffs = [(t - o) * 1000 for t, o in zip(frames["this"], frames["other"])]
    cpu_diffs = [(t - o) * 1000 for t, o in zip(cpu["this"], cpu["other"])]
    print(f"this - other, round by round: first frame p50 {ms(diffs):+.0f} ms (CPU {ms(cpu_diffs):+.0f} ms); "
          f"this first in {sum(d < 0 for d in diffs)} of {len(diffs)} rounds")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
