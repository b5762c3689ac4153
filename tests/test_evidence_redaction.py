"""One redaction policy (issue 10 item 6): names at any depth and in lists, value shapes, configurable;
applied to every export; compensation plans stored masked; revealing a value is audited first."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentdeck.replay import compensate
from agentdeck.replay.evidence import export
from agentdeck.replay.redact import MARK, RedactionPolicy, configure, luhn_ok, policy, redact
from agentdeck.replay.reveal import RevealError, reveal
from agentdeck.store import audit
from agentdeck.store.db import connect

from conftest import FIXED_NOW

CARD = "4111 1111 1111 1111"  # a test Visa number: Luhn-valid
SECRETS = {
    "secret_key": "wJalrXUtnFEMI-not-a-pattern",
    "credentials": {"user": "svc-bot", "pw": "correct horse battery"},
    "passwords": ["first-one", "second-one"],
    "session": "a81f09c2e7d4",
    "config": {"db": {"Password": "nested-deep-pw"}},
    "clientSecret": "camel-case-secret",
    "X-Api-Key": "header-style-key",
    "note": f"card {CARD} on file",
    "dsn": "postgres://app:s3cretpass@db.internal/prod",
    "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
}
LEAKS = ["wJalrXUtnFEMI", "svc-bot", "correct horse", "first-one", "second-one", "a81f09c2e7d4", "nested-deep-pw",
         "camel-case-secret", "header-style-key", CARD, "s3cretpass", "MIIEowIBAAKCAQEA", "dozjgNryP4J3"]
KEPT = {"idempotency_key": "undo-act-1", "tokens_in": 1200, "token_count": 3, "max_tokens": 500, "auth_type": "basic",
        "order": "order 4111111111111112 (not a card: Luhn fails)", "ts_ms": "1795600000000"}


def test_the_cases_the_issue_found_are_masked_and_the_look_alikes_kept():
    clean, n = redact({**SECRETS, **KEPT})
    text = json.dumps(clean)
    for leak in LEAKS:
        assert leak not in text, leak
    assert clean["passwords"] == [MARK, MARK] and clean["credentials"] == {"user": MARK, "pw": MARK}
    assert {k: clean[k] for k in KEPT} == KEPT
    assert n >= len(LEAKS)


def test_the_policy_is_extended_by_configuration_and_never_loses_a_built_in():
    custom = policy(extra_keys=["ssn", "mothers maiden name"], extra_patterns=[r"ACME-\d{6}"])
    clean, _ = custom.redact({"SSN": "078-05-1120", "mothersMaidenName": "Smith", "ref": "see ACME-123456",
                              "password": "still-masked"})
    assert clean == {"SSN": MARK, "mothersMaidenName": MARK, "ref": f"see {MARK}", "password": MARK}
    with pytest.raises(ValueError, match="not a regular expression"):
        policy(extra_patterns=["(unclosed"])
    # Settings can build it from plain data (a config file).
    assert RedactionPolicy.model_validate({"extra_keys": ["ssn"]}).is_secret_key("customer_ssn")


def test_configure_makes_the_policy_apply_to_every_export(sample_db):
    conn = connect(sample_db)
    row = conn.execute("SELECT id, payload FROM events WHERE task_id = 'task-0001' AND kind = 'tool_result'").fetchone()
    event = json.loads(row["payload"])
    event["output"]["employee_number"] = "E-778899"
    conn.execute("UPDATE events SET payload = ? WHERE id = ?", (json.dumps(event), row["id"]))
    previous = configure(policy(extra_keys=["employee_number"]))
    try:
        for fmt in ("json", "md", "scenario"):
            text, _ = export(conn, "task-0001", fmt=fmt, out=None, operator="a", now=FIXED_NOW)
            assert "E-778899" not in text, fmt
    finally:
        configure(previous)
    text, _ = export(conn, "task-0001", fmt="json", out=None, operator="a", now=FIXED_NOW)
    assert "E-778899" in text  # the default policy does not know this name


@pytest.mark.parametrize("fmt", ["json", "md", "scenario"])
def test_no_export_carries_the_issues_secrets(sample_db, fmt):
    conn = connect(sample_db)
    row = conn.execute("SELECT id, payload FROM events WHERE task_id = 'task-0001' AND kind = 'tool_result'").fetchone()
    event = json.loads(row["payload"])
    event["output"].update(SECRETS)
    conn.execute("UPDATE events SET payload = ? WHERE id = ?", (json.dumps(event), row["id"]))
    text, _ = export(conn, "task-0001", fmt=fmt, out=None, operator="a", now=FIXED_NOW)
    for leak in LEAKS:
        assert leak not in text, leak


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=13, max_size=19))
def test_luhn_valid_card_numbers_with_a_network_prefix_are_masked(digits):
    digits = [4] + digits[1:]
    check = next(d for d in range(10) if luhn_ok("".join(map(str, digits[:-1] + [d]))))
    number = "".join(map(str, digits[:-1] + [check]))
    grouped = " ".join(number[i:i + 4] for i in range(0, len(number), 4))
    for text in (number, grouped, f"paid with {grouped}."):
        assert number not in json.dumps(redact({"note": text})[0])
        assert redact({"note": text})[0]["note"].count(MARK) == 1


# ---- compensation plans: executed with the real headers, stored masked ---------------------------


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append(dict(self.headers))
        body = json.dumps({"ok": True, "echo_token": "sk-live-0123456789abcdefghijkl"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def recorder():
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_compensation_runs_with_the_real_header_but_stores_it_masked(sample_db, recorder):
    conn = connect(sample_db)
    action_id = "act-0001"
    hook = json.loads(conn.execute("SELECT compensation FROM actions WHERE action_id = ?", (action_id,)).fetchone()[0])
    hook.update(url=f"http://{recorder}/compensate", headers={"Authorization": "Bearer real-token-0123456789",
                                                              "X-Session": "sess-abcdef"})
    conn.execute("UPDATE actions SET compensation = ? WHERE action_id = ?", (json.dumps(hook), action_id))
    allow = frozenset({recorder})
    plan = compensate.prepare(conn, action_id, allow)
    assert isinstance(plan, compensate.Plan)
    out = compensate.commit(conn, plan, operator="maria", now=FIXED_NOW, allow_hosts=allow)
    assert out.ok
    sent = {k.lower(): v for k, v in _Recorder.seen[0].items()}
    assert sent["authorization"] == "Bearer real-token-0123456789" and sent["x-session"] == "sess-abcdef"
    stored = conn.execute("SELECT plan, response_body FROM compensations WHERE action_id = ?", (action_id,)).fetchone()
    assert "real-token-0123456789" not in stored["plan"] and "sess-abcdef" not in stored["plan"]
    assert json.loads(stored["plan"])["headers"]["Idempotency-Key"] == plan.idempotency_key  # not a secret
    assert "sk-live-0123456789" not in stored["response_body"]
    assert audit.verify(conn)[1] == []


# ---- reveal: one value, recorded first --------------------------------------------------------------


def test_reveal_returns_the_value_after_committing_its_audit_record(sample_db):
    conn = connect(sample_db)
    row = conn.execute("SELECT id, payload FROM events WHERE task_id = 'task-0001' AND kind = 'tool_result'").fetchone()
    event = json.loads(row["payload"])
    event["output"]["credentials"] = {"pw": "open-sesame"}
    conn.execute("UPDATE events SET payload = ? WHERE id = ?", (json.dumps(event), row["id"]))

    other = connect(sample_db)  # another connection sees only what is committed
    value = reveal(conn, event_id=row["id"], path=["output", "credentials", "pw"], by="maria", now=FIXED_NOW,
                   reason="checking the agent used the right account")
    assert value == "open-sesame"
    rec = other.execute("SELECT actor, kind, subject, detail FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    assert (rec["actor"], rec["kind"], rec["subject"]) == ("maria", "secret.reveal", "task-0001")
    detail = json.loads(rec["detail"])
    assert detail["path"] == ["output", "credentials", "pw"] and "open-sesame" not in rec["detail"]
    assert audit.verify(conn)[1] == []


def test_reveal_of_nothing_records_nothing(sample_db):
    conn = connect(sample_db)
    before = audit.head(conn)
    with pytest.raises(RevealError, match="no value at .output.nope"):
        reveal(conn, event_id=1, path=["output", "nope"], by="maria", now=FIXED_NOW)
    with pytest.raises(RevealError, match="no event"):
        reveal(conn, event_id=10**9, path=[], by="maria", now=FIXED_NOW)
    assert audit.head(conn) == before


def test_card_shaped_digits_inside_a_hash_or_an_id_are_kept():
    inside = {"hash": "ab4532015112830366cd", "id": "act-4532015112830366", "uuid": "x4532015112830366"}
    assert luhn_ok("4532015112830366")
    assert redact(inside) == (inside, 0)
    assert redact({"note": "card 4532015112830366, thanks"})[0]["note"] == f"card {MARK}, thanks"


def test_rows_stored_in_clear_before_are_masked_once(sample_db):
    conn = connect(sample_db)
    clear = {"kind": "http", "method": "POST", "url": "http://127.0.0.1:9/c", "body": None, "handler": None,
             "args": {}, "idempotency_key": "k", "headers": {"Authorization": "Bearer old-token-0123456789",
                                                             "Idempotency-Key": "k"}}
    conn.execute("""INSERT INTO compensations (action_id, task_id, attempt, requested_by, requested_at, target, plan,
                    idempotency_key, status) VALUES ('act-x', 'task-x', 1, 'old', 1.0, 'POST http://u:pw@h/c', ?,
                    'k', 'failed')""", (json.dumps(clear),))
    assert compensate.mask_stored_plans(conn) == 1
    row = conn.execute("SELECT plan, target FROM compensations WHERE action_id = 'act-x'").fetchone()
    assert "old-token" not in row["plan"] and json.loads(row["plan"])["headers"]["Idempotency-Key"] == "k"
    assert ":pw@" not in row["target"]
    assert compensate.mask_stored_plans(conn) == 0  # nothing left to mask
