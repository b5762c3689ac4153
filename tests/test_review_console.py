"""Review findings in the console, delivery and CLI: each test failed before its fix."""

from __future__ import annotations

import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import FIXED_NOW, SAMPLE_TRACES
from agentdeck.console.cli import main
from test_escalations_support import ingest_events, pending_events

FIRST_LINE = (SAMPLE_TRACES / "records-agent-1.jsonl").read_text().splitlines()[0]


# -- the Tasks filter's error toast --------------------------------------------

KEY_NAMES = {"[": "left_square_bracket", "]": "right_square_bracket", "/": "slash", ":": "colon", " ": "space"}


async def test_bad_filter_with_brackets_is_an_error_toast_not_a_crash(sample_db, make_app):
    """'outcome:[/]x' used to be parsed as markup by the error notification, and the app died."""
    from textual.widgets._toast import Toast

    app = make_app(sample_db)
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        await app.settled()
        await pilot.press("slash")
        await pilot.press(*(KEY_NAMES.get(ch, ch) for ch in "outcome:[/]x"))
        await pilot.press("enter")
        await pilot.pause()
        await pilot.pause()
        assert app.is_running
        shown = [str(toast.render()) for toast in app.screen.query(Toast)]
    assert app.return_code in (None, 0)
    # The toast quotes what was typed, brackets and all.
    assert any("(not '[/]x')" in text for text in shown), shown


# -- one-shot runs and a last line with no newline --------------------------------

def test_check_fails_on_a_file_whose_last_line_has_no_newline(tmp_path, capsys):
    f = tmp_path / "t.jsonl"
    f.write_text(FIRST_LINE)  # no trailing newline: nothing in it is read
    rc = main(["check", str(f)])
    out = capsys.readouterr()
    assert rc == 1
    assert f"{len(FIRST_LINE.encode())} bytes at the end of {f} have no newline yet (not ingested)" in out.err
    assert "no violations\n" not in out.out  # not the all-clear


def test_check_reports_only_the_unterminated_tail_after_complete_lines(tmp_path, capsys):
    lines = (SAMPLE_TRACES / "records-agent-1.jsonl").read_text().splitlines()[:5]
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(lines))  # four complete lines, the fifth unterminated
    rc = main(["check", str(f)])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"{len(lines[-1].encode())} bytes at the end of {f} have no newline yet" in err


def test_check_passes_a_file_ending_in_blank_space_without_a_newline(tmp_path, capsys):
    f = tmp_path / "t.jsonl"
    f.write_text(FIRST_LINE + "\n  ")  # trailing spaces hold no event: nothing was skipped
    rc = main(["check", str(f)])
    out = capsys.readouterr()
    assert "no newline" not in out.err
    assert rc == 0, out


def test_check_refuses_a_path_that_is_not_a_file_or_folder(tmp_path, capsys):
    fifo = tmp_path / "t.jsonl"
    os.mkfifo(fifo)
    rc = main(["check", str(fifo)])
    assert rc == 2
    assert "not a regular file or folder" in capsys.readouterr().err


def test_ingest_warns_about_an_unterminated_last_line_and_reads_it_once_finished(tmp_path, capsys):
    f = tmp_path / "t.jsonl"
    f.write_text(FIRST_LINE)
    db = tmp_path / "s.db"
    rc = main(["ingest", "--db", str(db), "--quiet", str(f)])
    out = capsys.readouterr()
    assert rc == 1
    assert out.out.startswith("0 events")
    assert f"{len(FIRST_LINE.encode())} bytes at the end of {f} have no newline yet (not ingested)" in out.err
    with f.open("a") as fh:
        fh.write("\n")  # the writer finishes the line: the next run imports it and is clean
    rc = main(["ingest", "--db", str(db), "--quiet", str(f)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert out.out.startswith("1 events") and "no newline" not in out.err


def test_ingest_of_a_fifo_says_so_and_fails(tmp_path, capsys):
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    rc = main(["ingest", "--db", str(tmp_path / "s.db"), "--quiet", str(fifo)])
    assert rc == 2  # unreadable input (docs/cli.md)
    assert "not a regular file or folder" in capsys.readouterr().err


def test_ingest_of_readable_files_still_exits_0(tmp_path, capsys):
    f = tmp_path / "t.jsonl"
    f.write_text(FIRST_LINE + "\n")
    rc = main(["ingest", "--db", str(tmp_path / "s.db"), "--quiet", str(f)])
    assert rc == 0, capsys.readouterr().err


def test_unread_tails_counts_what_was_read_through_a_copy(tmp_path):
    """A file's tail read through a copy of its stream is not 'unread', though the file's own row lags."""
    from agentdeck.store.db import connect
    from agentdeck.store.tailer import Tailer
    from agentdeck.store.unread import unread_tails

    lines = [ln + "\n" for ln in (SAMPLE_TRACES / "records-agent-1.jsonl").read_text().splitlines()[:8]]
    original = tmp_path / "app.jsonl"
    original.write_text("".join(lines[:6]))
    conn = connect(tmp_path / "s.db")
    Tailer(conn, [original]).poll()
    with original.open("a") as fh:
        fh.writelines(lines[6:])
    copy = tmp_path / "copy" / "app.jsonl"
    copy.parent.mkdir()
    copy.write_bytes(original.read_bytes())
    Tailer(conn, [copy]).poll()  # reads lines 7-8 from the copy, past the stream's offset
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 8
    assert unread_tails(conn, [original, copy]) == []
    with copy.open("a") as fh:
        fh.write(lines[0][:20])
    (tail,) = unread_tails(conn, [original, copy])
    assert (tail.path, tail.nbytes, tail.has_newline) == (str(copy), 20, False)
    with original.open("a") as fh:
        fh.write(lines[0])  # complete lines written after the pass: said differently
    tail = next(t for t in unread_tails(conn, [original, copy]) if t.path == str(original))
    assert tail.has_newline and "grew while it was read" in tail.describe()


# -- callback delivery: no proxies, one allowlist check ---------------------------

class Receiver:
    """A local callback endpoint that records each POST's Idempotency-Key and answers 200."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(self.headers.get("Idempotency-Key"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self.server = Server((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    rx = Receiver()
    yield rx
    rx.close()


def _decided_escalation(db: Path, url: str, folder: Path) -> str:
    """A pending escalation with this callback URL, approved in time: ready to deliver."""
    from agentdeck.store import decisions
    from agentdeck.store.db import connect

    ingest_events(db, pending_events(callback_url=url), folder)
    conn = connect(db)
    outcome = decisions.decide(conn, "esc-t-high", "approve", by="tester", reason="reviewed", now=FIXED_NOW)
    assert outcome.applied
    conn.close()
    return "esc-t-high"


def test_callback_ignores_proxy_settings_in_the_environment(sample_db, tmp_path, monkeypatch, receiver):
    """With HTTP(S)_PROXY set, the callback still goes straight to the allowlisted host."""
    from agentdeck.console.service.delivery import DeliverySettings, deliver_one
    from agentdeck.store.db import connect

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    esc = _decided_escalation(sample_db, f"{receiver.url}/cb", tmp_path / "in")
    settings = DeliverySettings(tmp_path / "box.jsonl", frozenset({f"127.0.0.1:{receiver.port}"}), attempts=1)
    conn = connect(sample_db)
    assert deliver_one(conn, esc, settings) == "delivered"
    assert len(receiver.requests) == 1


def test_callback_with_credentials_in_its_url_is_blocked(sample_db, tmp_path, receiver):
    from agentdeck.console.service.delivery import DeliverySettings, deliver_one
    from agentdeck.store.db import connect

    esc = _decided_escalation(sample_db, f"http://user:pw@127.0.0.1:{receiver.port}/cb", tmp_path / "in")
    settings = DeliverySettings(tmp_path / "box.jsonl", frozenset({f"127.0.0.1:{receiver.port}"}), attempts=1)
    conn = connect(sample_db)
    assert deliver_one(conn, esc, settings) == "blocked"
    row = conn.execute("SELECT delivery_error FROM escalations WHERE escalation_id = ?", (esc,)).fetchone()
    assert "credentials" in row[0]
    assert receiver.requests == []


# -- IPv6 allowlist entries -------------------------------------------------------

@pytest.mark.parametrize("url, allow, ok", [
    ("http://[::1]:8080/x", {"[::1]:8080"}, True),
    ("http://[::1]:8080/x", {"[::1]"}, True),
    ("http://[::1]:8080/x", {"::1"}, True),
    ("http://[::1]/x", {"[::1]:80"}, True),
    ("https://[::1]/x", {"[::1]:443"}, True),
    ("http://[0:0:0:0:0:0:0:1]:8080/x", {"[::1]:8080"}, True),  # one address, two spellings
    ("http://[2001:DB8::5]/x", {"[2001:db8::5]"}, True),
    ("http://[::1]:8081/x", {"[::1]:8080"}, False),
    ("http://[::2]:8080/x", {"[::1]:8080"}, False),
    ("http://[::1]:8080/x", {"::1:8080"}, False),  # ambiguous: a bare v6 entry has no port
    ("http://[::1]:8080/x", {"[::1"}, False),
    ("http://127.0.0.1:8080/x", {"127.0.0.1:8080"}, True),
    ("http://127.0.0.1:8080/x", {"127.0.0.1:80"}, False),
])
def test_allowlist_matches_bracketed_ipv6_with_and_without_port(url, allow, ok):
    from agentdeck.replay.hosts import check_url

    assert (check_url(url, frozenset(allow)) is None) is ok


def test_refusal_names_an_ipv6_host_in_brackets():
    from agentdeck.replay.hosts import check_url

    assert "host [::1]:8081 is not on the operator's allowlist" in check_url("http://[::1]:8081/", {"[::1]:8080"})


def test_ipv6_callback_is_delivered_when_allowlisted(sample_db, tmp_path):
    """End to end over a real IPv6 socket: the bracketed entry lets the callback through."""
    from agentdeck.console.service.delivery import DeliverySettings, deliver_one
    from agentdeck.store.db import connect

    try:
        rx = Receiver(host="::1")
    except OSError as exc:  # no IPv6 loopback on this machine
        pytest.skip(f"no IPv6 loopback: {exc}")
    try:
        esc = _decided_escalation(sample_db, f"http://[::1]:{rx.port}/cb", tmp_path / "in")
        conn = connect(sample_db)
        settings = DeliverySettings(tmp_path / "box.jsonl", frozenset({f"[::1]:{rx.port}"}), attempts=1)
        assert deliver_one(conn, esc, settings) == "delivered"
        assert len(rx.requests) == 1
    finally:
        rx.close()
