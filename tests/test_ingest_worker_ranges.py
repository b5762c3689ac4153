"""Parse processes read their own byte ranges of a backlog (store/parallel.py ``parse_range``).

The ingesting process hands out nominal ranges without reading the file;
each worker finds its lines' edges itself. Whatever the ranges' size and
however lines fall across them, a bulk import through the workers stores
exactly what the serial path stores: events, task rows, escalations,
actions, rejects (offset, reason, raw) and contract violations.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from agentdeck.store.db import connect
from agentdeck.store.parallel import ParsePool, parse_range
from agentdeck.store.reader import MAX_LINE
from agentdeck.store.tailer import Tailer
from tests.test_ingest_hostile import CONTRACT, base_events, hostile_line, otlp_line

_POOL: list[ParsePool] = []


def pool() -> ParsePool:
    # One pool for the module (hypothesis runs a test many times; forking per example costs ~100 ms).
    if not _POOL:
        _POOL.append(ParsePool(2))
    return _POOL[0]


@pytest.fixture(scope="module", autouse=True)
def _close_pool():
    yield
    while _POOL:
        _POOL.pop().close()


def dump(conn) -> dict:
    q = {
        "events": "SELECT id, task_id, seq, kind, ts, source_id, payload FROM events ORDER BY id",
        "tasks": "SELECT * FROM tasks ORDER BY task_id",
        "escalations": "SELECT * FROM escalations ORDER BY escalation_id",
        "actions": "SELECT * FROM actions ORDER BY action_id",
        "rejects": "SELECT offset, error, raw, raw_length FROM rejects ORDER BY offset",
        "violations": "SELECT task_id, seq, rule, detail, agent, version FROM violations ORDER BY task_id, seq, rule",
        "sources": "SELECT path, offset, lines, rejects FROM sources ORDER BY path",
        "pending": "SELECT task_id FROM contract_pending",
    }
    out = {}
    for name, sql in q.items():
        cur = conn.execute(sql)
        cols = [d[0] for d in cur.description]
        out[name] = [{c: v for c, v in zip(cols, row) if c != "updated_at"} for row in cur.fetchall()]
    return out


def ingest_both(folder: Path, batch_bytes: int) -> tuple[dict, dict]:
    results = []
    for name, kw in (("serial", {}), ("workers", {"parse_pool": pool()})):
        db = folder.parent / f"{folder.name}-{name}.db"
        conn = connect(db)
        tailer = Tailer(conn, [folder], batch_bytes=batch_bytes, **kw)
        tailer.poll()
        assert not tailer.problems, tailer.problems
        results.append(dump(conn))
        conn.close()
    return results[0], results[1]


def write_folder(lines: list[bytes], ends: list[bytes]) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="ranges-")) / "traces"
    (folder / "contracts").mkdir(parents=True)
    (folder / "contracts" / "pay-bot.toml").write_text(CONTRACT)
    with open(folder / "agent.jsonl", "wb") as f:
        for line, end in zip(lines, ends):
            f.write(line + end)
    return folder


@st.composite
def mixed_corpus(draw) -> tuple[list[bytes], list[bytes]]:
    """Whole tasks of every kind, some lines hostile, blank lines, CRLF ends, padding of any length
    (so lines of every size fall across range edges), the odd OTLP line, a partial last line."""
    lines: list[bytes] = []
    for t in range(draw(st.integers(2, 12))):
        for event in base_events(f"t{t}"):
            roll = draw(st.integers(0, 9))
            if roll == 0:
                lines.append(draw(hostile_line(event)))
            elif roll == 1:
                lines.append(b"")
            elif roll == 2 and event["kind"] in ("plan", "reasoning"):
                lines.append(json.dumps(dict(event, summary="p" * draw(st.integers(0, 3000)))).encode())
            elif roll == 3 and t == 0:
                lines.append(otlp_line(f"{len(lines):016x}", []))
            else:
                lines.append(json.dumps(event).encode())
    ends = [draw(st.sampled_from([b"\n", b"\n", b"\n", b"\r\n"])) for _ in lines]
    if draw(st.booleans()):
        lines.append(json.dumps(base_events("partial")[0]).encode()[:40])
        ends.append(b"")  # no newline yet: neither path may read it
    return lines, ends


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mixed_corpus(), st.integers(600, 12_000))
def test_workers_reading_their_ranges_store_what_the_serial_path_stores(case, batch_bytes):
    lines, ends = case
    folder = write_folder(lines, ends)
    serial, workers = ingest_both(folder, batch_bytes)
    assert workers == serial


def test_a_line_longer_than_a_range_or_than_max_line_is_read_serially_and_the_rest_by_workers(tmp_path):
    events = [e for t in range(40) for e in base_events(f"t{t}")]
    lines = [json.dumps(e).encode() for e in events]
    lines.insert(50, json.dumps(dict(events[3], task_id="long", input={"pad": "x" * 40_000})).encode())
    lines.insert(200, b'{"v":1,"kind":"plan","summary":"' + b"y" * (MAX_LINE + 10) + b'"}')
    folder = write_folder(lines, [b"\n"] * len(lines))
    p = pool()
    ranges = []
    submit_range = p.submit_range

    def counted(*a, **kw):
        ranges.append(a[1:3])
        return submit_range(*a, **kw)

    p.submit_range = counted  # type: ignore[method-assign]
    try:
        serial, workers = ingest_both(folder, 8 * 1024)
    finally:
        del p.submit_range
    assert len(ranges) > 10  # the workers read most of it
    assert workers == serial
    assert [r["error"].split(" (")[0] for r in serial["rejects"]] == ["line too long"]
    assert len(serial["events"]) == len(lines) - 1


@given(st.lists(st.integers(0, 300), min_size=1, max_size=60), st.lists(st.integers(1, 400), min_size=1, max_size=30),
       st.integers(0, 50))
@settings(max_examples=150, deadline=None)
def test_ranges_tile_the_complete_lines_exactly(lengths, cuts, tail):
    """Neighbouring ranges agree on their common edge from the file alone: together they hold every
    complete line once, each range starting at a line's start; the partial tail is never read."""
    body = b"".join(b"{" + b"a" * n + b"}\n" for n in lengths) + b"{" + b"b" * tail
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as f:
        f.write(body)
        f.flush()
        st_ = os.stat(f.name)
        size = len(body)
        ref = (f.name, "", st_.st_dev, st_.st_ino, 0)
        edges = [0]
        for c in cuts:
            if edges[-1] + c >= size:
                break
            edges.append(edges[-1] + c)
        edges.append(size)
        expected_end = body.rfind(b"\n") + 1
        starts = [0] + [i + 1 for i, b in enumerate(body[:expected_end - 1]) if b == 0x0A]
        at = 0
        for lo, hi in zip(edges, edges[1:]):
            mine = [s for s in starts if lo <= s < hi]
            got = parse_range(ref, lo, hi, size, 1)
            if not mine:
                assert got is None  # no complete line starts here: nothing to give
                continue
            assert got is not None
            start, end, _ = got
            after = [s for s in starts if s >= hi]
            assert (start, end) == (mine[0], after[0] if after else expected_end)
            assert start == at, (lo, hi, start, at)
            at = end
        assert at == expected_end


def test_a_range_of_a_renamed_file_is_read_through_the_descriptor_and_a_replaced_one_is_refused(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"".join(json.dumps(e).encode() + b"\n" for e in base_events("t")))
    fd = os.open(path, os.O_RDONLY)
    try:
        st_ = os.fstat(fd)
        size = st_.st_size
        path.rename(tmp_path / "a.jsonl.1")
        path.write_bytes(b"{}\n" * 10)  # a new file under the old name
        ref = (str(path), f"/proc/{os.getpid()}/fd/{fd}", st_.st_dev, st_.st_ino, 0)
        if os.path.exists(ref[1]):
            start, end, result = parse_range(ref, 0, size, size, 1)
            assert (start, end) == (0, size) and result[2] == len(base_events("t"))
        assert parse_range((str(path), "", st_.st_dev, st_.st_ino, 0), 0, size, size, 1) is None
    finally:
        os.close(fd)
