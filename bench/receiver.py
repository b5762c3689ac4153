"""What authentication and TLS cost the OTLP/HTTP receiver: spans/s over plain
HTTP (the baseline), with a bearer token, over TLS, and over mutual TLS with a
token, in the same run, on the same requests.

    .venv/bin/python bench/receiver.py [--traces 1000] [--batch 60] [--repeat 3]

The spans are bench/otlp.py's (6 spans, 11 events a trace), sent as protobuf
by one keep-alive client, as an SDK's batch processor sends them. Each mode
runs ``--repeat`` times into a fresh store; the median is printed with its
ratio to plain HTTP, and the load average before and after (the machine may
be shared: compare ratios, not absolute figures). Certificates are made with
the openssl command; without it the TLS rows are skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import ssl
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from agentdeck.store import otlp
from agentdeck.store.db import connect
from agentdeck.store.otlp_auth import parse_tokens, tls_context
from agentdeck.store.otlp_receiver import Receiver

TOKEN = "bench-token-0123456789abcdef"


def _bench_otlp():
    spec = importlib.util.spec_from_file_location("bench_otlp", Path(__file__).with_name("otlp.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_certs(folder: Path) -> bool:
    if shutil.which("openssl") is None:
        return False
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    run("req", "-x509", *ec, "-keyout", "server.key", "-out", "server.pem", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1")
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=bench-ca")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "client.key",
        "-out", "client.csr", "-subj", "/CN=bench-client")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "client.pem", "-days", "2")
    return True


def send(endpoint: str, bodies: list[bytes], headers: dict[str, str], verify: ssl.SSLContext | bool) -> float:
    with httpx.Client(timeout=60, verify=verify) as http:
        started = time.perf_counter()
        for body in bodies:
            r = http.post(endpoint, content=body, headers={"Content-Type": "application/x-protobuf", **headers})
            if r.status_code != 200 or r.content:
                raise SystemExit(f"unexpected answer {r.status_code}: {r.text[:200]}")
        return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--traces", type=int, default=1000)
    p.add_argument("--batch", type=int, default=60, help="spans per request")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    b = _bench_otlp()
    spans = [s for n in range(args.traces) for s in b.trace_spans(n)]
    bodies = [b.to_protobuf(d) for d in b.requests(spans, args.batch)]
    n_spans = len(spans)
    print(f"{n_spans} spans in {len(bodies)} protobuf requests of {args.batch}; {args.repeat} runs a mode; "
          f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        have_tls = make_certs(tmp)
        tokens = parse_tokens(f"bench {TOKEN}\n")
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        modes: list[tuple[str, dict, dict, ssl.SSLContext | bool]] = [
            ("plain HTTP (baseline)", {}, {}, False),
            ("HTTP + bearer token", {"tokens": tokens}, bearer, False),
        ]
        if have_tls:
            client = ssl.create_default_context(cafile=str(tmp / "server.pem"))
            mutual = ssl.create_default_context(cafile=str(tmp / "server.pem"))
            mutual.load_cert_chain(str(tmp / "client.pem"), str(tmp / "client.key"))
            modes += [
                ("TLS", {"tls": tls_context(tmp / "server.pem", tmp / "server.key")}, {}, client),
                ("TLS + bearer token", {"tls": tls_context(tmp / "server.pem", tmp / "server.key"), "tokens": tokens},
                 bearer, client),
                ("mutual TLS", {"tls": tls_context(tmp / "server.pem", tmp / "server.key", tmp / "ca.pem")}, {}, mutual),
            ]
        else:
            print("(openssl not found: TLS rows skipped)")
        results: dict[str, list[float]] = {label: [] for label, *_ in modes}
        run = 0
        for _round in range(args.repeat):  # modes interleaved, so a change in load hits them alike
            for label, options, headers, verify in modes:
                run += 1
                db = tmp / f"run{run}.db"
                with Receiver(db, "127.0.0.1", 0, post_commit=[], **options) as receiver:
                    seconds = send(receiver.endpoint, bodies, headers, verify)
                conn = connect(db)
                # (span parts: per part in otlp_spans, or a trace's in one otlp_claims row)
                parts = [row[2] for row in conn.execute("SELECT trace_id, span_id, part FROM otlp_spans")]
                parts += [row[2] for trace, text in conn.execute("SELECT trace_id, parts FROM otlp_claims")
                          for row in otlp._part_rows(trace, text)]
                stored = sum(1 for part in parts if part in ("start", "call", "step"))
                conn.close()
                assert stored == n_spans, (label, stored, n_spans)
                results[label].append(seconds)
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{db}{suffix}").unlink(missing_ok=True)

    base = statistics.median(results[modes[0][0]])
    print(f"{'mode':26} {'median s':>9} {'spans/s':>10} {'vs plain':>9}   runs (s)")
    for label, times in results.items():
        median = statistics.median(times)
        print(f"{label:26} {median:9.2f} {n_spans / median:10,.0f} {base / median:8.2f}x   "
              + " ".join(f"{t:.2f}" for t in times))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
