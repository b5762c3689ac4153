"""Peeking at a canary: false roll backs on identical versions, and time to catch a real regression.

The Canary screen recomputes its verdict on every batch. This simulation
does the same with the project's own verdict functions and default
settings (``store.canary.judge_all`` + ``overall``, no SQL in the way):

* A/A: canary and baseline drawn from the same distributions, the verdict
  computed after every batch of ``--batch`` tasks per cohort up to
  ``--tasks``; a run counts as a false roll back if *any* look said roll
  back. Printed for both methods beside alpha, and for the fixed method
  with a single look at the end (what a fixed-horizon test is valid for).
* A/B: the canary's action error rate raised (``--regression``), looked at
  the same way up to ``--max-tasks``; the median number of canary tasks
  until each method rolls back.

    python bench/canary_peeking.py [--runs 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import time
from dataclasses import dataclass

from agentdeck.store.canary import ROLLBACK, judge_all, metric_defs, overall
from agentdeck.store.contract import CanarySettings

# Per-task probabilities of the rate metrics' predicates, roughly the sample fleet's.
RATES = {"action_error_rate": 0.03, "violation_rate": 0.01, "escalation_rate": 0.20,
         "retry_rate": 0.05, "policy_denials": 0.02}


@dataclass
class Cohort:
    flags: dict[str, list[int]]
    values: dict[str, list[float]]


def cohort(rng: random.Random, n: int, action_error: float = RATES["action_error_rate"],
           latency_factor: float = 1.0) -> Cohort:
    rates = dict(RATES, action_error_rate=action_error)
    flags = {k: [1 if rng.random() < p else 0 for _ in range(n)] for k, p in rates.items()}
    values = {
        "latency": [latency_factor * rng.lognormvariate(math.log(1800), 0.45) for _ in range(n)],
        "tokens": [rng.lognormvariate(math.log(1200), 0.35) for _ in range(n)],
        "tool_calls": [float(min(12, max(0, round(rng.gauss(4, 1.5))))) for _ in range(n)],
        "cost": [rng.lognormvariate(math.log(0.009), 0.4) for _ in range(n)],
    }
    return Cohort(flags, values)


def verdict_at(b: Cohort, c: Cohort, n: int, method: str, settings: CanarySettings, defs) -> str:
    k = tuple({key: sum(side.flags[key][:n]) for key in RATES} for side in (b, c))
    vals = tuple({key: sorted(side.values[key][:n]) for key in side.values} for side in (b, c))
    results = judge_all(defs, settings, (n, n), k, vals, method)  # type: ignore[arg-type]
    return overall(results, settings, n, n, method)[0]


def first_rollback(b: Cohort, c: Cohort, looks: range, method: str, settings, defs) -> int | None:
    for n in looks:
        if verdict_at(b, c, n, method, settings, defs) == ROLLBACK:
            return n
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200, help="simulated canaries per case (default 200)")
    ap.add_argument("--batch", type=int, default=20, help="tasks per cohort between looks (default 20)")
    ap.add_argument("--tasks", type=int, default=600, help="A/A: tasks per cohort at the last look (default 600)")
    ap.add_argument("--max-tasks", type=int, default=3000, help="A/B: give up after this many (default 3000)")
    ap.add_argument("--regression", type=float, default=0.08,
                    help="A/B: the canary's action error rate (baseline 0.03; default 0.08)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    settings = CanarySettings()
    defs = metric_defs(settings)
    rng = random.Random(args.seed)
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} cpus; alpha {settings.alpha}; "
          f"{args.runs} runs; a look every {args.batch} tasks per cohort")
    started = time.perf_counter()

    looks = range(args.batch, args.tasks + 1, args.batch)
    false_rb = {"sequential": 0, "fixed": 0, "fixed, one look at the end": 0}
    for _ in range(args.runs):
        b, c = cohort(rng, args.tasks), cohort(rng, args.tasks)
        for method in ("sequential", "fixed"):
            if first_rollback(b, c, looks, method, settings, defs) is not None:
                false_rb[method] += 1
        if verdict_at(b, c, args.tasks, "fixed", settings, defs) == ROLLBACK:
            false_rb["fixed, one look at the end"] += 1
    print(f"\nA/A (identical versions), up to {args.tasks} tasks per cohort: share of runs ever rolled back")
    for name, count in false_rb.items():
        rate = count / args.runs
        ci = 1.96 * math.sqrt(rate * (1 - rate) / args.runs)
        mark = "  <= alpha" if rate <= settings.alpha else "  ABOVE alpha"
        print(f"  {name:28} {rate:6.1%}  (±{ci:.1%})   alpha {settings.alpha:.0%}{mark}")

    looks = range(args.batch, args.max_tasks + 1, args.batch)
    detect: dict[str, list[int | None]] = {"sequential": [], "fixed": []}
    for _ in range(max(20, args.runs // 4)):
        b = cohort(rng, args.max_tasks)
        c = cohort(rng, args.max_tasks, action_error=args.regression)
        for method in detect:
            detect[method].append(first_rollback(b, c, looks, method, settings, defs))
    print(f"\nA/B (canary action errors {args.regression:.0%} vs {RATES['action_error_rate']:.0%}), "
          f"{len(detect['sequential'])} runs: canary tasks until rolled back")
    for method, found in detect.items():
        caught = sorted(n for n in found if n is not None)
        median = statistics.median(caught) if caught else float("nan")
        print(f"  {method:28} median {median:6.0f}   caught in {len(caught)}/{len(found)} runs "
              f"within {args.max_tasks}")
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
