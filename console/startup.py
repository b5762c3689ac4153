"""The console's start-up: the cyclic garbage collector waits until the first frame is drawn.

Importing Textual, pydantic and the console allocates some 70,000 objects
that live as long as the process (modules, classes, styles); Python's cyclic
collector, run every 700 allocations, traversed them again and again on the
way to the first frame: about 130 young, 11 middle and one full collection,
40-50 ms of CPU before anything is on screen (measured with gc.callbacks, 1M
store, .pyc present). Until the first frame it runs rarely instead
(START_THRESHOLDS), then as before (``resume_gc``; the app settles it for the
long run after prewarm: app._settle_garbage_collector).

Importing this module pauses it (the console's entry points import it before
anything heavy); nothing else here imports more than ``gc``.
"""

from __future__ import annotations

import gc

START_THRESHOLDS = (100_000, 50, 100)  # still bounded: start-up garbage is collected now and then

_saved: tuple[int, int, int] | None = None


def pause_gc() -> None:
    """Collect rarely until ``resume_gc`` (once; a second call keeps the first saved thresholds)."""
    global _saved
    if _saved is None:
        current = gc.get_threshold()
        _saved = (current[0], current[1], current[2]) if len(current) >= 3 else (700, 10, 10)
        gc.set_threshold(*START_THRESHOLDS)


def resume_gc() -> None:
    """Back to the thresholds from before ``pause_gc`` (nothing to do if not paused, or if set since)."""
    global _saved
    if _saved is not None:
        if gc.get_threshold() == START_THRESHOLDS:
            gc.set_threshold(*_saved)
        _saved = None


def gc_paused() -> bool:
    return _saved is not None


pause_gc()
