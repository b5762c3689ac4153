"""What a Collector's file exporter really writes is read without losing or
inventing anything: traces mixed with metrics and logs lines, pretty-printed
JSON documents, and the ``format: proto`` length-prefixed files."""

from __future__ import annotations

import json
import struct

from hypothesis import HealthCheck, given, settings, strategies as st

from agentdeck.store import otlp_files
from agentdeck.store.db import connect
from agentdeck.store.tailer import Tailer

from otel_fixtures import fixture, ingest_spans, requests, spans

TRACE = "5b8efff798038103d269b633813fc60c"


def tool_span(span_id: str) -> dict:
    return {"traceId": TRACE, "spanId": span_id, "name": "execute_tool lookup",
            "startTimeUnixNano": "1795600000000000000", "endTimeUnixNano": "1795600000250000000",
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
                           {"key": "gen_ai.tool.name", "value": {"stringValue": "lookup"}}]}


def traces_doc(*span_ids: str) -> dict:
    return {"resourceSpans": [{"resource": {"attributes": []},
                               "scopeSpans": [{"spans": [tool_span(s) for s in span_ids]}]}]}


def rows(conn, sql: str) -> list:
    return [tuple(r) for r in conn.execute(sql)]


def test_metrics_and_logs_lines_in_a_traces_file_are_skipped_and_counted_not_rejected(tmp_path):
    metrics = {"resourceMetrics": [{"resource": {}, "scopeMetrics": [{"metrics": [{"name": "gen_ai.client.token.usage"}]}]}]}
    logs = {"resourceLogs": [{"resource": {}, "scopeLogs": [{"logRecords": [{"body": {"stringValue": "hi"}}]}]}]}
    lines = [traces_doc("0000000000000001"), metrics, logs, traces_doc("0000000000000002"), metrics]
    (tmp_path / "otel.json").write_text("\n".join(json.dumps(d) for d in lines) + "\n")
    before = dict(otlp_files.skipped)
    conn = connect(tmp_path / "store.db")
    Tailer(conn, [tmp_path], post_commit=[]).poll()
    assert rows(conn, "SELECT count(*) FROM rejects") == [(0,)]
    assert rows(conn, "SELECT count(*) FROM events WHERE kind = 'tool_call'") == [(2,)]
    assert otlp_files.skipped["metrics"] - before.get("metrics", 0) == 2
    assert otlp_files.skipped["logs"] - before.get("logs", 0) == 1


def test_a_pretty_printed_document_is_one_document_and_waits_until_it_is_complete(tmp_path):
    path = tmp_path / "otel.json"
    pretty = json.dumps(traces_doc("0000000000000001", "0000000000000002"), indent=2)
    bad = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}, indent=2)
    conn = connect(tmp_path / "store.db")
    tailer = Tailer(conn, [tmp_path], post_commit=[])
    half = len(pretty) // 2
    path.write_text(pretty[:half])
    tailer.poll()
    path.write_text(pretty[:half] + pretty[half:] + "\n")  # the writer finishes the document
    assert tailer.poll().events == 2 * 2 + 2  # two tools' calls and results; the first frames the task
    with path.open("a") as f:
        f.write(bad + "\n" + json.dumps(traces_doc("0000000000000003")) + "\n")
    tailer.poll()
    rejects = rows(conn, "SELECT offset, error FROM rejects")
    assert len(rejects) == 1 and rejects[0][0] == len(pretty) + 1  # once, at the document's first byte
    assert "traceId" in rejects[0][1]
    assert rows(conn, "SELECT count(*) FROM events WHERE kind = 'tool_call'") == [(3,)]


def test_collector_proto_files_are_read_record_by_record(tmp_path):
    data = fixture("pydantic-ai").read_bytes()  # the SDK's requests, length-prefixed as `format: proto` writes them
    path = tmp_path / "traces.binpb"
    cut = len(data) - 100
    path.write_bytes(data[:cut])  # the Collector is mid-write
    conn = connect(tmp_path / "store.db")
    tailer = Tailer(conn, [tmp_path], post_commit=[])
    assert tailer.poll().events == 0  # one request: not complete yet
    path.write_bytes(data)
    tailer.poll()
    tailer.poll()
    reference = connect(":memory:")
    ingest_spans(reference, spans("pydantic-ai"))
    query = "SELECT task_id, agent, version, request, outcome, tokens, events FROM tasks ORDER BY task_id"
    assert rows(conn, query) == rows(reference, query)
    assert rows(conn, "SELECT count(*) FROM rejects") == [(0,)]
    assert len(requests(path)) == 1


def test_a_damaged_proto_file_is_rejected_where_it_breaks_and_the_records_before_are_kept(tmp_path):
    body = requests(fixture("langfuse"))[0]
    good = struct.pack(">I", len(body)) + body
    garbage = struct.pack(">I", 2**31) + b"\x00" * 50
    (tmp_path / "t.pb").write_bytes(good + struct.pack(">I", 5) + b"\xff" * 5 + garbage)
    conn = connect(tmp_path / "store.db")
    Tailer(conn, [tmp_path], post_commit=[]).poll()
    errors = rows(conn, "SELECT offset, error FROM rejects ORDER BY offset")
    assert [e[0] for e in errors] == [len(good), len(good) + 9]
    assert "bad protobuf" in errors[0][1] and "not a length-prefixed OTLP record" in errors[1][1]
    assert rows(conn, "SELECT count(DISTINCT task_id) FROM events") == [(2,)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.binary(max_size=40), st.sampled_from([b"{", b"}", b"  {", b"{\"resourceSpans\": [", b"]}"])),
                max_size=30))
def test_hostile_lines_never_crash_or_stall_the_tailer(tmp_path_factory, pieces):
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "x.json").write_bytes(b"\n".join(pieces) + b"\n")
    (folder / "x.pb").write_bytes(b"".join(pieces))
    conn = connect(folder / "store.db")
    tailer = Tailer(conn, [folder], post_commit=[])
    for _ in range(3):
        tailer.poll()
    # Whatever was complete was read: nothing is left behind but an unfinished document or record.
    for src in conn.execute("SELECT path, offset FROM sources"):
        size = (folder / src["path"].rsplit("/", 1)[-1]).stat().st_size
        assert src["offset"] <= size
    conn.close()


def test_a_refused_span_is_a_reject_and_the_other_spans_of_its_line_are_kept(tmp_path):
    doc = traces_doc("0000000000000001", "0000000000000002")
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"] = "not-a-trace-id"
    third = tool_span("0000000000000003")
    third["attributes"].append({"key": "agentdeck.status", "value": {"stringValue": "sideways"}})
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"].append(third)
    (tmp_path / "otel.json").write_text(json.dumps(doc) + "\n")
    conn = connect(tmp_path / "store.db")
    Tailer(conn, [tmp_path], post_commit=[]).poll()
    errors = rows(conn, "SELECT offset, error FROM rejects")
    assert len(errors) == 1 and errors[0][0] == 0  # one reject for the line, naming both spans
    assert errors[0][1].startswith("2 spans refused, the others kept:")
    assert "traceId" in errors[0][1] and "0000000000000003" in errors[0][1] and "status" in errors[0][1]
    assert rows(conn, "SELECT count(*) FROM events WHERE kind = 'tool_call'") == [(1,)]


def test_partial_decoding_names_each_refused_span_for_the_receiver():
    from agentdeck.store import otlp

    body = json.dumps(traces_doc("0000000000000001", "00")).encode()
    items = otlp.decode_json(body, partial=True)
    assert [e.kind for e, _p in items].count("tool_call") == 1
    assert len(items.rejected) == 1 and "spanId" in items.rejected[0]
    try:
        otlp.decode_json(body)
    except otlp.OtlpError as exc:
        assert "spanId" in str(exc)
    else:
        raise AssertionError("a whole-request decode must refuse a bad span")
