"""On-call settings reach the console: approver rules and the two-person rule on the decide key,
--read-only on every acting key, notifications ticking, and `agentdeck config` saying where each value came from."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from agentdeck.console.cli import main
from agentdeck.console.notify.settings import NotifySettings
from agentdeck.console.service.deck import DeckService
from agentdeck.console.service.settings import for_tests
from agentdeck.store.approvers import ApproverRules

from conftest import FIXED_NOW
from test_escalations_support import audit_records, esc_db, row_of, settle  # noqa: F401


def deck(db, user, **kw) -> DeckService:
    return DeckService(for_tests(db, operator=user, **kw), clock=lambda: FIXED_NOW)


def _as_os_user(monkeypatch, name: str) -> None:
    from agentdeck.store import origin

    monkeypatch.setattr(origin.Origin, "current", classmethod(lambda cls, env=None: cls(os_user=name)))


def test_a_critical_approval_takes_two_distinct_people(esc_db, monkeypatch):
    rules = ApproverRules(two_person=["high"])
    alice, bob = deck(esc_db, "alice", approvers=rules), deck(esc_db, "bob", approvers=rules)
    _as_os_user(monkeypatch, "alice")
    first = alice.decide("esc-t-high", "approve", "looks right")
    assert first.ok and "second" in first.message and row_of(esc_db, "esc-t-high")["status"] == "pending"
    again = alice.decide("esc-t-high", "approve", "me again")
    assert row_of(esc_db, "esc-t-high")["status"] == "pending", again.message
    # Another name on the same OS account is the same person (an operator can pick a name, not an account).
    assert "needs a second, different approver" in (bob.approval_refusal("esc-t-high") or "")
    _as_os_user(monkeypatch, "bob")
    assert bob.approval_refusal("esc-t-high") is None
    second = bob.decide("esc-t-high", "approve", "agreed")
    assert second.ok and row_of(esc_db, "esc-t-high")["status"] == "approved"
    assert {r["actor"] for r in audit_records(esc_db, "esc-t-high")} >= {"alice", "bob"}


def test_a_non_approver_is_refused_with_the_rule_and_nothing_is_written(esc_db):
    rules = ApproverRules.model_validate({"rules": [{"name": "iam-leads", "users": ["carol"], "systems": ["iam"]}]})
    alice = deck(esc_db, "alice", approvers=rules)
    refusal = alice.approval_refusal("esc-t-high")
    assert refusal == "alice may not approve high risk on iam: no approver rule names alice"
    before = len(audit_records(esc_db, "esc-t-high"))
    result = alice.decide("esc-t-high", "approve", "please")
    assert not result.ok and row_of(esc_db, "esc-t-high")["status"] == "pending"
    assert len(audit_records(esc_db, "esc-t-high")) == before


def test_read_only_refuses_every_action_and_decides_nothing_by_itself(esc_db):
    watcher = deck(esc_db, "watcher", read_only=True)
    for result in (watcher.decide("esc-t-low", "deny", "no"), watcher.retry_delivery("esc-t-low"),
                   watcher.prune()):
        assert not result.ok and "Read-only console" in result.message
    assert watcher.sweep_expired() == 0 and watcher.startup(True) == 0
    assert row_of(esc_db, "esc-t-expired")["status"] == "pending"  # past its deadline, but this console only watches
    assert row_of(esc_db, "esc-t-low")["status"] == "pending"
    assert watcher.approval_refusal("esc-t-low") == "this console is read-only (--read-only)"


async def test_read_only_keys_say_so_and_open_no_dialog(esc_db, make_app):
    from agentdeck.console.widgets.reason_dialog import ReasonDialog

    app = make_app(esc_db, read_only=True)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        for key in ("a", "d"):
            await pilot.press(key)
            await settle(pilot)
            assert not isinstance(app.screen, ReasonDialog)
        assert any("Read-only console" in str(n.message) for n in app._notifications)
    assert row_of(esc_db, "esc-t-low")["status"] == "pending"


class _Hook(http.server.BaseHTTPRequestHandler):
    posts: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).posts.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    _Hook.posts = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_console_notifies_a_new_escalation_once(esc_db, hook):
    notify = NotifySettings().with_routes([f"http://{hook}/hook"])
    console = deck(esc_db, "alice", notify=notify, allow_hosts=frozenset({hook}))
    first = console.notify_tick()
    assert first.sent >= 1 and not first.problems
    count = len(_Hook.posts)
    again = deck(esc_db, "bob", notify=notify, allow_hosts=frozenset({hook})).notify_tick()  # a second console
    assert again.sent == 0 and len(_Hook.posts) == count
    assert any("esc-t-low" in json.dumps(p) for p in _Hook.posts)


def test_config_says_where_each_value_came_from_and_never_prints_a_webhook(tmp_path, capsys, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('user = "alice"\nread_only = true\n[notify]\n'
                      'routes = ["slack+https://hooks.slack.com/services/T000/B000/SECRETSECRET"]\n'
                      '[approvers]\ntwo_person = ["critical"]\n')
    monkeypatch.setenv("AGENTDECK_ON_EXPIRY", "keep")
    monkeypatch.delenv("AGENTDECK_USER", raising=False)
    assert main(["config", "--config", str(config), "--db", str(tmp_path / "s.db"), "--notify", "bell", "--json"]) == 0
    out = capsys.readouterr().out
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["db"]["source"] == "flag"
    assert rows["user"]["value"] == "alice" and rows["user"]["source"] == f"config {config}"
    assert rows["on_expiry"]["source"] == "env AGENTDECK_ON_EXPIRY"
    assert rows["read_only"]["value"] == "True"
    assert "flag --notify" in rows["notify"]["source"] and "bell" in rows["notify"]["value"]
    assert "SECRET" not in out
    config.write_text('read_only = "perhaps"\n')
    assert main(["config", "--config", str(config)]) == 2
    assert "read_only (config" in capsys.readouterr().err
