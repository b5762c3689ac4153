"""`agentdeck receive` refuses what it cannot do safely or at all, with exit 2,
and exits 130 when interrupted."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import httpx
import pytest
from receiver_support import TOKEN_A, TOKEN_B, Certs

from agentdeck.console.cli import main


def run(capsys, *argv: str) -> tuple[int, str]:
    status = main(["receive", *argv])
    return status, capsys.readouterr().err


def test_a_network_address_needs_tokens_or_client_certificates(tmp_path, capsys):
    status, err = run(capsys, "--db", str(tmp_path / "s.db"), "--host", "0.0.0.0", "--port", "0")
    assert status == 2
    assert "refusing to listen on 0.0.0.0 without --token-file or --tls-client-ca" in err and "--insecure" in err


@pytest.mark.parametrize("argv, reason", [
    (["--tls-cert", "x.pem"], "--tls-cert and --tls-key go together"),
    (["--tls-client-ca", "ca.pem"], "--tls-client-ca needs --tls-cert"),
    (["--token-file", "/nonexistent/tokens"], "cannot read the token file /nonexistent/tokens"),
    (["--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"], "cannot use the certificate"),
])
def test_unusable_settings_exit_2_with_the_reason(tmp_path, capsys, argv, reason):
    status, err = run(capsys, "--db", str(tmp_path / "s.db"), "--port", "0", *argv)
    assert status == 2 and reason in err


def test_a_bad_token_file_names_the_line_and_not_the_token(tmp_path, capsys):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"host-a {TOKEN_A}\nhost-b short-secret\n")
    status, err = run(capsys, "--db", str(tmp_path / "s.db"), "--port", "0", "--token-file", str(tokens))
    assert status == 2 and "line 2" in err and "short-secret" not in err


def test_a_port_in_use_exits_2(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, err = run(capsys, "--db", str(tmp_path / "s.db"), "--port", str(port))
    assert status == 2 and f"cannot listen on 127.0.0.1:{port}" in err


def test_interrupted_exits_130_and_says_what_it_received(tmp_path):
    certs = Certs(tmp_path)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"host-a {TOKEN_A}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentdeck.console.cli", "receive", "--db", str(tmp_path / "s.db"), "--port", "0",
         "--token-file", str(tokens), "--tls-cert", certs.server_pem, "--tls-key", certs.server_key],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once listening
        assert first.startswith("receiving OTLP/HTTP traces at https://127.0.0.1:") and "1 token(s)" in first
        endpoint = first.split(" at ")[1].split(" into ")[0]
        r = httpx.post(endpoint, content=b"{}", headers={"Content-Type": "application/json"}, verify=False)
        assert r.status_code == 401
        proc.send_signal(signal.SIGINT)
        out, _err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "1 unauthorized" in out


def test_the_consoles_receiver_stays_on_loopback(tmp_path):
    from agentdeck.console.commands.receive import start_for_app

    class App:
        db_path = tmp_path / "s.db"
        is_running = False

    with pytest.raises(ValueError, match="not a loopback address"):
        start_for_app(App(), "0.0.0.0:0")
    receiver = start_for_app(App(), "127.0.0.1:0")
    try:
        assert receiver.endpoint.startswith("http://127.0.0.1:")
    finally:
        receiver.close()


@pytest.mark.parametrize("argv", [["--max-connections", "0"], ["--port", "70000"], ["--request-timeout", "nan"]])
def test_nonsense_numbers_are_usage_errors(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(["receive", "--db", str(tmp_path / "s.db"), *argv])
    assert info.value.code == 2 and argv[0] in capsys.readouterr().err


def test_sighup_reloads_the_token_file(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"host-a {TOKEN_A}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentdeck.console.cli", "receive", "--db", str(tmp_path / "s.db"), "--port", "0",
         "--token-file", str(tokens)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        endpoint = proc.stdout.readline().split(" at ")[1].split(" into ")[0]

        def status(token: str) -> int:
            return httpx.post(endpoint, content=b"{}", timeout=10,
                              headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"}).status_code

        assert (status(TOKEN_A), status(TOKEN_B)) == (200, 401)
        tokens.write_text(f"host-b {TOKEN_B}\n")  # host-a's token revoked, host-b's issued
        proc.send_signal(signal.SIGHUP)
        assert proc.stdout.readline().startswith("reloaded 1 token(s)")
        assert (status(TOKEN_A), status(TOKEN_B)) == (401, 200)
        tokens.write_text("host-c short\n")  # a broken file changes nothing
        proc.send_signal(signal.SIGHUP)
        lines = [proc.stderr.readline() for _ in range(2)]  # after the log line of the refusals above
        assert "refused 1 request(s) with a missing or wrong token" in lines[0]
        assert "token file not reloaded" in lines[1]
        assert (status(TOKEN_A), status(TOKEN_B)) == (401, 200)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0  # stopped by the service manager: a clean stop
