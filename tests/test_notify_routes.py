"""Route specs, settings, and the Slack and PagerDuty payloads as their documentation describes them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from conftest import FIXED_NOW
from agentdeck.console.notify import NotifySettings, RouteSettings, ack, tick, view
from agentdeck.console.notify.payloads import PD_SUMMARY_MAX, dedup_key
from agentdeck.store import decisions
from agentdeck.store.db import connect
from agentdeck.store.origin import Origin
from notify_support import Receiver
from test_escalations_support import _task, esc_db, ingest_events  # noqa: F401

PD_SEVERITIES = {"critical", "error", "warning", "info"}


@pytest.mark.parametrize("spec,kind,url,key", [
    ("https://hooks.example.com/a", "webhook", "https://hooks.example.com/a", None),
    ("slack+https://hooks.slack.com/services/T0/B0/XYZ", "slack", "https://hooks.slack.com/services/T0/B0/XYZ", None),
    ("pagerduty+https://events.pagerduty.com/v2/enqueue?routing_key=R0ut1ng",
     "pagerduty", "https://events.pagerduty.com/v2/enqueue", "R0ut1ng"),
    ("bell", "bell", None, None),
])
def test_route_specs(spec, kind, url, key):
    route = RouteSettings.model_validate(spec)
    assert (route.type, route.url, route.routing_key) == (kind, url, key)
    # What the console shows (or a log line prints) never holds a URL path (Slack's secret) or the routing key.
    assert "XYZ" not in route.label and "R0ut1ng" not in route.label
    shown = repr(route) + NotifySettings(routes=[route]).describe() + repr(NotifySettings(routes=[route]))
    assert "XYZ" not in shown and "R0ut1ng" not in shown


@pytest.mark.parametrize("spec,message", [
    ("pagerduty+https://events.pagerduty.com/v2/enqueue", "needs a routing key"),
    ("ftp://example.com/x", r"not an http\(s\) URL"),
    ("slack+", "needs a URL"),
    ({"type": "bell", "url": "http://x"}, "has no URL"),
    ({"url": "http://x", "rules": ["everything"]}, "rules"),
])
def test_bad_routes_are_clear_errors(spec, message):
    with pytest.raises(ValidationError, match=message):
        RouteSettings.model_validate(spec)


def test_the_config_tables_shape():
    import tomllib

    table = tomllib.loads("""
        allow_hosts = ["hooks.slack.com"]
        routes = ["slack+https://hooks.slack.com/services/T/B/X",
                  {url = "https://events.pagerduty.com/v2/enqueue", type = "pagerduty", routing_key = "K", rules = ["escalation", "deadline"]}]
        [rules]
        escalation = "high"
        deadline_minutes = 10
        canary = "rollback"
    """)
    s = NotifySettings.model_validate(table)
    assert [r.type for r in s.routes] == ["slack", "pagerduty"] and s.routes[1].rules == ["escalation", "deadline"]
    assert (s.rules.escalation, s.rules.deadline_minutes, s.rules.canary) == ("high", 10, "rollback")
    with pytest.raises(ValidationError, match="deadline_minutes"):
        NotifySettings.model_validate({"rules": {"deadline_minutes": -1}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        NotifySettings.model_validate({"rutes": []})
    # The same route from the file and from --notify is one route, not two.
    more = s.with_routes(["slack+https://hooks.slack.com/services/T/B/X"], {"events.pagerduty.com"})
    assert len(more.routes) == 2 and more.allow_hosts == {"hooks.slack.com", "events.pagerduty.com"}


def test_long_incident_keys_fit_pagerduty():
    key = dedup_key("agentdeck/escalation/" + "x" * 400)
    assert len(key) <= 255 and key != dedup_key("agentdeck/escalation/" + "x" * 401)


@pytest.fixture
def hostile_db(esc_db, tmp_path):
    ingest_events(esc_db, _task("t-ping", raised=FIXED_NOW - 5, deadline=FIXED_NOW + 900, risk="critical",
                                system="payments", operation="refund", params={},
                                reason="<!channel> see <https://evil.example|the docs> & \x1b[2Jnow"),
                  tmp_path / "hostile")
    return esc_db


def test_slack_payload_matches_the_incoming_webhook_format_and_escapes_trace_text(hostile_db):
    with Receiver() as rx:
        s = NotifySettings.model_validate({"routes": [{"url": f"slack+{rx.url('/services/T0/B0/SECRET')}",
                                                       "rules": ["escalation"]}],
                                           "rules": {"escalation": "critical"}})
        tick(connect(hostile_db), s, FIXED_NOW, allow_hosts={rx.host})
        [req] = rx.requests
        body = req["body"]
        assert req["path"] == "/services/T0/B0/SECRET" and req["headers"]["Content-Type"] == "application/json"
        # Incoming webhooks take `text` (the notification fallback) and optional `blocks`.
        assert set(body) <= {"text", "blocks", "mrkdwn"} and isinstance(body["text"], str)
        text = body["text"]
        assert "<!channel>" not in text and "<https://" not in text
        assert "&lt;!channel&gt;" in text and "&amp;" in text and "\x1b" not in text
        assert text.startswith("[CRITICAL] critical risk escalation")
        assert body["mrkdwn"] is False
        for block in body["blocks"]:
            assert block["type"] in {"section", "context"}
            texts = [block["text"]] if block["type"] == "section" else block["elements"]
            for t in texts:
                assert t["type"] == "plain_text" and len(t["text"]) <= 3000  # never parsed as mrkdwn


def test_pagerduty_trigger_acknowledge_resolve_share_the_dedup_key(hostile_db):
    with Receiver(ok=202) as rx:
        route = f"pagerduty+{rx.url('/v2/enqueue')}?routing_key=R0UTINGKEY"
        s = NotifySettings.model_validate({"routes": [route], "rules": {"escalation": "critical", "canary": "off"},
                                           "source": "ops-box-1"})
        conn = connect(hostile_db)
        tick(conn, s, FIXED_NOW, allow_hosts={rx.host})
        [trigger] = [r for r in rx.requests if r["body"]["dedup_key"] == "agentdeck/escalation/esc-t-ping"]
        assert trigger["path"] == "/v2/enqueue"  # the routing key goes in the body, not the URL
        body = trigger["body"]
        assert set(body) == {"routing_key", "event_action", "dedup_key", "payload", "client"}
        assert (body["routing_key"], body["event_action"]) == ("R0UTINGKEY", "trigger")
        payload = body["payload"]
        assert {"summary", "source", "severity"} <= set(payload)  # required by Events API v2
        assert set(payload) <= {"summary", "source", "severity", "timestamp", "component", "group", "class",
                                "custom_details"}
        assert payload["severity"] == "critical" and payload["severity"] in PD_SEVERITIES
        assert payload["source"] == "ops-box-1" and 0 < len(payload["summary"]) <= PD_SUMMARY_MAX
        assert payload["timestamp"].endswith("Z") and payload["custom_details"]["escalation_id"] == "esc-t-ping"

        [row] = [v for v in view(conn) if v.subject == "esc-t-ping"]
        ack(conn, row.notification_id, "alice", FIXED_NOW + 5, origin=Origin("alice"), settings=s,
            allow=frozenset({rx.host}))
        tick(conn, s, FIXED_NOW + 6, allow_hosts={rx.host})
        decisions.decide(conn, "esc-t-ping", "deny", by="alice", reason="not today", now=FIXED_NOW + 7)
        tick(conn, s, FIXED_NOW + 8, allow_hosts={rx.host})
        tick(conn, s, FIXED_NOW + 9, allow_hosts={rx.host})
        mine = [r["body"] for r in rx.requests if r["body"]["dedup_key"] == "agentdeck/escalation/esc-t-ping"]
        assert [b["event_action"] for b in mine] == ["trigger", "acknowledge", "resolve"]
        for b in mine[1:]:
            assert set(b) == {"routing_key", "event_action", "dedup_key"}


from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402

_prefix = st.sampled_from(["", "slack+", "pagerduty+", "webhook+", "SLACK+", "bell", "desktop", "http://", "https://"])


@hsettings(max_examples=300, deadline=None)
@given(_prefix, st.text(max_size=80), st.text(max_size=20))
def test_any_route_spec_is_a_route_or_a_validation_error(prefix, rest, key):
    spec = f"{prefix}{rest}" + (f"?routing_key={key}" if key else "")
    try:
        route = RouteSettings.model_validate(spec)
    except ValidationError:
        return
    assert route.type in {"webhook", "slack", "pagerduty", "bell", "desktop"}
    if route.local:
        assert route.url is None
    else:
        assert route.url and route.url.split(":", 1)[0].lower() in {"http", "https"}
        if route.type == "pagerduty":
            assert route.routing_key and "routing_key=" not in route.url
            assert route.routing_key not in route.label or route.routing_key in route.host


@hsettings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_ssh_connection_of_any_content_yields_an_address_or_nothing(value):
    import ipaddress

    from agentdeck.store.origin import ssh_client

    got = ssh_client({"SSH_CONNECTION": value})
    assert got is None or ipaddress.ip_address(got).compressed == got
