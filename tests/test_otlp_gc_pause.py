"""store/gc_pause.py ``paused``: the collector is off while a batch is decoded and committed, and comes
back as it was -- also when pauses overlap across threads (the receiver decodes several requests at
once) -- and a pause that never ends still collects every GC_PAUSE_MAX seconds."""

from __future__ import annotations

import gc
import json
import threading

from agentdeck.store import gc_pause


def test_overlapping_pauses_restore_the_collector_when_the_last_ends():
    assert gc.isenabled()
    first_in, second_in, release = threading.Event(), threading.Event(), threading.Event()

    def hold(entered: threading.Event) -> None:
        with gc_pause.paused():
            entered.set()
            release.wait(10)

    a = threading.Thread(target=hold, args=(first_in,))
    a.start()
    assert first_in.wait(10)
    assert not gc.isenabled()
    with gc_pause.paused():
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
        with gc_pause.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_pauses_that_always_overlap_still_collect(monkeypatch):
    collected = []

    def collect(*_args) -> int:
        collected.append(1)
        return 0

    monkeypatch.setattr(gc_pause, "PAUSE_MAX", 0.0)
    monkeypatch.setattr(gc, "collect", collect)
    with gc_pause.paused():
        with gc_pause.paused():
            pass  # ends while the outer pause is on: overdue, so it collects
        assert collected and not gc.isenabled()
    assert gc.isenabled()


def test_an_exception_inside_a_pause_restores_the_collector():
    try:
        with gc_pause.paused():
            raise ValueError("bad span")
    except ValueError:
        pass
    assert gc.isenabled()


def test_the_tailer_commits_its_batch_with_the_collector_paused_and_restores_it(tmp_path):
    from agentdeck.store.db import connect
    from agentdeck.store.tailer import Tailer

    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "0000000000000001", "name": "chat",
            "startTimeUnixNano": "1795600000000000000", "endTimeUnixNano": "1795600000250000000",
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}]}
    (tmp_path / "otel.json").write_text(
        json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}) + "\n")
    seen = []
    conn = connect(tmp_path / "store.db")
    Tailer(conn, [tmp_path], post_commit=[lambda _conn, _result: seen.append(gc.isenabled())]).poll()
    assert seen == [False]  # the batch's objects are not walked while it is committed (one pause, not two)
    assert gc.isenabled()
