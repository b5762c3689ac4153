"""`agentdeck notify` as on-call runs it: real subprocesses, a local receiver, a fixed clock (--now)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import FIXED_NOW
from notify_support import Receiver
from test_escalations_support import esc_db  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


def notify(*args: str, env: dict | None = None, tmp: Path) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("AGENTDECK_")}
    full["XDG_CONFIG_HOME"] = str(tmp / "no-config")  # never the developer's own config file
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "agentdeck.console.cli", "notify", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=120)


def test_once_sends_what_is_due_and_a_second_run_sends_nothing(esc_db, tmp_path):
    with Receiver() as rx:
        args = ["--db", str(esc_db), "--once", "--notify", rx.url(), "--allow-host", rx.host, "--now", str(FIXED_NOW)]
        out = notify(*args, tmp=tmp_path)
        assert out.returncode == 0, out.stderr
        sent = len(rx.requests)
        assert sent >= 3 and f"{sent} sent" in out.stdout
        again = notify(*args, tmp=tmp_path)
        assert again.returncode == 0 and len(rx.requests) == sent


def test_a_host_off_the_allowlist_is_never_called_and_exits_1(esc_db, tmp_path):
    with Receiver() as rx:
        out = notify("--db", str(esc_db), "--notify", rx.url(), "--now", str(FIXED_NOW), tmp=tmp_path)
        assert out.returncode == 1
        assert rx.requests == []
        assert "will not be called" in out.stderr and "allowlist" in out.stderr and "blocked" in out.stdout


def test_routes_and_allowed_hosts_from_the_config_file(esc_db, tmp_path):
    with Receiver() as rx:
        config = tmp_path / "cfg" / "agentdeck" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f'allow_hosts = ["{rx.host}"]\n[notify]\nroutes = ["slack+{rx.url("/services/x")}"]\n'
                          '[notify.rules]\nescalation = "high"\ncanary = "off"\n')
        out = notify("--db", str(esc_db), "--now", str(FIXED_NOW), tmp=tmp_path,
                     env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
        assert out.returncode == 0, out.stderr
        assert [r["path"] for r in rx.requests] == ["/services/x"] and "text" in rx.requests[0]["body"]


def test_usage_errors_exit_2_with_the_reason(esc_db, tmp_path):
    out = notify("--db", str(esc_db), tmp=tmp_path)
    assert out.returncode == 2 and "no route to send to" in out.stderr
    out = notify("--db", str(esc_db), "--notify", "pagerduty+https://events.pagerduty.com/v2/enqueue", tmp=tmp_path)
    assert out.returncode == 2 and "routing key" in out.stderr and "Traceback" not in out.stderr
    out = notify("--db", str(tmp_path / "none.db"), "--notify", "http://127.0.0.1:9/x", tmp=tmp_path)
    assert out.returncode == 2 and "no store" in out.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[notify]\nrules = { deadline_minutes = -3 }\n")
    out = notify("--db", str(esc_db), "--config", str(bad), "--notify", "http://127.0.0.1:9/x", tmp=tmp_path)
    assert out.returncode == 2 and "rules.deadline_minutes" in out.stderr


def test_follow_keeps_sending_new_escalations_until_interrupted(esc_db, tmp_path):
    import signal
    import threading
    import time

    from test_escalations_support import _task, ingest_events

    with Receiver() as rx:
        full = {k: v for k, v in os.environ.items() if not k.startswith("AGENTDECK_")}
        full["XDG_CONFIG_HOME"] = str(tmp_path / "no-config")
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentdeck.console.cli", "notify", "--db", str(esc_db), "--follow",
             "--interval", "0.2", "--notify", rx.url(), "--allow-host", rx.host],
            cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []

        def read_out() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)

        reader = threading.Thread(target=read_out, daemon=True)
        reader.start()
        try:
            def wait_for(predicate, timeout: float = 60) -> bool:
                end = time.monotonic() + timeout
                while time.monotonic() < end:
                    if predicate():
                        return True
                    time.sleep(0.05)  # polling a condition, bounded: not papering over a race
                return False

            # The sample escalations' deadlines are in the past by wall clock: a new one, due in an hour.
            now = time.time()
            ingest_events(esc_db, _task("t-live", raised=now, deadline=now + 3600, risk="high", system="iam",
                                        operation="grant_role", params={}), tmp_path / "live")
            assert wait_for(lambda: any(b["subject"] == "esc-t-live" for b in rx.bodies()))
            # Interrupted once it has said so: the receiver has the body a moment before the tick that sent it
            # returns and prints (interrupted in between, it rightly exits 130 without the line: a loaded
            # machine made this test fail that way).
            assert wait_for(lambda: any("1 sent" in line for line in lines))
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
            reader.join(timeout=60)
            err = proc.stderr.read() if proc.stderr else ""
            out = "".join(lines)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 130, err
        assert [b["subject"] for b in rx.bodies()].count("esc-t-live") == 1
        assert "Traceback" not in err and "1 sent" in out
