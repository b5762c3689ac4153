"""Helpers for the receiver tests: spans from the real SDK, certificates made with openssl."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentdeck.store.db import connect

TOKEN_A = "tok-a-0123456789abcdef"
TOKEN_B = "tok-b-fedcba9876543210"


def agent_spans(agent: str = "refund-agent", tools: int = 1) -> list[ReadableSpan]:
    """One agent invocation as the SDK records it: an invoke_agent span and its tool spans."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": f"{agent}-service"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("receiver-tests")
    with tracer.start_as_current_span(f"invoke_agent {agent}", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent,
    }):
        for n in range(tools):
            with tracer.start_as_current_span(f"execute_tool lookup{n}", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": f"lookup{n}",
            }):
                pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def trace_hex(spans: list[ReadableSpan]) -> str:
    return format(spans[0].context.trace_id, "032x")


def tasks(db: Path) -> dict[str, dict]:
    conn = connect(db)
    try:
        return {r["task_id"]: dict(r) for r in conn.execute("SELECT * FROM tasks")}
    finally:
        conn.close()


def rejects(db: Path) -> list[dict]:
    conn = connect(db)
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM rejects ORDER BY id")]
    finally:
        conn.close()


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Certs:
    """A self-signed server certificate, and a CA with a client certificate it signed."""

    def __init__(self, folder: Path) -> None:
        if shutil.which("openssl") is None:
            pytest.skip("the openssl command is not installed (needed to make test certificates)")
        self.folder = folder
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
        # The server's certificate signs itself; clients trust it by naming the file.
        _openssl("req", "-x509", *ec, "-keyout", "server.key", "-out", "server.pem", "-days", "2",
                 "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", cwd=folder)
        # Clients' certificates come from a CA of their own.
        _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca", cwd=folder)
        _openssl("req", *ec, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=host-b", cwd=folder)
        _openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", "client.pem", "-days", "2", cwd=folder)
        # A client certificate from a CA the server does not trust.
        _openssl("req", "-x509", *ec, "-keyout", "rogue.key", "-out", "rogue.pem", "-days", "2", "-subj", "/CN=rogue", cwd=folder)

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        stem, _, ext = name.rpartition("_")
        return str(self.folder / f"{stem}.{ext}")
