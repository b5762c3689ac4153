"""Bad lines go to ``rejects`` with file, byte offset, reason and (bounded) raw text; the rest is ingested."""

from __future__ import annotations

import json
from pathlib import Path

from agentdeck.store.db import connect
from agentdeck.store.ingest import MAX_REJECT_RAW
from agentdeck.store.reader import MAX_LINE
from agentdeck.store.tailer import Tailer


def good(seq: int) -> bytes:
    return json.dumps({"v": 1, "kind": "plan", "ts": "2026-11-24T09:00:00Z", "task_id": "t", "seq": seq,
                       "summary": "ok"}).encode()


BAD = {
    "bad JSON": b'{"v": 1, "kind": "plan", "ts": "2026-11-24T09:00:00Z", "task_id": "x", "seq": 1, "summary": "unterminated',
    "unknown kind": b'{"v": 1, "kind": "teleport", "ts": "2026-11-24T09:00:00Z", "task_id": "x", "seq": 0}',
    "unsupported format version": b'{"v": 2, "kind": "plan", "ts": "2026-11-24T09:00:00Z", "task_id": "x", "seq": 0, "summary": "s"}',
    "seq": b'{"v": 1, "kind": "plan", "ts": "2026-11-24T09:00:00Z", "task_id": "x", "seq": -1, "summary": "s"}',
    "missing field: kind": b'{"v": 1, "ts": "2026-11-24T09:00:00Z", "task_id": "x", "seq": 0}',
    "Extra inputs": b'{"v": 1, "kind": "plan", "ts": "2026-11-24T09:00:00Z", "task_id": "x", "seq": 0, "summary": "s", "surprise": 1}',
    "should be an object": b'[1, 2, 3]',
    "invalid unicode": b'{"v": 1, "kind": "plan", "ts": "2026-11-24T09:00:00Z", "task_id": "\xff\xfe", "seq": 0, "summary": "s"}',
}


def test_each_bad_line_is_rejected_with_where_and_why(tmp_path):
    folder = tmp_path / "traces"
    folder.mkdir()
    path = folder / "mixed.jsonl"
    body = b""
    expected = []  # (offset, reason fragment, raw)
    seq = 0
    for reason, raw in BAD.items():
        body += good(seq) + b"\n"
        seq += 1
        expected.append((len(body), reason, raw))
        body += raw + b"\n"
    body += good(seq) + b"\n"
    path.write_bytes(body)

    conn = connect(tmp_path / "s.db")
    stats = Tailer(conn, [folder], post_commit=[]).poll()
    assert stats.events == seq + 1
    assert stats.rejects == len(BAD)
    rows = conn.execute("SELECT path, offset, error, raw, raw_length FROM rejects ORDER BY offset").fetchall()
    assert len(rows) == len(expected)
    for row, (offset, reason, raw) in zip(rows, expected):
        assert row["path"] == str(path)
        assert row["offset"] == offset
        assert body[offset:offset + len(raw)] == raw  # the offset points at the line itself
        assert row["raw_length"] == len(raw)
        assert row["raw"] == raw.decode("utf-8", "replace")
        if reason == "invalid unicode":
            assert row["error"].startswith("bad JSON")
        else:
            assert reason.lower() in row["error"].lower(), row["error"]
    assert tuple(conn.execute("SELECT lines, rejects FROM sources").fetchone()) == (seq + 1 + len(BAD), len(BAD))


def test_oversized_line_is_rejected_without_holding_it(tmp_path):
    folder = tmp_path / "traces"
    folder.mkdir()
    huge = b'{"v": 1, "kind": "plan", "summary": "' + b"x" * (MAX_LINE + 10) + b'"}'
    (folder / "a.jsonl").write_bytes(good(0) + b"\n" + huge + b"\n" + good(1) + b"\n")
    conn = connect(tmp_path / "s.db")
    stats = Tailer(conn, [folder], post_commit=[]).poll()
    assert (stats.events, stats.rejects) == (2, 1)
    row = conn.execute("SELECT offset, error, raw, raw_length FROM rejects").fetchone()
    assert row["offset"] == len(good(0)) + 1
    assert row["raw_length"] == len(huge)
    assert "line too long" in row["error"]
    assert len(row["raw"]) <= MAX_REJECT_RAW


def test_oversized_line_still_being_written_waits(tmp_path):
    folder = tmp_path / "traces"
    folder.mkdir()
    f = folder / "a.jsonl"
    f.write_bytes(good(0) + b"\n" + b"y" * (MAX_LINE + 5))  # no newline yet
    conn = connect(tmp_path / "s.db")
    t = Tailer(conn, [folder], post_commit=[])
    assert (t.poll().events, conn.execute("SELECT count(*) FROM rejects").fetchone()[0]) == (1, 0)
    with open(f, "ab") as fh:
        fh.write(b"y\n" + good(1) + b"\n")
    stats = t.poll()
    assert (stats.events, stats.rejects) == (1, 1)


def test_blank_and_crlf_lines(tmp_path):
    folder = tmp_path / "traces"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes(good(0) + b"\r\n\n   \n" + good(1) + b"\r\n")
    conn = connect(tmp_path / "s.db")
    stats = Tailer(conn, [folder], post_commit=[]).poll()
    assert (stats.events, stats.rejects) == (2, 0)


def test_sample_data_rejects_are_exactly_the_malformed_lines(sample_db):
    from agentdeck.sample_data.build import MALFORMED

    conn = connect(sample_db)
    raws = sorted(r[0] for r in conn.execute("SELECT raw FROM rejects"))
    assert raws == sorted(m.decode() for m in MALFORMED)
    total_lines = sum(
        sum(1 for ln in p.read_bytes().splitlines() if ln.strip())
        for p in (Path(__file__).parents[1] / "sample_data" / "traces").glob("*.jsonl")
    )
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == total_lines - len(MALFORMED)
