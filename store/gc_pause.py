"""The cyclic garbage collector off while a batch is decoded, mapped and committed.

A batch makes tens of thousands of small objects (events, attribute dicts,
span items, rows) and no cycles. With the collector on, those allocations
trigger collections that walk every young object again and again (and,
as the heap grows, all of it): profiled, that cost more than a batch's SQL.
Every ingest path (the tailer, parse processes, the OTLP receiver) pauses it
through ``paused`` -- one mechanism, so overlapping pauses in one process
(a console following files while its receiver takes requests) cannot turn
the collector back on under each other.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

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
