"""The tailer's guarantees, on real files and a real SQLite store.

Every test writes trace lines, ingests them and checks that each line is in
the store exactly once: partial lines, restarts, rename rotation,
copytruncate, inode reuse, two ingesters on one store, vanished and
unreadable files.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from agentdeck.store.db import connect
from agentdeck.store.tailer import Tailer


def line(task: str, seq: int, **extra) -> bytes:
    event = {"v": 1, "kind": "plan", "ts": "2026-11-24T09:00:00Z", "task_id": task, "seq": seq,
             "summary": f"step {seq} of {task}"}
    event.update(extra)
    return json.dumps(event).encode() + b"\n"


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def write_events(path: Path, task: str, seqs) -> set[tuple[str, int]]:
    append(path, b"".join(line(task, s) for s in seqs))
    return {(task, s) for s in seqs}


def stored(db: Path) -> list[tuple[str, int]]:
    conn = connect(db)
    try:
        return [tuple(r) for r in conn.execute("SELECT task_id, seq FROM events ORDER BY task_id, seq")]
    finally:
        conn.close()


def assert_exactly_once(db: Path, written: set[tuple[str, int]]) -> None:
    rows = stored(db)
    assert len(rows) == len(set(rows)), "an event was stored twice"
    assert set(rows) == written


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def traces(tmp_path) -> Path:
    folder = tmp_path / "traces"
    folder.mkdir()
    return folder


def tail(db: Path, *paths: Path, **kw) -> Tailer:
    return Tailer(connect(db), list(paths), post_commit=[], **kw)


def test_partial_last_line_waits_for_its_newline(db, traces):
    f = traces / "a.jsonl"
    full = line("t", 0) + line("t", 1)
    append(f, full[:-10])  # the second line without its end
    t = tail(db, traces)
    assert t.poll().events == 1
    assert stored(db) == [("t", 0)]
    append(f, full[-10:])
    assert t.poll().events == 1
    assert_exactly_once(db, {("t", 0), ("t", 1)})


def test_restart_resumes_from_the_committed_offset(db, traces):
    f = traces / "a.jsonl"
    written = write_events(f, "t", range(5))
    tail(db, traces).poll()
    written |= write_events(f, "t", range(5, 9))
    assert tail(db, traces).poll().events == 4  # a new tailer, like a new process
    assert tail(db, traces).poll().events == 0
    assert_exactly_once(db, written)


def test_small_batches_commit_the_same_events(db, traces):
    f = traces / "a.jsonl"
    written = write_events(f, "t", range(200))
    stats = tail(db, traces, batch_bytes=500).poll()
    assert stats.events == 200
    assert_exactly_once(db, written)


def test_rename_rotation_reads_the_old_tail_and_the_new_file(db, traces):
    f = traces / "app.jsonl"
    t = tail(db, traces)
    written = write_events(f, "a", range(3))
    t.poll()
    written |= write_events(f, "a", range(3, 6))  # not yet read when the file is rotated
    f.rename(traces / "app.jsonl.1")
    written |= write_events(f, "b", range(4))
    t.poll()
    written |= write_events(traces / "app.jsonl.1", "a", [6])  # a writer still holding the old file
    written |= write_events(f, "b", [4])
    t.poll()
    assert_exactly_once(db, written)
    t2 = tail(db, traces)  # a restart sees nothing new
    assert t2.poll().events == 0


def test_rename_rotation_of_a_single_file_path(db, traces):
    """Given only app.jsonl, the rotated file's unread tail is still read, and siblings are not."""
    f = traces / "app.jsonl"
    write_events(traces / "other.jsonl", "other", range(3))
    t = tail(db, f)
    written = write_events(f, "a", range(3))
    t.poll()
    written |= write_events(f, "a", range(3, 5))
    f.rename(traces / "app.jsonl.1")
    written |= write_events(f, "b", range(2))
    t.poll()
    assert_exactly_once(db, written)


def test_rotation_of_a_single_file_path_across_a_restart(db, traces):
    f = traces / "app.jsonl"
    written = write_events(f, "a", range(3))
    tail(db, f).poll()
    written |= write_events(f, "a", range(3, 5))
    f.rename(traces / "app.jsonl.1")  # rotated while no ingester ran
    written |= write_events(f, "b", range(2))
    tail(db, f).poll()
    assert_exactly_once(db, written)


@pytest.mark.parametrize("copy_name", ["app.jsonl.1", "app-20261124.jsonl"])
def test_copytruncate_reads_the_lines_only_the_copy_holds(db, traces, copy_name):
    f = traces / "app.jsonl"
    t = tail(db, traces)
    written = write_events(f, "a", range(5))
    t.poll()
    written |= write_events(f, "a", range(5, 8))  # written after our last read
    shutil.copyfile(f, traces / copy_name)
    with open(f, "r+b") as fh:
        fh.truncate(0)
    written |= write_events(f, "b", range(3))
    t.poll()
    assert_exactly_once(db, written)
    written |= write_events(f, "b", range(3, 5))
    t.poll()
    assert tail(db, traces).poll().events == 0
    assert_exactly_once(db, written)


def test_copytruncate_truncated_to_empty_then_refilled(db, traces):
    f = traces / "app.jsonl"
    t = tail(db, traces)
    written = write_events(f, "a", range(5))
    t.poll()
    shutil.copyfile(f, traces / "app.jsonl.1")
    with open(f, "r+b") as fh:
        fh.truncate(0)
    t.poll()  # sees an empty file
    written |= write_events(f, "b", range(2))
    t.poll()
    assert_exactly_once(db, written)


def test_a_copy_seen_before_the_truncation_is_not_read_twice(db, traces):
    """logrotate copied app.jsonl to a matching name; we poll before it truncates."""
    f = traces / "app.jsonl"
    t = tail(db, traces)
    written = write_events(f, "a", range(5))
    t.poll()
    written |= write_events(f, "a", range(5, 7))
    shutil.copyfile(f, traces / "app-20261124.jsonl")
    t.poll()
    with open(f, "r+b") as fh:
        fh.truncate(0)
    written |= write_events(f, "b", range(2))
    t.poll()
    assert_exactly_once(db, written)


def test_an_old_copy_is_not_read_again(db, traces):
    f = traces / "app.jsonl"
    written = write_events(f, "a", range(5))
    shutil.copyfile(f, traces / "backup.jsonl.bak")
    t = tail(db, traces)
    written |= write_events(f, "a", range(5, 9))
    t.poll()
    shutil.copyfile(traces / "backup.jsonl.bak", traces / "backup.jsonl")  # a shorter, older copy
    assert t.poll().events == 0
    assert_exactly_once(db, written)


def test_file_rewritten_in_place_is_a_new_stream(db, traces):
    f = traces / "app.jsonl"
    t = tail(db, traces)
    write_events(f, "a", range(2))
    t.poll()
    f.write_bytes(line("b", 0) + line("b", 1) + line("b", 2))  # same inode, new content, longer
    t.poll()
    assert_exactly_once(db, {("a", 0), ("a", 1), ("b", 0), ("b", 1), ("b", 2)})


def test_reused_inode_is_told_apart_by_fingerprint(db, traces):
    """A new file that got a deleted file's inode is read from its start."""
    old = traces / "old.jsonl"
    written = write_events(old, "a", range(4))
    t = tail(db, traces)
    t.poll()
    new = traces / "new.jsonl"
    written |= write_events(new, "b", range(6))
    # Make the store believe the new file's inode was the old file's, as the
    # filesystem does when it reuses a freed inode.
    st = new.stat()
    t.conn.execute("UPDATE sources SET inode = ?, dev = ? WHERE path = ?", (st.st_ino, st.st_dev, str(old)))
    old.unlink()
    t2 = tail(db, traces)
    t2.poll()
    assert_exactly_once(db, written)


def test_two_tailers_on_one_store_never_commit_a_line_twice(db, traces):
    f = traces / "a.jsonl"
    written = write_events(f, "t", range(3))
    a, b = tail(db, traces), tail(db, traces)
    a.poll()
    b.poll()  # finds a's source and its offset
    written |= write_events(f, "t", range(3, 6))
    a.poll()
    assert b.poll().events == 0  # its offset was stale: OffsetMoved, then it catches up
    written |= write_events(f, "t", range(6, 8))
    assert b.poll().events == 2
    assert a.poll().events == 0
    assert_exactly_once(db, written)


def test_two_tailers_racing_in_threads(db, traces):
    written: set = set()
    for i in range(4):
        written |= write_events(traces / f"f{i}.jsonl", f"t{i}", range(300))
    tailers = [tail(db, traces, batch_bytes=2000) for _ in range(2)]
    stop = threading.Event()

    def writer():
        for s in range(300, 400):
            for i in range(4):
                written.update(write_events(traces / f"f{i}.jsonl", f"t{i}", [s]))
        stop.set()

    def reader(t: Tailer):
        while not stop.is_set():
            t.poll()
        t.poll()

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(t,)) for t in tailers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    tailers[0].poll()
    assert_exactly_once(db, written)


def test_missing_path_is_a_problem_not_an_error(db, traces, tmp_path):
    t = tail(db, tmp_path / "nowhere", traces)
    write_events(traces / "a.jsonl", "t", range(2))
    assert t.poll().events == 2
    assert "no such file" in t.problems[str(tmp_path / "nowhere")]
    (tmp_path / "nowhere").mkdir()
    write_events(tmp_path / "nowhere" / "b.jsonl", "u", range(1))
    assert t.poll().events == 1
    assert t.problems == {}


def test_file_deleted_between_polls(db, traces):
    f = traces / "a.jsonl"
    written = write_events(f, "t", range(2))
    t = tail(db, traces)
    t.poll()
    f.unlink()
    assert t.poll().events == 0
    assert t.problems == {}
    assert_exactly_once(db, written)


def test_file_vanishing_while_listed_is_skipped(db, traces, monkeypatch):
    written = write_events(traces / "a.jsonl", "t", range(2))
    write_events(traces / "b.jsonl", "u", range(2))
    t = tail(db, traces)
    real_open = os.open

    def racing_open(path, flags, *a, **kw):
        if str(path).endswith("b.jsonl"):
            os.unlink(path)  # deleted after the listing, before the open
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(os, "open", racing_open)
    t.poll()
    assert_exactly_once(db, written)


def test_unreadable_file_is_reported_and_the_rest_ingested(db, traces, monkeypatch):
    written = write_events(traces / "a.jsonl", "t", range(2))
    locked = traces / "locked.jsonl"
    write_events(locked, "u", range(2))
    real_open = os.open

    def deny(path, flags, *a, **kw):
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(os, "open", deny)
    t = tail(db, traces)
    t.poll()
    assert t.problems[str(locked)].startswith("permission denied")
    assert_exactly_once(db, written)
    monkeypatch.setattr(os, "open", real_open)
    t.poll()
    assert str(locked) not in t.problems
    assert_exactly_once(db, written | {("u", 0), ("u", 1)})


def test_unreadable_neighbour_does_not_block_copytruncate(db, traces, monkeypatch):
    f = traces / "app.jsonl"
    t = tail(db, traces)
    written = write_events(f, "a", range(3))
    t.poll()
    other = traces / "zz-big.bin"
    other.write_bytes(b"x" * 10_000)  # large enough to be a copy candidate
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, fl, *a, **kw: (_ for _ in ()).throw(PermissionError(13, "denied"))
                        if str(p) == str(other) else real_open(p, fl, *a, **kw))
    with open(f, "r+b") as fh:
        fh.truncate(0)
    written |= write_events(f, "b", range(6))
    t.poll()
    assert_exactly_once(db, written)


def test_only_matching_names_are_read_in_a_folder(db, traces):
    written = write_events(traces / "a.jsonl", "t", range(2))
    written |= write_events(traces / "b.ndjson", "u", range(2))
    (traces / "notes.txt").write_text("not a trace\n")
    (traces / "sub").mkdir()
    write_events(traces / "sub" / "c.jsonl", "v", range(2))  # not recursive
    t = tail(db, traces)
    t.poll()
    assert_exactly_once(db, written)
    assert t.poll().events == 0


def test_a_special_file_path_is_reported(db, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    t = tail(db, fifo)
    assert t.poll().events == 0
    assert "not a regular file" in t.problems[str(fifo)]


def test_follow_picks_up_appends_and_new_files(db, traces):
    """run() commits an appended line and a file created after it started."""
    import time

    t = tail(db, traces)
    stop = threading.Event()
    th = threading.Thread(target=t.run, args=(stop,), daemon=True)
    th.start()
    try:
        written = write_events(traces / "a.jsonl", "t", range(2))
        written |= write_events(traces / "later.jsonl", "u", range(3))
        deadline = time.monotonic() + 10
        while set(stored(db)) != written and time.monotonic() < deadline:
            time.sleep(0.02)
        assert_exactly_once(db, written)
    finally:
        stop.set()
        th.join(5)
    assert not th.is_alive()


def test_a_failing_post_commit_hook_is_a_problem_not_a_crash(db, traces, capsys):
    def broken_hook(conn, result):
        raise ValueError("boom")

    written = write_events(traces / "a.jsonl", "t", range(3))
    t = Tailer(connect(db), [traces], post_commit=[broken_hook])
    assert t.poll().events == 3
    assert_exactly_once(db, written)
    assert t.problems == {"(post-commit broken_hook)": "ValueError: boom"}
    assert capsys.readouterr().err == ""  # the console draws on stderr
    assert t.poll().events == 0 and t.problems == {}
