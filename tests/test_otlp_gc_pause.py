"""store/otlp.py ``gc_paused``: the collector is off while spans are decoded and claimed, and comes
back as it was -- also when pauses overlap across threads (the receiver decodes several requests at
once) -- and a pause that never ends still collects every GC_PAUSE_MAX seconds."""

from __future__ import annotations

import gc
import threading

from agentdeck.store import otlp


def test_overlapping_pauses_restore_the_collector_when_the_last_ends():
    assert gc.isenabled()
    first_in, second_in, release = threading.Event(), threading.Event(), threading.Event()

    def hold(entered: threading.Event) -> None:
        with otlp.gc_paused():
            entered.set()
            release.wait(10)

    a = threading.Thread(target=hold, args=(first_in,))
    a.start()
    assert first_in.wait(10)
    assert not gc.isenabled()
    with otlp.gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread's pause is still on
    b = threading.Thread(target=hold, args=(second_in,))
    b.start()
    assert second_in.wait(10)
    release.set()
    a.join(10)
    b.join(10)
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    try:
        with otlp.gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_pauses_that_always_overlap_still_collect(monkeypatch):
    collected = []
    monkeypatch.setattr(otlp, "GC_PAUSE_MAX", 0.0)
    monkeypatch.setattr(gc, "collect", lambda *a: collected.append(1) or 0)
    with otlp.gc_paused():
        with otlp.gc_paused():
            pass  # ends while the outer pause is on: overdue, so it collects
        assert collected and not gc.isenabled()
    assert gc.isenabled()


def test_an_exception_inside_a_pause_restores_the_collector():
    try:
        with otlp.gc_paused():
            raise ValueError("bad span")
    except ValueError:
        pass
    assert gc.isenabled()
