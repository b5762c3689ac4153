"""When Python's cyclic garbage collector runs: the one policy, for the console and every ingest path.

What agentdeck allocates in bulk (events, attribute dicts, rows, Textual's
strips and styles) makes no reference cycles, so the collector frees almost
nothing; what it costs is walking live objects again and again. It is not
turned off for good -- some cycles exist (tracebacks, asyncio) -- it runs
less often, in three phases; nothing else sets it (keep it that way):

1. Start-up, until the console's first frame: ``pause_for_start_up`` /
   ``resume_after_start_up``. Importing Textual, pydantic and the console
   allocates some 70,000 objects that live as long as the process; with
   the default thresholds the collector traversed them about 130 young, 11
   middle and one full time on the way to the first frame, 40-50 ms of CPU
   before anything is on screen (gc.callbacks, 1M store, .pyc present;
   bench/console.py --first-paint-only). Until then it runs rarely
   (START_THRESHOLDS, still bounded), then as before. The app module pauses
   it as its first import, `agentdeck console` before it parses anything;
   the app resumes it after the first frame (or on unmount if none came),
   freezing what start-up made (gc.freeze) until phase 2: the first
   collections after the pause walked all of it, ~80 ms of CPU.

2. The console's long run, once its screens are composed ahead:
   ``settle_for_long_run``. Profiled under a live fleet the collector ran
   about 200 times a second (every reload and frame allocates thousands of
   short-lived objects); young collections took 5-15 ms and full ones
   80-200 ms, and the slowest key presses were those a collection landed
   on. What exists by then (widgets, styles, modules: most of the heap)
   lives as long as the console, so it is frozen out of every later
   collection (gc.freeze) and young collections run less often
   (LONG_RUN_THRESHOLDS, still bounded).

3. An ingest batch, in any process (tailer, parse processes, the OTLP
   receiver): ``paused``. A batch makes tens of thousands of small objects
   and no cycles; with the collector on, their allocations triggered
   collections that walked every young object again and again (and, as the
   heap grew, all of it): profiled, that cost more than a batch's SQL
   (bench/ingest.py). Off for the batch, then back on; one counter for
   every path, so overlapping pauses in one process (a console following
   files while its receiver takes requests) cannot turn it back on under
   each other, and pauses that always overlap still collect every
   PAUSE_MAX seconds.

Only the standard library here: the app imports this before anything heavy.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

# --- 1. start-up ---------------------------------------------------------------------------------

START_THRESHOLDS = (100_000, 50, 100)  # still bounded: start-up garbage is collected now and then

_saved: tuple[int, int, int] | None = None


def pause_for_start_up() -> None:
    """Collect rarely until ``resume_after_start_up`` (once; a second call keeps the first saved thresholds)."""
    global _saved
    if _saved is None:
        current = gc.get_threshold()
        _saved = (current[0], current[1], current[2]) if len(current) >= 3 else (700, 10, 10)
        gc.set_threshold(*START_THRESHOLDS)


def resume_after_start_up() -> None:
    """Back to the thresholds from before the pause (nothing to do if not paused, or if set since), with what
    start-up made frozen out of the collections that follow (until ``settle_for_long_run``).

    What start-up allocated (modules, classes, the first screen's widgets and styles: some 80,000 objects)
    lives as long as the process, and most of it was still in the young generation: the first collections
    after the pause walked all of it, one young and one middle collection of ~40 ms of CPU each in the half
    second after the first rows (gc.callbacks, 1M store, load ~3), while the operator's first keys came in.
    Frozen, they are skipped; ``settle_for_long_run`` unfreezes them for one full collection, so start-up's
    few garbage cycles are freed then, not kept.
    """
    global _saved
    if _saved is not None:
        if gc.get_threshold() == START_THRESHOLDS:
            gc.freeze()
            gc.set_threshold(*_saved)
        _saved = None


def start_up_paused() -> bool:
    return _saved is not None


# --- 2. the console's long run -------------------------------------------------------------------

LONG_RUN_THRESHOLDS = (10_000, 10, 10)  # Python's default: (700, 10, 10)


def settle_for_long_run() -> None:
    """Start-up is over (screens composed ahead): collect once, freeze what exists, collect young objects less often.

    What ``resume_after_start_up`` froze is unfrozen for this collection (its garbage is freed here)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*LONG_RUN_THRESHOLDS)


# --- 3. ingest batches ---------------------------------------------------------------------------

_lock = threading.Lock()
_pauses = 0
_was_enabled = False
_since = 0.0  # when the collector last ran (or the pauses began)
PAUSE_MAX = 5.0  # seconds: overlapping pauses (a receiver always busy) still collect this often


@contextmanager
def paused() -> Iterator[None]:
    """Pause the collector for the block. Safe across threads: the collector comes back on
    when the last pause ends, if it was on before the first; pauses that always overlap still
    get a full collection every PAUSE_MAX seconds, so garbage cannot pile up meanwhile.

    Let the batch's objects go before the block ends (do the work in a function called
    inside it): objects still alive when the collector comes back are walked by its next
    collection, which is most of what pausing saves.
    """
    global _pauses, _was_enabled, _since
    with _lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            _since = time.monotonic()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        collect = False
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()
            elif _was_enabled and time.monotonic() - _since > PAUSE_MAX:
                _since, collect = time.monotonic(), True
        if collect:
            gc.collect()
