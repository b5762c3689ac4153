"""The receiver facing a network, tested with the real OpenTelemetry SDK exporter:
bearer tokens, TLS, mutual TLS, per-source budgets and which agents a source may
write for. Everything listens on 127.0.0.1, port 0."""

from __future__ import annotations

from conftest import HTTP

import json
import logging
import time

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from receiver_support import TOKEN_A, TOKEN_B, Certs, agent_spans, rejects, tasks, trace_hex

from agentdeck.store import otlp
from agentdeck.store.otlp_auth import parse_tokens, tls_context
from agentdeck.store.otlp_receiver import Receiver

TOKENS = f"""
# name   token   options
host-a   {TOKEN_A}   agents=refund-agent
host-b   {TOKEN_B}   rate=1
"""


def export(receiver: Receiver, spans, timeout: float = 10, **kw) -> SpanExportResult:
    exporter = OTLPSpanExporter(endpoint=receiver.endpoint, timeout=timeout, **kw)
    try:
        return exporter.export(spans)
    finally:
        exporter.shutdown()


@pytest.fixture(autouse=True)
def _no_ca_bundle_override(monkeypatch):
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override the session's
    # `verify`, i.e. the exporter's certificate_file (requests issue 3829).
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def guarded(tmp_path):
    with Receiver(tmp_path / "store.db", "127.0.0.1", 0, tokens=parse_tokens(TOKENS)) as r:
        yield r


def test_the_right_token_writes_and_the_store_keeps_its_name(guarded):
    spans = agent_spans("refund-agent")
    assert export(guarded, spans, headers={"Authorization": f"Bearer {TOKEN_A}"}) == SpanExportResult.SUCCESS
    task = tasks(guarded.db_path)[otlp.task_id(trace_hex(spans))]
    assert task["agent"] == "refund-agent" and task["source"] == "host-a"
    assert task["tool_calls"] == 1


def test_the_standard_exporter_header_setting_works(guarded, monkeypatch):
    """What docs/otel.md tells users to set: OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer …"""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer {TOKEN_A}")
    spans = agent_spans("refund-agent")
    assert export(guarded, spans) == SpanExportResult.SUCCESS
    assert tasks(guarded.db_path)[otlp.task_id(trace_hex(spans))]["source"] == "host-a"


def test_no_token_or_a_wrong_one_gets_401_with_no_detail_and_writes_nothing(guarded, caplog):
    spans = agent_spans("refund-agent")
    caplog.set_level(logging.WARNING, logger="agentdeck.store.otlp_auth")
    assert export(guarded, spans) == SpanExportResult.FAILURE
    assert export(guarded, spans, headers={"Authorization": "Bearer not-the-token-at-all"}) == SpanExportResult.FAILURE
    assert export(guarded, spans, headers={"Authorization": f"Bearer {TOKEN_A}x"}) == SpanExportResult.FAILURE
    body = encode_spans(spans).SerializeToString()
    answers = [
        HTTP.post(guarded.endpoint, content=body, headers={"Content-Type": "application/json", **auth})
        for auth in ({}, {"Authorization": "Bearer wrong-wrong-wrong-wrong"}, {"Authorization": "Basic !!"})
    ]
    for r in answers:  # the same answer whatever was wrong: nothing to learn from it
        assert r.status_code == 401 and r.json() == {"code": 16, "message": "unauthenticated"}
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert tasks(guarded.db_path) == {}
    assert rejects(guarded.db_path) == []  # strangers cannot fill the store with reject rows either
    assert guarded.stats.unauthorized == 6
    # Counted, and logged at most once per interval: one line for the burst.
    lines = [r for r in caplog.records if "missing or wrong token" in r.getMessage()]
    assert len(lines) == 1 and "1 request(s)" in lines[0].getMessage()


def test_langfuse_style_basic_credentials_carry_the_token(guarded):
    import base64

    spans = agent_spans("refund-agent")
    basic = base64.b64encode(f"pk-lf-anything:{TOKEN_A}".encode()).decode()
    r = HTTP.post(guarded.endpoint.replace("/v1/traces", "/api/public/otel/v1/traces"),
                   content=encode_spans(spans).SerializeToString(),
                   headers={"Content-Type": "application/x-protobuf", "Authorization": f"Basic {basic}"})
    assert r.status_code == 200, r.text
    assert tasks(guarded.db_path)[otlp.task_id(trace_hex(spans))]["source"] == "host-a"


def test_over_the_rate_budget_gets_429_then_the_exporter_succeeds_after_retry_after(guarded):
    first, second = agent_spans("refund-agent"), agent_spans("refund-agent")
    headers = {"Authorization": f"Bearer {TOKEN_B}"}
    assert export(guarded, first, headers=headers) == SpanExportResult.SUCCESS
    started = time.monotonic()
    # The budget is one request a second: the second export is refused with
    # 429 + Retry-After, and the SDK waits that long and retries on its own.
    assert export(guarded, second, headers=headers) == SpanExportResult.SUCCESS
    assert guarded.stats.throttled >= 1
    assert time.monotonic() - started >= 0.5  # it did wait for the budget
    assert {otlp.task_id(trace_hex(first)), otlp.task_id(trace_hex(second))} <= set(tasks(guarded.db_path))
    r = HTTP.post(guarded.endpoint, content=b"{}", headers={"Content-Type": "application/json", **headers})
    r2 = HTTP.post(guarded.endpoint, content=b"{}", headers={"Content-Type": "application/json", **headers})
    throttled = r if r.status_code == 429 else r2
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
    assert "budget" in throttled.json()["message"]


def test_a_body_over_the_sources_byte_budget_is_refused(tmp_path):
    tokens = parse_tokens(f"small {TOKEN_A} bytes=2000\n")
    spans = agent_spans("refund-agent", tools=40)
    with Receiver(tmp_path / "store.db", "127.0.0.1", 0, tokens=tokens) as r:
        body = encode_spans(spans).SerializeToString()
        assert len(body) > 2000
        answer = HTTP.post(r.endpoint, content=body, headers={"Content-Type": "application/x-protobuf",
                                                                 "Authorization": f"Bearer {TOKEN_A}"})
        assert answer.status_code == 413
        assert export(r, agent_spans("refund-agent"), headers={"Authorization": f"Bearer {TOKEN_A}"}) == SpanExportResult.SUCCESS


def test_a_token_cannot_write_for_another_agent(guarded):
    headers = {"Authorization": f"Bearer {TOKEN_A}"}  # host-a: refund-agent only
    foreign = agent_spans("payroll-agent")
    assert export(guarded, foreign, headers=headers) == SpanExportResult.FAILURE  # every span refused: 400
    assert otlp.task_id(trace_hex(foreign)) not in tasks(guarded.db_path)
    # In a request that also holds allowed spans, the others are left out with partial success.
    own = agent_spans("refund-agent")
    r = HTTP.post(guarded.endpoint, content=encode_spans(own + foreign).SerializeToString(),
                   headers={"Content-Type": "application/x-protobuf", **headers})
    assert r.status_code == 200
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    partial = ExportTraceServiceResponse.FromString(r.content).partial_success
    assert partial.rejected_spans == len(foreign) == 2
    assert "'payroll-agent' is not one that source 'host-a' may write for (refund-agent)" in partial.error_message
    stored = tasks(guarded.db_path)
    assert otlp.task_id(trace_hex(own)) in stored and otlp.task_id(trace_hex(foreign)) not in stored
    rows = rejects(guarded.db_path)
    assert len(rows) == 4 and {r["source"] for r in rows} == {"host-a"}
    assert all("payroll-agent" in r["error"] for r in rows)
    # A tool span alone may not join a task that belongs to another agent either.
    other = agent_spans("payroll-agent")
    assert export(guarded, other, headers={"Authorization": f"Bearer {TOKEN_B}"}) == SpanExportResult.SUCCESS
    tool_only = [s for s in other if s.parent is not None]
    r = HTTP.post(guarded.endpoint, content=json_format.MessageToJson(encode_spans(tool_only)),
                   headers={"Content-Type": "application/json", **headers})
    assert r.status_code == 400 and "payroll-agent" in r.json()["message"]


def test_tls_with_a_self_signed_certificate(tmp_path):
    certs = Certs(tmp_path)
    tls = tls_context(certs.server_pem, certs.server_key)
    with Receiver(tmp_path / "store.db", "127.0.0.1", 0, tls=tls, tokens=parse_tokens(TOKENS)) as r:
        assert r.endpoint.startswith("https://127.0.0.1:")
        spans = agent_spans("refund-agent")
        headers = {"Authorization": f"Bearer {TOKEN_A}"}
        assert export(r, spans, headers=headers, certificate_file=certs.server_pem) == SpanExportResult.SUCCESS
        # A client that does not trust the certificate does not talk to it.
        assert export(r, agent_spans(), headers=headers, timeout=3) == SpanExportResult.FAILURE
        # Nor does one speaking plain HTTP to the TLS port.
        with pytest.raises(httpx.HTTPError):
            HTTP.post(r.endpoint.replace("https", "http"), content=b"{}", timeout=5)
        assert list(tasks(r.db_path)) == [otlp.task_id(trace_hex(spans))]


def test_mutual_tls_names_the_client_by_its_certificate(tmp_path):
    certs = Certs(tmp_path)
    tls = tls_context(certs.server_pem, certs.server_key, certs.ca_pem)
    with Receiver(tmp_path / "store.db", "127.0.0.1", 0, tls=tls) as r:
        spans = agent_spans("refund-agent")
        ok = export(r, spans, certificate_file=certs.server_pem,
                    client_certificate_file=certs.client_pem, client_key_file=certs.client_key)
        assert ok == SpanExportResult.SUCCESS
        assert tasks(r.db_path)[otlp.task_id(trace_hex(spans))]["source"] == "cert:host-b"
        # No client certificate, or one from a CA the receiver does not trust: no connection.
        assert export(r, agent_spans(), certificate_file=certs.server_pem, timeout=3) == SpanExportResult.FAILURE
        assert export(r, agent_spans(), certificate_file=certs.server_pem, timeout=3,
                      client_certificate_file=certs.rogue_pem, client_key_file=certs.rogue_key) == SpanExportResult.FAILURE
        assert len(tasks(r.db_path)) == 1


def test_the_source_of_a_task_lists_every_sender(tmp_path):
    """A trace whose spans come from two hosts (an agent and a tool service) names both."""
    with Receiver(tmp_path / "store.db", "127.0.0.1", 0, tokens=parse_tokens(TOKENS)) as r:
        spans = agent_spans("refund-agent")
        root = [s for s in spans if s.parent is None]
        child = [s for s in spans if s.parent is not None]
        assert export(r, child, headers={"Authorization": f"Bearer {TOKEN_B}"}) == SpanExportResult.SUCCESS
        assert export(r, root, headers={"Authorization": f"Bearer {TOKEN_A}"}) == SpanExportResult.SUCCESS
        assert export(r, root, headers={"Authorization": f"Bearer {TOKEN_A}"}) == SpanExportResult.SUCCESS  # a retry
        task = tasks(r.db_path)[otlp.task_id(trace_hex(spans))]
        assert task["source"] == "host-b,host-a" and task["events"] == 4


def test_token_files_are_checked_and_never_echo_a_token():
    from agentdeck.store.otlp_auth import ConfigError

    bad = {
        "host-a\n": "expected 'NAME TOKEN",
        "host-a short\n": "shorter than 16",
        f"a,b {TOKEN_A}\n": "must be letters",
        f"a {TOKEN_A}\na {TOKEN_B}\n": "used twice",
        f"a {TOKEN_A}\nb {TOKEN_A}\n": "also another name's token",
        f"a {TOKEN_A} rate=fast\n": "needs a number",
        f"a {TOKEN_A} colour=blue\n": "unknown option",
        "# nothing\n": "no tokens",
    }
    for text, reason in bad.items():
        with pytest.raises(ConfigError) as info:
            parse_tokens(text)
        assert reason in str(info.value)
        assert TOKEN_A not in str(info.value) and TOKEN_B not in str(info.value)
    (token,) = parse_tokens(f"a {TOKEN_A} agents=x,y rate=5 bytes=100\n")
    assert token.agents == {"x", "y"} and token.requests is not None and token.body_bytes is not None
    assert json.dumps(repr(token)).count(TOKEN_A) == 0


@settings(max_examples=200, deadline=None)
@given(header=st.one_of(
    st.text(max_size=60),
    st.builds(lambda scheme, secret: f"{scheme} {secret}", st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Token"]),
              st.one_of(st.text(max_size=40), st.sampled_from([TOKEN_A, TOKEN_A[:-1], TOKEN_A + " ", TOKEN_A.upper(), TOKEN_B]))),
))
def test_only_a_token_exactly_as_issued_authenticates(header):
    from agentdeck.store.otlp_auth import Authenticator

    auth = Authenticator(parse_tokens(TOKENS))
    found = auth.check(header)
    scheme, _, secret = header.strip().partition(" ")
    if scheme.lower() == "bearer" and secret.strip() in (TOKEN_A, TOKEN_B):
        assert found is not None and found.name == ("host-a" if secret.strip() == TOKEN_A else "host-b")
    else:
        assert found is None


def test_a_task_first_written_without_a_source_gets_one_from_a_later_sender(tmp_path):
    """A task begun by a file or a loopback exporter (no source), continued by a token's sender."""
    db = tmp_path / "store.db"
    spans = agent_spans("refund-agent")
    child = [s for s in spans if s.parent is not None]
    root = [s for s in spans if s.parent is None]
    with Receiver(db, "127.0.0.1", 0) as anonymous:
        assert export(anonymous, child) == SpanExportResult.SUCCESS
    assert tasks(db)[otlp.task_id(trace_hex(spans))]["source"] is None
    with Receiver(db, "127.0.0.1", 0, tokens=parse_tokens(TOKENS)) as guarded:
        assert export(guarded, root, headers={"Authorization": f"Bearer {TOKEN_A}"}) == SpanExportResult.SUCCESS
    task = tasks(db)[otlp.task_id(trace_hex(spans))]
    assert task["source"] == "host-a" and task["agent"] == "refund-agent" and task["events"] == 4


def test_a_stand_in_agent_owns_nothing_until_a_named_agent_frames_the_task(guarded):
    """Spans naming no agent make a task shown under the service's name, marked as a stand-in
    (tasks.agent_stand_in): a source limited to refund-agent may then add the invoke_agent span
    that names it, and from then on the task is refund-agent's."""
    spans = agent_spans("refund-agent")
    root = [s for s in spans if s.parent is None]
    tools = [s for s in spans if s.parent is not None]
    assert export(guarded, tools, headers={"Authorization": f"Bearer {TOKEN_B}"}) == SpanExportResult.SUCCESS
    task = tasks(guarded.db_path)[otlp.task_id(trace_hex(spans))]
    assert (task["agent"], task["agent_stand_in"]) == ("refund-agent-service", 1)
    assert export(guarded, root, headers={"Authorization": f"Bearer {TOKEN_A}"}) == SpanExportResult.SUCCESS
    task = tasks(guarded.db_path)[otlp.task_id(trace_hex(spans))]
    assert (task["agent"], task["agent_stand_in"]) == ("refund-agent", 0)
