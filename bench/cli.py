"""How long the command line takes to answer ``--help``, beside starting Python itself.

Runs, alternately and ``--runs`` times each: ``python -c pass`` (the bare
baseline: the same interpreter and site-packages, which includes the
editable install's import hook), ``agentdeck --help`` and ``agentdeck ingest
--help``, each a fresh process as a person would run it. Prints the median
wall time of each, its ratio to the baseline and the load average before and
after. Target (issue 9): ``agentdeck --help`` <= 0.15 s.

Every command runs with compiled bytecode, as a user's install has it: this
machine sets PYTHONDONTWRITEBYTECODE=1, under which an editable install
compiles agentdeck's modules from source on every start, so the children get
a PYTHONPYCACHEPREFIX of their own (written by the warm-up run, not counted).
``--source`` runs them as this machine otherwise would.

    .venv/bin/python bench/cli.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
AGENTDECK = BIN / "agentdeck"
CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "agentdeck --help": [str(AGENTDECK), "--help"],
    "agentdeck ingest --help": [str(AGENTDECK), "ingest", "--help"],
}
TARGET = {"agentdeck --help": 0.15}


def wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (default 15)")
    parser.add_argument("--source", action="store_true", help="no .pyc (as with PYTHONDONTWRITEBYTECODE=1)")
    args = parser.parse_args()
    if not AGENTDECK.exists():
        print(f"no {AGENTDECK}: run from the project's venv (make setup)", file=sys.stderr)
        return 2
    cache = tempfile.mkdtemp(prefix="agentdeck-bench-cli-")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    if not args.source:
        env = dict(os.environ, PYTHONPYCACHEPREFIX=cache)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"machine: {os.cpu_count()} CPUs, load average before {os.getloadavg()[0]:.2f}; "
          f"{'from source' if args.source else '.pyc as installed'}")
    for cmd in CASES.values():  # warm the page cache (and write the .pyc); not counted
        wall(cmd, env)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):
        for name, cmd in CASES.items():  # interleaved, so load changes hit every case alike
            times[name].append(wall(cmd, env))
    shutil.rmtree(cache, ignore_errors=True)
    base = statistics.median(times["python -c pass"])
    print(f"{'command':<26}{'median':>9}{'min':>9}{'max':>9}{'x bare':>9}  target")
    for name, ts in times.items():
        median = statistics.median(ts)
        target = TARGET.get(name)
        verdict = "" if target is None else f"<= {target:.2f} s {'met' if median <= target else 'MISSED'}"
        print(f"{name:<26}{median:>8.3f}s{min(ts):>8.3f}s{max(ts):>8.3f}s{median / base:>8.1f}x  {verdict}")
    print(f"load average after {os.getloadavg()[0]:.2f} ({args.runs} runs each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
