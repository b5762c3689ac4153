"""Ingest throughput against bare SQLite, and append-to-commit latency under a live fleet.

    python bench/ingest.py [--events 1000000] [--latency-seconds 10] [--rate 500]

1. Bulk: writes ``--events`` realistic trace events (the sample scenarios,
   every kind) over four files. Each round runs two whole processes on
   them, start to exit, each into a fresh store: the bare script (read the
   lines, ``json.loads`` each, ``executemany`` the rows (task_id, seq, kind,
   ts, source_id, payload) into the same events table, one transaction) and
   ``agentdeck ingest`` as an operator runs it (validation, tasks, actions,
   escalations, contract checks on). Prints lines/s, CPU per line (the
   process and its parse processes) and peak memory for both: the whole
   process tree's, counted as the peak of its summed PSS (``run_process``
   says why), which is the figure held to the target, and beside it the
   process's own peak RSS and its parse processes'. Then the ratio of
   rates (target >= 80%, peak memory <= 100 MiB) and the load average
   around each round; then the medians over ``--repeat`` rounds.
2. Latency: the sample fleet writes ``--rate`` events/s from another process
   while the tailer follows the folder (as ``agentdeck ingest --follow`` and
   the console do). Each event's ``ts`` is taken just before it is appended;
   a post-commit hook notes when each event became visible. Prints
   p50/p95/max of append-to-commit (target p95 <= 100 ms).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, UTC
from pathlib import Path


from agentdeck.store.db import connect
from agentdeck.store.tailer import Tailer

FILES = 4


def generate(folder: Path, total: int, seed: int = 1) -> int:
    """Write ``total`` events: a base set from the driver, repeated under fresh ids."""
    from agentdeck.sample_data.driver import TaskRun
    from agentdeck.sample_data.scenarios import random_spec

    rng = random.Random(seed)
    base: list[tuple[bytes, bytes]] = []  # (key, line)
    ts = datetime(2026, 11, 24, 9, tzinfo=UTC)
    i = 0
    want = min(total, 100_000)
    while len(base) < want:
        key = f"k{i:07d}"
        run = TaskRun(random_spec(rng), key)
        i += 1
        while True:
            event = run.step(ts)
            if event is None and run.waiting is not None:
                event = run.decide("approve", "bench", "ok", ts)
            if event is None:
                break
            base.append((key.encode(), json.dumps(event, separators=(",", ":")).encode() + b"\n"))
            ts += timedelta(milliseconds=3)
    files = [open(folder / f"agent-{n}.jsonl", "wb") for n in range(FILES)]
    written = 0
    copy = 0
    while written < total:
        for task_key, raw in base:
            if written == total:
                break
            if copy:
                raw = raw.replace(task_key, task_key + b"c%d" % copy)
            files[int(task_key[1:]) % FILES].write(raw)
            written += 1
        copy += 1
    for f in files:
        f.close()
    return written


BARE = r"""
import json, sys
from datetime import datetime
from pathlib import Path
from agentdeck.store.db import connect  # the same schema (events table and its index)

folder, db = Path(sys.argv[1]), sys.argv[2]
conn = connect(db)
conn.execute("BEGIN IMMEDIATE")
sql = "INSERT INTO events (task_id, seq, kind, ts, source_id, payload) VALUES (?, ?, ?, ?, ?, ?)"
n = 0
for source_id, path in enumerate(sorted(folder.glob("*.jsonl")), 1):
    rows = []
    with open(path, "rb") as f:
        for raw in f:
            e = json.loads(raw)
            rows.append((e["task_id"], e["seq"], e["kind"], datetime.fromisoformat(e["ts"]).timestamp(),
                         source_id, raw[:-1].decode()))
            if len(rows) == 10_000:
                conn.executemany(sql, rows)
                n += len(rows)
                rows.clear()
    conn.executemany(sql, rows)
    n += len(rows)
conn.execute("COMMIT")
print(n)
"""


def _tree(pid: int) -> list[int]:
    """``pid`` and its children (the parse processes)."""
    found = [pid]
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != pid:
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _sample(pid: int, hwm: dict[int, int]) -> int:
    """Note each process's high-water RSS (VmHWM) in ``hwm``; return the tree's summed PSS now."""
    pss = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm[p] = max(hwm.get(p, 0), int(line.split()[1]) * 1024)
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError, IndexError):
            continue
    return pss


def run_process(cmd: list[str]) -> dict:
    """Run ``cmd`` as a whole process: wall time, CPU (with its children), peak memory.

    How peak memory is counted (sampled from /proc every 50 ms):

    * ``tree``, the figure held to the target: the largest sum, at one
      moment, of the proportional set size (PSS) of the process and its
      parse processes, i.e. the memory the whole import occupies, each page
      shared by forked processes counted once (split between them). Summing
      each process's own peak RSS instead counts the pages the parse
      processes share with the process they were forked from two or three
      times, and adds peaks that happen at different moments.
    * ``maxrss``: the process's own high-water RSS (VmHWM, which exec resets,
      so the forking parent does not count); ``workers``: the largest
      high-water RSS among its parse processes (shared pages included).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    hwm: dict[int, int] = {}
    tree = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            tree[0] = max(tree[0], _sample(proc.pid, hwm))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}): {err.decode()[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    workers = [v for p, v in hwm.items() if p != proc.pid]
    return {"seconds": seconds, "cpu": cpu, "maxrss": hwm.get(proc.pid, 0), "workers": max(workers, default=0),
            "tree": tree[0], "out": out.decode()}


def _memory(tree: float, own: float, workers: float) -> str:
    parse = f", each parse process's {workers / 2**20:.0f} MiB" if workers else ""
    return f"peak memory {tree / 2**20:4.0f} MiB (whole tree, summed PSS; own RSS {own / 2**20:.0f} MiB{parse})"


def bulk_round(traces: Path, work: Path, n: int, args) -> dict[str, dict]:
    """One bare script and one ``agentdeck ingest`` of the same lines, each a whole process from start to exit."""
    for old in work.glob("*.db*"):
        old.unlink()
    load_before = os.getloadavg()[0]
    bare = run_process([sys.executable, "-c", BARE, str(traces), str(work / "bare.db")])
    assert int(bare["out"].split()[-1]) == n, bare["out"]
    cmd = [sys.executable, "-m", "agentdeck.console.cli", "ingest", "--quiet", "--db", str(work / "ingest.db"),
           str(traces)]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    ingest = run_process(cmd)
    assert ingest["out"].startswith(f"{n} events"), ingest["out"]
    conn = connect(work / "ingest.db")
    violations = conn.execute("SELECT count(*) FROM violations").fetchone()[0]
    conn.close()
    load_after = os.getloadavg()[0]
    for label, r in (("bare json.loads + executemany", bare), ("agentdeck ingest (contracts on)", ingest)):
        print(f"{label:<32}: {n / r['seconds']:9,.0f} lines/s  wall {r['seconds']:6.2f} s  cpu {r['cpu'] / n * 1e6:5.1f} us/line"
              f"  {_memory(r['tree'], r['maxrss'], r['workers'])}")
    ratio = bare["seconds"] / ingest["seconds"]
    print(f"ratio: agentdeck ingest at {ratio:.0%} of bare's rate (target >= 80%), {violations:,} violations derived;"
          f" load average {load_before:.2f} before, {load_after:.2f} after")
    return {"bare": bare, "ingest": ingest, "ratio": {"value": ratio}, "load": {"value": (load_before + load_after) / 2}}


def _fleet(folder: str, rate: float, seconds: float) -> None:
    from agentdeck.sample_data.fleet import Fleet

    # Enough concurrent tasks that those waiting on a human never stall the rate.
    Fleet(Path(folder), rate=rate, concurrency=400, seed=7).run(duration=seconds)


def latency(folder: Path, db: Path, rate: float, seconds: float) -> list[float]:
    conn = connect(db)
    samples: list[float] = []
    last_id = [0]

    def note_commit(c, result) -> None:
        committed = time.time()
        rows = c.execute("SELECT id, ts FROM events WHERE id > ?", (last_id[0],)).fetchall()
        if rows:
            last_id[0] = rows[-1][0]
            samples.extend(committed - ts for _, ts in rows)

    tailer = Tailer(conn, [folder], post_commit=[note_commit])
    stop = threading.Event()
    follower = threading.Thread(target=tailer.run, args=(stop,), daemon=True)
    follower.start()
    fleet = multiprocessing.get_context("spawn").Process(target=_fleet, args=(str(folder), rate, seconds))
    fleet.start()
    fleet.join()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # let the last appends land
        written = sum(p.read_bytes().count(b"\n") for p in folder.glob("*.jsonl"))
        if len(samples) >= written:
            break
        time.sleep(0.05)
    stop.set()
    follower.join(5)
    conn.close()
    return samples


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=500.0, help="fleet events/s for the latency run")
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=None, help="parse processes (default: as agentdeck ingest)")
    ap.add_argument("--repeat", type=int, default=3, help="bulk rounds (bare, then agentdeck ingest); medians printed")
    ap.add_argument("--skip-bulk", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="agentdeck-bench-"))
    try:
        if not args.skip_bulk:
            traces = work / "traces"
            traces.mkdir()
            t = time.perf_counter()
            # In another process, so this one stays small (the runs are forked from it).
            with multiprocessing.get_context("spawn").Pool(1) as gen:
                n = gen.apply(generate, (traces, args.events))
            size = sum(p.stat().st_size for p in traces.iterdir())
            print(f"generated {n:,} events ({size / 1e6:.0f} MB, {FILES} files) in {time.perf_counter() - t:.1f} s")
            rounds = []
            for round_ in range(1, args.repeat + 1):
                print(f"-- round {round_} of {args.repeat}")
                rounds.append(bulk_round(traces, work, n, args))
            print(f"-- medians over {len(rounds)} rounds ({n:,} lines)")
            for key, label in (("bare", "bare json.loads + executemany"), ("ingest", "agentdeck ingest (contracts on)")):
                secs = statistics.median(r[key]["seconds"] for r in rounds)
                print(f"{label:<32}: {n / secs:9,.0f} lines/s  cpu {statistics.median(r[key]['cpu'] for r in rounds) / n * 1e6:5.1f} us/line"
                      f"  {_memory(*(statistics.median(r[key][m] for r in rounds) for m in ('tree', 'maxrss', 'workers')))}")
            ratios = [r["ratio"]["value"] for r in rounds]
            print(f"ratio: median {statistics.median(ratios):.0%} of bare (min {min(ratios):.0%}, max {max(ratios):.0%});"
                  f" target >= 80%, peak memory target <= 100 MiB;"
                  f" load average {min(r['load']['value'] for r in rounds):.2f}-{max(r['load']['value'] for r in rounds):.2f}")
        if not args.skip_latency:
            live = work / "live"
            live.mkdir()
            samples = latency(live, work / "live.db", args.rate, args.latency_seconds)
            ms = [s * 1000 for s in samples]
            print(f"append-to-commit : {len(ms):,} events at {args.rate:.0f}/s for {args.latency_seconds:.0f} s: "
                  f"p50 {statistics.median(ms):.1f} ms, p95 {pct(ms, 95):.1f} ms, max {max(ms):.1f} ms "
                  f"(target p95 <= 100 ms)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
