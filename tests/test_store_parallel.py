"""A backlog parsed by worker processes commits the same rows, in file order, as the serial path."""

from __future__ import annotations

import json

import pytest

from agentdeck.store.db import connect
from agentdeck.store.parallel import ParsePool
from agentdeck.store.tailer import Tailer

BAD = b'{"v": 1, "kind": "teleport", "ts": "2026-11-24T09:00:00Z", "task_id": "x", "seq": 0}'


def write(path, tasks: int, per_task: int) -> int:
    lines = []
    for t in range(tasks):
        for s in range(per_task):
            lines.append(json.dumps({"v": 1, "kind": "reasoning", "ts": "2026-11-24T09:00:00Z", "task_id": f"t{t}",
                                     "seq": s, "tokens_in": 10, "tokens_out": 1, "summary": "x" * 50}).encode())
        if t % 50 == 0:
            lines.append(BAD)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return tasks * per_task


@pytest.fixture(scope="module")
def pool():
    p = ParsePool(2)
    yield p
    p.close()


def dump(db):
    conn = connect(db)
    events = conn.execute("SELECT task_id, seq, kind, ts, payload FROM events ORDER BY id").fetchall()
    tasks = conn.execute("SELECT task_id, events, tokens, max_seq FROM tasks ORDER BY task_id").fetchall()
    rejects = conn.execute("SELECT offset, error FROM rejects ORDER BY offset").fetchall()
    offsets = conn.execute("SELECT offset, lines, rejects FROM sources").fetchall()
    return [list(map(tuple, x)) for x in (events, tasks, rejects, offsets)]


def test_parallel_and_serial_store_the_same(tmp_path, pool):
    folder = tmp_path / "traces"
    folder.mkdir()
    n = write(folder / "a.jsonl", 400, 20)
    serial, parallel = tmp_path / "serial.db", tmp_path / "parallel.db"
    Tailer(connect(serial), [folder], post_commit=[], batch_bytes=64 * 1024).poll()
    stats = Tailer(connect(parallel), [folder], post_commit=[], batch_bytes=64 * 1024, parse_pool=pool).poll()
    assert stats.events == n
    assert dump(serial) == dump(parallel)


def test_parallel_then_appended_lines(tmp_path, pool):
    folder = tmp_path / "traces"
    folder.mkdir()
    f = folder / "a.jsonl"
    n = write(f, 200, 10)
    t = Tailer(connect(tmp_path / "s.db"), [folder], post_commit=[], batch_bytes=16 * 1024, parse_pool=pool)
    with open(f, "ab") as fh:
        fh.write(b'{"v": 1, "kind": "plan", "ts": "2026-11-24T09:00:00Z"')  # a partial last line
    assert t.poll().events == n
    with open(f, "ab") as fh:
        fh.write(b', "task_id": "late", "seq": 0, "summary": "s"}\n')
    assert t.poll().events == 1


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="needs /proc")
def test_workers_leave_when_the_ingester_is_killed():
    import os
    import signal
    import subprocess
    import sys
    import time

    code = ("from agentdeck.store.parallel import ParsePool; import sys, time; p = ParsePool(1); "
            "print(*p._pool._processes, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    worker = int(proc.stdout.readline())
    assert _alive(worker)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 10
    while _alive(worker):
        assert time.monotonic() < deadline, "a parse process outlived the killed ingester"
        time.sleep(0.05)


def test_parallel_path_isolates_a_line_the_store_refuses_and_checks_contracts_the_same(tmp_path, pool):
    """A bulk import through parse processes: a line refused at commit is rejected alone, verdicts as serial."""
    folder = tmp_path / "traces"
    (folder / "contracts").mkdir(parents=True)
    (folder / "contracts" / "bot.toml").write_text('agent = "bot"\n[tools]\nallow = ["ok"]\n')
    lines = []
    for t in range(300):
        lines.append(json.dumps({"v": 1, "kind": "task_start", "ts": "2026-11-24T09:00:00Z", "task_id": f"t{t}",
                                 "seq": 0, "request_id": "r", "agent": "bot", "agent_version": {"id": "v1"}}))
        for s in range(1, 12):
            tool = "poison" if (t, s) in ((7, 3), (250, 5)) else ("bad" if s % 7 == 0 else "ok")
            lines.append(json.dumps({"v": 1, "kind": "tool_call", "ts": "2026-11-24T09:00:00Z", "task_id": f"t{t}",
                                     "seq": s, "call_id": f"c{s}", "tool": tool, "input": {"pad": "x" * 80}}))
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    results = []
    for name, kw in (("serial", {}), ("parallel", {"parse_pool": pool})):
        conn = connect(tmp_path / f"{name}.db")
        conn.execute("""CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.payload LIKE '%"poison"%'
                        BEGIN SELECT RAISE(ABORT, 'poisoned line'); END""")
        stats = Tailer(conn, [folder], batch_bytes=32 * 1024, **kw).poll()
        assert (stats.events, stats.rejects) == (len(lines) - 2, 2)
        results.append((dump(tmp_path / f"{name}.db"),
                        conn.execute("SELECT task_id, seq, rule FROM violations ORDER BY task_id, seq").fetchall()))
    assert results[0] == results[1]
    rejects = results[1][0][2]
    assert [r[1] for r in rejects] == ["IntegrityError: poisoned line"] * 2
    assert len(results[1][1]) == 300  # one "bad" tool a task (seq 7); the poisoned lines are not stored


def _otlp_line(spans: list[dict]) -> bytes:
    return json.dumps({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"spans": spans}]}]}).encode()


def _trace(n: int) -> list[dict]:
    t0 = 1_795_600_000_000_000_000 + n * 10**9

    def span(i, name, attrs, parent=True, error=False):
        s = {"traceId": f"{n + 1:032x}", "spanId": f"{n * 16 + i + 1:016x}", "name": name,
             "startTimeUnixNano": str(t0 + i * 1000), "endTimeUnixNano": str(t0 + 10**8 - i * 1000),
             "attributes": [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
                            for k, v in attrs.items()],
             "status": {"code": 2, "message": "boom"} if error else {}}
        if parent:
            s["parentSpanId"] = f"{n * 16 + 1:016x}"
        return s

    return [
        span(1, "chat", {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 5,
                         "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text",
                                                                                            "content": f"q{n}"}]}])}),
        span(2, "execute_tool t", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t"}, error=n % 3 == 0),
        span(3, "invoke_agent sub", {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "sub"}),
        span(0, "invoke_agent a", {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": f"a{n % 2}"},
             parent=False),
    ]


def test_parallel_otlp_lines_store_what_the_serial_path_stores(tmp_path, pool):
    """OTLP JSON lines go through the parse processes too; spans of one trace spread over lines,
    in either order, a line sent twice, a metrics line and a pretty-printed document come out
    as the serial path stores them."""
    import random

    rng = random.Random(7)
    spans = [s for n in range(300) for s in _trace(n)]
    order = list(range(len(spans)))
    for i in range(0, len(order) - 40, 40):  # parents before and after their children, across lines
        window = order[i:i + 40]
        rng.shuffle(window)
        order[i:i + 40] = window
    lines = [_otlp_line([spans[j] for j in order[i:i + 7]]) for i in range(0, len(order), 7)]
    lines.insert(30, lines[10])  # a retry: the same spans again
    lines.insert(50, b'{"resourceMetrics": []}')
    doc = json.dumps(json.loads(_otlp_line(_trace(900))), indent=1).encode()
    lines.insert(70, doc)
    folder = tmp_path / "traces"
    folder.mkdir()
    (folder / "otel.json").write_bytes(b"\n".join(lines) + b"\n")
    serial, parallel = tmp_path / "serial.db", tmp_path / "parallel.db"
    s = Tailer(connect(serial), [folder], post_commit=[], batch_bytes=16 * 1024).poll()
    p = Tailer(connect(parallel), [folder], post_commit=[], batch_bytes=16 * 1024, parse_pool=pool).poll()
    assert s.rejects == p.rejects == 0
    a, b = dump(serial), dump(parallel)
    assert len(a[0]) == len(b[0]) > 300 * 4
    assert a[1] == b[1]  # tasks: agent, events, tokens
    assert a[2:] == b[2:]
    # Events: the same set (batches are grouped differently, so reframing may touch rows in another order).
    assert sorted(e[:3] + (e[4],) for e in a[0]) == sorted(e[:3] + (e[4],) for e in b[0])
    conn = connect(parallel)
    assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 301
    assert {r[0] for r in conn.execute("SELECT agent FROM tasks")} == {"a0", "a1"}
