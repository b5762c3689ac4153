"""How long the bundled Top 30 takes, with -j 1 and -j 2, beside the bare cost of starting the agents.

    python bench/suite.py [--repeat 3]

Prints, for v1 and v2 of the sample agent: the wall time of
`agentdeck suite run sample_data/suite -j N` (median of --repeat runs,
whole process), beside a bare baseline in the same run: starting the agent's
interpreter 30 times (`python -c pass` x 30, one at a time), which is the
floor for 30 cases at -j 1. Load average printed; ratios are what to compare.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "sample_data" / "suite"


def wall(cmd: list[str]) -> tuple[float, int]:
    t = time.perf_counter()
    code = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    return time.perf_counter() - t, code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus; median of {args.repeat} runs")
    bare = statistics.median(
        sum(wall([sys.executable, "-c", "pass"])[0] for _ in range(30)) for _ in range(args.repeat))
    print(f"  bare: python -c pass x 30, one at a time        {bare:6.2f} s")
    agentdeck = str(Path(sys.executable).with_name("agentdeck"))
    for version in ("v1", "v2"):
        for jobs in (1, 2):
            times, codes = [], set()
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory() as out:
                    took, code = wall([agentdeck, "suite", "run", str(SUITE), "-j", str(jobs), "--out", out,
                                       "--agent-cmd", f"{sys.executable} -m agentdeck.sample_data.suite_agent --version {version}"])
                times.append(took)
                codes.add(code)
            median = statistics.median(times)
            print(f"  suite run, 30 cases, {version}, -j {jobs}              {median:6.2f} s  "
                  f"({median / bare:.1f}x bare, {median / 30 * 1000:.0f} ms a case; exit {sorted(codes)})")


if __name__ == "__main__":
    main()
