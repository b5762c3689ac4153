"""A stop signal ends the process's loop, even when it lands while the main thread holds the stop Event's lock."""

from __future__ import annotations

import os
import signal
import threading

from agentdeck.store.processes import stop_on_signals


def test_a_signal_landing_while_the_main_thread_holds_the_events_lock_still_stops():
    # The main thread spends its time in stop.wait(), which holds the Event's lock around its checks; a handler
    # calling stop.set() there took the same non-reentrant lock on the same thread and hung the process for good
    # (an ingest process seen so on SIGTERM). The signal arrives here exactly inside that lock.
    stop = threading.Event()
    before = signal.getsignal(signal.SIGUSR1)
    try:
        stop_on_signals(stop, (signal.SIGUSR1,))
        with stop._cond:  # type: ignore[attr-defined]  # (as inside stop.wait())
            os.kill(os.getpid(), signal.SIGUSR1)  # its handler runs on this thread, before the next line
            assert not stop.is_set()
        assert stop.wait(10)
    finally:
        signal.signal(signal.SIGUSR1, before)
