"""Orphaned escalations: a decision nobody can receive is said so before it is taken, and listed last."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from conftest import FIXED_NOW
from agentdeck.console.service.deck import DeckService
from agentdeck.console.service.reach import origin, reach, unreachable_origins
from agentdeck.console.service.settings import for_tests
from agentdeck.store.db import connect
from test_escalations_support import approving, esc_db, settle  # noqa: F401  (fixture)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _deck(db: Path, **kw) -> DeckService:
    kw.setdefault("operator", "tester")
    return DeckService(for_tests(db, **kw), clock=lambda: FIXED_NOW)


def _set_callback(db: Path, escalation_id: str, url: str | None) -> None:
    conn = connect(db)
    with conn:
        conn.execute("UPDATE escalations SET callback_url = ? WHERE escalation_id = ?", (url, escalation_id))
    conn.close()


# --- the rule, without a store ------------------------------------------------------------


def test_origin_is_scheme_host_and_port():
    assert origin("http://Agent.Example/decide") == "http://agent.example:80"
    assert origin("https://a.example:8443/x?y") == "https://a.example:8443"
    assert origin("http://[::1]:9/d") == "http://[::1]:9"
    assert origin(None) is None and origin("not a url") is None


def test_latest_attempt_per_origin_decides_unreachable():
    rows = [  # newest first
        {"callback_url": "http://a:1/x", "delivery": "delivered", "delivery_error": None},
        {"callback_url": "http://a:1/y", "delivery": "failed", "delivery_error": "ConnectError: [Errno 111] refused"},
        {"callback_url": "http://b:2/x", "delivery": "failed", "delivery_error": "ConnectTimeout: timed out"},
        {"callback_url": "http://c:3/x", "delivery": "failed", "delivery_error": "callback answered HTTP 500"},
        {"callback_url": "http://d:4/x", "delivery": "blocked", "delivery_error": "callback not called: ..."},
        {"callback_url": "http://d:4/x", "delivery": "failed", "delivery_error": "ConnectError: refused"},
    ]
    # a: back (a later success); b: gone; c: answered (someone is there); d: blocked does not count.
    assert unreachable_origins(rows) == frozenset({"http://b:2", "http://d:4"})


@pytest.mark.parametrize("url, problem, outbox, gone, orphaned, says", [
    (None, None, None, frozenset(), True, "no callback URL and there is no outbox; it is only recorded"),
    ("http://x.example/d", "host x.example:80 is not on the operator's allowlist", None, frozenset(), True,
     "Nobody will receive it: the callback is not called: host x.example:80 is not on"),
    ("http://127.0.0.1:9/d", None, None, frozenset({"http://127.0.0.1:9"}), True,
     "found nobody listening and there is no outbox; it is recorded, and POSTed to http://127.0.0.1:9/d once more"),
    ("http://127.0.0.1:9/d", None, None, frozenset(), False, "Your decision will be POSTed to http://127.0.0.1:9/d."),
    (None, None, Path("var/box.jsonl"), frozenset(), False, "Your decision will be written to var/box.jsonl."),
    ("http://127.0.0.1:9/d", None, Path("box.jsonl"), frozenset({"http://127.0.0.1:9"}), False,
     "written to box.jsonl and POSTed to http://127.0.0.1:9/d. Earlier deliveries"),
    ("http://x.example/d", "host x.example:80 is not allowed", Path("box.jsonl"), frozenset(), False,
     "written to box.jsonl. The callback is not called: host x.example:80 is not allowed."),
])
def test_reach_says_where_the_decision_goes(url, problem, outbox, gone, orphaned, says):
    r = reach(url, outbox, problem, gone)
    assert r.orphaned is orphaned
    assert says in r.sentence


# --- the service: queue order, detail, toast --------------------------------------------------


def test_orphans_are_listed_after_waiting_agents_in_deadline_order(esc_db):
    # t-high's agent listens on an allowed host; t-hostile's host is not allowed; the others have no callback.
    _set_callback(esc_db, "esc-t-high", "http://127.0.0.1:1/decide")
    _set_callback(esc_db, "esc-t-low", "http://127.0.0.1:2/decide")
    deck = _deck(esc_db, allow_hosts=frozenset({"127.0.0.1"}))
    queue = deck.escalation_queue(history=False)
    ids = [r["escalation_id"] for r in queue.rows]
    assert ids == ["esc-t-high", "esc-t-low", "esc-t-expired", "esc-t-hostile"]
    assert [queue.reach[i].orphaned for i in ids] == [False, False, True, True]
    # With an outbox nothing is orphaned and the order is the plain deadline order.
    boxed = _deck(esc_db, allow_hosts=frozenset({"127.0.0.1"}), outbox=esc_db.parent / "box.jsonl")
    queue = boxed.escalation_queue(history=False)
    assert [r["escalation_id"] for r in queue.rows] == ["esc-t-expired", "esc-t-high", "esc-t-hostile", "esc-t-low"]
    assert not any(r.orphaned for r in queue.reach.values())
    assert "written to" in boxed.escalation("esc-t-hostile").reach.sentence


def test_a_refused_callback_host_orphans_its_other_escalations_until_one_gets_through(esc_db):
    port = _free_port()  # nothing listens here: the POST is refused
    url = f"http://127.0.0.1:{port}/decide"
    _set_callback(esc_db, "esc-t-high", url)
    _set_callback(esc_db, "esc-t-low", url)
    deck = _deck(esc_db, allow_hosts=frozenset({"127.0.0.1"}))
    deck.delivery.attempts, deck.delivery.backoff, deck.delivery.timeout = 1, 0.0, 2.0
    assert deck.escalation_queue(False).reach["esc-t-low"].orphaned is False
    result = deck.decide("esc-t-low", "approve", "")
    assert result.detail["delivery"] == "failed"
    assert "Delivered" not in result.message
    view = deck.escalation("esc-t-high")
    assert view.reach.orphaned and "found nobody listening" in view.reach.sentence
    queue = deck.escalation_queue(False)
    assert all(queue.reach[i].orphaned for i in queue.reach)

    # The agent comes back on that port: the decision is POSTed once more, delivered, and the origin is live again.
    got: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = deck.decide("esc-t-high", "approve", "back online, approved")
    finally:
        server.shutdown()
        server.server_close()
    assert result.detail["delivery"] == "delivered" and result.message.endswith("Delivered to the agent.")
    assert len(got) == 1


def test_deciding_an_orphan_says_nobody_received_it(esc_db):
    deck = _deck(esc_db)
    view = deck.escalation("esc-t-hostile")
    assert view.reach.orphaned
    assert "not on the operator's allowlist" in view.reach.sentence
    result = deck.decide("esc-t-hostile", "deny", "no")
    assert result.ok and result.severity == "warning"
    assert "Nobody received it" in result.message and "it is only recorded" in result.message
    assert "Delivered to the agent" not in result.message and "Delivering" not in result.message
    # decided rows are not orphaned any more: the detail shows the delivery state instead
    assert deck.escalation("esc-t-hostile").reach is None


def test_detail_pane_says_where_the_decision_goes_literally(esc_db):
    from agentdeck.console.widgets.escalation_detail import render

    hostile = "http://127.0.0.1:5/[bold]x[/bold]?q=[@click=app.quit]"
    _set_callback(esc_db, "esc-t-low", hostile)
    deck = _deck(esc_db, allow_hosts=frozenset({"127.0.0.1"}))
    text = render(deck.escalation("esc-t-low"), FIXED_NOW).plain
    assert "Decision goes" in text and "POSTed to http://127.0.0.1:5/[bold]x[/bold]?q=[@click=app.quit]." in text
    text = render(deck.escalation("esc-t-expired"), FIXED_NOW).plain
    assert "ORPHANED" in text and "Nobody will receive it" in text


# --- as a person uses it (Pilot) -------------------------------------------------------------------


async def test_approving_an_orphan_says_so_before_and_after(esc_db, make_app):
    from textual.widgets import Static

    from agentdeck.console.widgets.reason_dialog import ReasonDialog
    from test_escalations_flow import select

    _set_callback(esc_db, "esc-t-high", "http://127.0.0.1:1/decide")  # an agent that (as far as we know) waits
    app = make_app(esc_db, operator="alice", allow_hosts=frozenset({"127.0.0.1"}))
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        table = app.screen.query_one("#esc-table")
        assert table.coordinate_to_cell_key((0, 0)).row_key.value == "esc-t-high"  # the waiting one first
        assert str(table.get_row_at(0)[0]) != "orphaned"
        assert [str(table.get_row_at(i)[0]) for i in range(1, 4)] == ["orphaned"] * 3
        await select(pilot, "esc-t-low")
        await approving(pilot)
        assert isinstance(app.screen, ReasonDialog)
        where = str(app.screen.query_one("#reason-where", Static).render())
        assert "Nobody will receive it" in where and "no outbox" in where
        await pilot.press("enter")
        await settle(pilot)
        said = [n.message for n in app._notifications]
    assert any("Nobody received it" in m for m in said), said
    assert not any("Delivering" in m or "delivering" in m or "Delivered" in m for m in said), said
    assert row_of_status(esc_db, "esc-t-low") == "approved"


def row_of_status(db: Path, escalation_id: str) -> str:
    conn = connect(db)
    try:
        return conn.execute("SELECT status FROM escalations WHERE escalation_id = ?", (escalation_id,)).fetchone()[0]
    finally:
        conn.close()


def test_a_waiting_agent_is_not_pushed_out_of_view_by_many_orphans(esc_db):
    # 600 orphans due before everything else: more than the 500 the queue shows.
    conn = connect(esc_db)
    with conn:
        conn.executemany(
            "INSERT INTO escalations (escalation_id, task_id, seq, ts, risk, risk_rank, deadline, proposed_action, "
            "callback_url) VALUES (?, 't-x', 0, ?, 'low', 1, ?, '{}', ?)",
            [(f"esc-orphan-{i:03d}", FIXED_NOW - 10, FIXED_NOW + i, None if i % 2 else "http://gone.example/d")
             for i in range(600)])
    conn.close()
    _set_callback(esc_db, "esc-t-low", "http://127.0.0.1:3/decide")
    queue = _deck(esc_db, allow_hosts=frozenset({"127.0.0.1"})).escalation_queue(history=False)
    assert queue.total == 604 and len(queue.rows) == 500
    ids = [r["escalation_id"] for r in queue.rows]
    assert ids[0] == "esc-t-low" and not queue.reach["esc-t-low"].orphaned
    assert all(queue.reach[i].orphaned for i in ids[1:])
    assert ids[1:4] == ["esc-t-expired", "esc-orphan-000", "esc-orphan-001"]  # deadline order within the orphans


def _orphans_on_screen(esc_db, make_app, snap_compare, size, keys) -> bool:
    """One agent that waits (allowed callback) and the orphans, after ``keys``, as a snapshot at ``size``."""
    _set_callback(esc_db, "esc-t-low", "http://127.0.0.1:8765/decide")

    async def run_before(pilot) -> None:
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    app = make_app(esc_db, allow_hosts=frozenset({"127.0.0.1"}))
    return snap_compare(app, terminal_size=size, run_before=run_before)


def test_orphan_queue_and_dialog_at_80x24(esc_db, make_app, snap_compare):
    # The dialog for an orphan says nobody will get the decision.
    assert _orphans_on_screen(esc_db, make_app, snap_compare, (80, 24), ("2", "down", "a"))


def test_orphan_queue_at_80x24(esc_db, make_app, snap_compare):
    assert _orphans_on_screen(esc_db, make_app, snap_compare, (80, 24), ("2",))


def test_orphan_queue_and_dialog_at_160x45(esc_db, make_app, snap_compare):
    # The queue beside the detail, the dialog over it: the queue's cells are updated in place
    # (EscalationTable.show), so its column widths no longer depend on when the dialog opened.
    assert _orphans_on_screen(esc_db, make_app, snap_compare, (160, 45), ("2", "down", "a"))
