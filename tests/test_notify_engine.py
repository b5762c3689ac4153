"""Notifications: rules fire once across ticks, consoles and restarts; routes only to allowed hosts; ack."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest

from conftest import FIXED_NOW
from agentdeck.console.notify import LocalRoutes, NotifySettings, RouteSettings, ack, tick, view
from agentdeck.console.notify import queue
from agentdeck.store import audit, decisions
from agentdeck.store.db import connect
from agentdeck.store.origin import Origin
from notify_support import Receiver
from test_escalations_support import _task, esc_db, ingest_events  # noqa: F401

LOW_DEADLINE = FIXED_NOW + 1800  # esc-t-low's deadline (test_escalations_support.pending_events)


def settings(*routes: str, **rules) -> NotifySettings:
    return NotifySettings.model_validate({"routes": list(routes), "rules": rules})


def sent_for(receiver: Receiver, subject: str) -> Counter:
    return Counter(b["occurrence"] for b in receiver.bodies() if b["subject"] == subject)


def test_an_undecided_escalation_is_posted_at_arrival_and_before_its_deadline_each_once(esc_db):
    with Receiver() as rx:
        s = settings(rx.url(), canary="off")
        allow = {rx.host}
        first, second = connect(esc_db), connect(esc_db)
        r = tick(first, s, FIXED_NOW, allow_hosts=allow)
        assert r.sent == len(r.fired) >= 3 and not r.failed
        assert sent_for(rx, "esc-t-low") == {"new": 1}
        # Another console ticking at the same moment, and later ticks: nothing new.
        assert tick(second, s, FIXED_NOW, allow_hosts=allow).sent == 0
        tick(first, s, LOW_DEADLINE - 301, allow_hosts=allow)
        assert sent_for(rx, "esc-t-low") == {"new": 1}  # not yet within 5 minutes
        r = tick(second, s, LOW_DEADLINE - 299, allow_hosts=allow)
        assert sent_for(rx, "esc-t-low") == {"new": 1, "deadline-5m": 1}
        # A restart (a new connection, a new process's state) sends nothing again.
        first.close()
        second.close()
        again = connect(esc_db)
        assert tick(again, s, LOW_DEADLINE - 200, allow_hosts=allow).sent == 0
        assert sent_for(rx, "esc-t-low") == {"new": 1, "deadline-5m": 1}
        body = next(b for b in rx.bodies() if b["subject"] == "esc-t-low" and b["occurrence"] == "deadline-5m")
        assert body["rule"] == "deadline" and body["dedup_key"] == "agentdeck/escalation/esc-t-low"
        assert body["details"]["risk"] == "low" and "expires in 5 min" in body["summary"]
        keys = [r["headers"]["Idempotency-Key"] for r in rx.requests]
        assert len(set(keys)) == len(keys) and all(k.startswith("agentdeck-ntf-") for k in keys)


def test_two_consoles_ticking_at_once_send_each_notification_once(esc_db):
    with Receiver() as rx:
        s = settings(rx.url(), canary="off")
        n = 4
        barrier = threading.Barrier(n)
        errors: list[BaseException] = []

        def run() -> None:
            conn = connect(esc_db)
            try:
                barrier.wait()
                tick(conn, s, FIXED_NOW, allow_hosts={rx.host})
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                conn.close()

        threads = [threading.Thread(target=run) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors
        per = Counter((b["subject"], b["occurrence"]) for b in rx.bodies())
        assert per and set(per.values()) == {1}
        assert ("esc-t-high", "new") in per


def test_minimum_risk_and_rules_per_route(esc_db):
    with Receiver() as rx:
        route = {"url": rx.url(), "rules": ["escalation"]}
        s = NotifySettings.model_validate({"routes": [route], "rules": {"escalation": "high", "canary": "off"}})
        tick(connect(esc_db), s, FIXED_NOW, allow_hosts={rx.host})
        assert {b["subject"] for b in rx.bodies()} == {"esc-t-high"}


def test_a_route_off_the_allowlist_is_never_called_and_shows_as_blocked(esc_db):
    with Receiver() as allowed, Receiver() as refused:
        s = settings(allowed.url(), refused.url("/other"), canary="off")
        conn = connect(esc_db)
        # Only the first receiver's host:port is allowed (both are 127.0.0.1, on different ports).
        r = tick(conn, s, FIXED_NOW, allow_hosts={allowed.host})
        assert refused.requests == [] and allowed.requests
        assert r.blocked == len(r.fired)
        rows = [v for v in view(conn) if v.subject == "esc-t-low"]
        states = {v.route: (v.state, v.last_error) for v in rows}
        blocked = states[f"webhook {refused.host}"]
        assert blocked[0] == "blocked" and "not on the operator's allowlist" in blocked[1]
        assert states[f"webhook {allowed.host}"] == ("sent", None)
        tick(conn, s, FIXED_NOW + 60, allow_hosts={allowed.host})
        assert refused.requests == []


def test_a_failing_route_is_retried_with_backoff_then_sent_with_the_same_key(esc_db):
    with Receiver(statuses=[503]) as rx:
        s = NotifySettings.model_validate({"routes": [{"url": rx.url(), "rules": ["escalation"]}],
                                           "rules": {"escalation": "high"}, "backoff": 30})
        conn = connect(esc_db)
        r = tick(conn, s, FIXED_NOW, allow_hosts={rx.host})
        assert (r.sent, r.retrying) == (0, 1)
        [row] = [v for v in view(conn) if v.subject == "esc-t-high"]
        assert (row.state, row.attempts) == ("pending", 1) and "HTTP 503" in row.last_error
        assert tick(conn, s, FIXED_NOW + 29, allow_hosts={rx.host}).sent == 0  # not due yet
        assert tick(conn, s, FIXED_NOW + 30, allow_hosts={rx.host}).sent == 1
        assert len(rx.requests) == 2
        assert rx.requests[0]["headers"]["Idempotency-Key"] == rx.requests[1]["headers"]["Idempotency-Key"]
        [row] = [v for v in view(conn) if v.subject == "esc-t-high"]
        assert (row.state, row.attempts, row.last_error) == ("sent", 2, None)


def test_a_rejected_notification_fails_visibly_and_can_be_retried(esc_db):
    with Receiver(statuses=[400]) as rx:
        s = NotifySettings.model_validate({"routes": [{"url": rx.url(), "rules": ["escalation"]}],
                                           "rules": {"escalation": "high"}})
        conn = connect(esc_db)
        assert tick(conn, s, FIXED_NOW, allow_hosts={rx.host}).failed == 1
        [row] = [v for v in view(conn) if v.subject == "esc-t-high"]
        assert row.state == "failed" and "answered HTTP 400" in row.last_error
        assert tick(conn, s, FIXED_NOW + 3600, allow_hosts={rx.host}).sent == 0  # a 400 is not retried by itself
        assert queue.retry(conn, row.send_id, by="alice", now=FIXED_NOW + 3600)
        assert tick(conn, s, FIXED_NOW + 3600, allow_hosts={rx.host}).sent == 1
        assert len(rx.requests) == 2


def test_a_crashed_sender_leaves_a_claim_that_lapses_and_the_row_is_sent(esc_db):
    with Receiver() as rx:
        s = NotifySettings.model_validate({"routes": [{"url": rx.url(), "rules": ["escalation"]}],
                                           "rules": {"escalation": "high"}})
        conn = connect(esc_db)
        allow = frozenset({rx.host})
        from agentdeck.console.notify import rules

        ev = rules.evaluate(conn, s.rules, FIXED_NOW, enabled={"escalation"})
        queue.enqueue(conn, ev.fires, s, allow, FIXED_NOW)
        routes = {r.id: r for r in s.routes}
        [claimed] = queue.claim_due(conn, FIXED_NOW, routes)  # ...and the process dies before sending
        assert tick(conn, s, FIXED_NOW + 10, allow_hosts=allow).sent == 0  # claimed elsewhere: left alone
        assert tick(conn, s, FIXED_NOW + queue.CLAIM_SECONDS + 1, allow_hosts=allow).sent == 1
        assert len(rx.requests) == 1 and claimed.attempts == 1


def test_ack_is_recorded_with_who_and_from_where_in_the_audit_trail(esc_db):
    with Receiver() as rx:
        s = settings(rx.url(), canary="off")
        conn = connect(esc_db)
        tick(conn, s, FIXED_NOW, allow_hosts={rx.host})
        tick(conn, s, LOW_DEADLINE - 60, allow_hosts={rx.host})
        ids = [v.notification_id for v in view(conn) if v.subject == "esc-t-low"]
        assert len(set(ids)) == 2  # arrival and deadline: one incident
        origin = Origin(os_user="alice", ssh_client="198.51.100.7")
        out = ack(conn, ids[-1], "alice", FIXED_NOW + 5, origin=origin)
        assert out.applied and out.incident == "agentdeck/escalation/esc-t-low"
        assert {(v.acked_by, v.acked_at) for v in view(conn) if v.subject == "esc-t-low"} == {("alice", FIXED_NOW + 5)}
        rec = conn.execute("SELECT * FROM audit WHERE kind = 'notification-ack'").fetchone()
        detail = json.loads(rec["detail"])
        assert (rec["actor"], rec["subject"], detail["os_user"], detail["ssh_client"]) == \
            ("alice", "agentdeck/escalation/esc-t-low", "alice", "198.51.100.7")
        again = ack(conn, ids[0], "bob", FIXED_NOW + 9, origin=Origin("bob"))
        assert not again.applied and again.acked_by == "alice"
        assert conn.execute("SELECT count(*) FROM audit WHERE kind = 'notification-ack'").fetchone()[0] == 1
        assert audit.verify(conn)[1] == []
        with pytest.raises(queue.UnknownNotification):
            ack(conn, 999_999, "alice", FIXED_NOW)


def test_no_deadline_notice_once_the_deadline_has_passed_or_the_escalation_is_decided(esc_db):
    with Receiver() as rx:
        s = NotifySettings.model_validate({"routes": [{"url": rx.url(), "rules": ["deadline"]}]})
        conn = connect(esc_db)
        decisions.decide(conn, "esc-t-high", "approve", by="alice", reason="ok", now=FIXED_NOW)
        tick(conn, s, FIXED_NOW + 600 - 60, allow_hosts={rx.host})  # t-high would be due, but it is decided
        tick(conn, s, LOW_DEADLINE + 1, allow_hosts={rx.host})  # t-low's deadline has passed
        assert {b["subject"] for b in rx.bodies()} <= {"esc-t-hostile"}
        assert "esc-t-low" not in {b["subject"] for b in rx.bodies()}


def test_failed_delivery_and_failed_compensation_are_notified(esc_db):
    with Receiver() as rx:
        s = NotifySettings.model_validate({"routes": [{"url": rx.url(), "rules": ["failure"]}]})
        conn = connect(esc_db)
        decisions.decide(conn, "esc-t-low", "approve", by="alice", now=FIXED_NOW)
        conn.execute("UPDATE escalations SET delivery = 'failed', delivery_error = 'callback answered HTTP 500', "
                     "delivery_attempts = 4 WHERE escalation_id = 'esc-t-low'")
        conn.execute("""INSERT INTO compensations (action_id, task_id, attempt, requested_by, requested_at, target,
                        plan, idempotency_key, status, error) VALUES ('act-9', 't-9', 1, 'bob', ?, 'sor', '{}', 'k',
                        'failed', 'the system answered 409')""", (FIXED_NOW,))
        tick(conn, s, FIXED_NOW + 1, allow_hosts={rx.host})
        tick(conn, s, FIXED_NOW + 2, allow_hosts={rx.host})
        got = {(b["subject"], b["occurrence"]) for b in rx.bodies()}
        assert got == {("esc-t-low", "failed#4"), ("act-9", "attempt#1")}
        assert len(rx.requests) == 2
        assert any("HTTP 500" in b["summary"] for b in rx.bodies())


def test_rejects_growing_notify_once_per_window_and_history_does_not(esc_db):
    with Receiver() as rx:
        s = NotifySettings.model_validate({"routes": [{"url": rx.url(), "rules": ["ingest"]}],
                                           "rules": {"ingest_stall_minutes": 10}})
        conn = connect(esc_db)

        def reject(error: str) -> None:
            conn.execute("INSERT INTO rejects (path, offset, error, raw, raw_length, ts) VALUES (?, 0, ?, 'x', 1, ?)",
                         ("/traces/a.jsonl", error, FIXED_NOW))

        tick(conn, s, FIXED_NOW, allow_hosts={rx.host})
        assert rx.requests == []  # the sample data's old rejects are history
        reject("line 7: \x1b[31mnot JSON")
        tick(conn, s, FIXED_NOW + 1, allow_hosts={rx.host})
        reject("line 8: not JSON")
        tick(conn, s, FIXED_NOW + 2, allow_hosts={rx.host})
        assert len(rx.requests) == 1
        body = rx.bodies()[0]
        assert body["rule"] == "ingest" and "\x1b" not in body["summary"] and "a.jsonl" in body["summary"]
        reject("line 9")
        tick(conn, s, FIXED_NOW + 601, allow_hosts={rx.host})  # a new window
        assert len(rx.requests) == 2


def test_ingest_stalled_with_bytes_waiting_notifies_and_resolves(esc_db, tmp_path):
    from agentdeck.store.tailer import Tailer

    with Receiver() as rx:
        s = NotifySettings.model_validate({"routes": [
            {"url": rx.url(), "rules": ["ingest"]},
            f"pagerduty+{rx.url('/pd')}?routing_key=R1"], "rules": {"ingest_stall_minutes": 10}})
        conn = connect(esc_db)
        trace = tmp_path / "live" / "stall.jsonl"
        trace.parent.mkdir()
        events = _task("t-stall", raised=FIXED_NOW, deadline=FIXED_NOW + 9000, risk="low", system="crm",
                       operation="update_record", params={})
        trace.write_text("".join(json.dumps(e) + "\n" for e in events[:3]))
        Tailer(conn, [trace]).poll()
        committed = conn.execute("SELECT max(updated_at) FROM sources").fetchone()[0]
        with trace.open("a") as f:  # the fleet keeps writing; nobody ingests
            f.write("".join(json.dumps(e) + "\n" for e in events[3:]))
        s_ingest = s.model_copy(update={"routes": [r.model_copy(update={"rules": ["ingest"]}) for r in s.routes]})
        tick(conn, s_ingest, committed + 60, allow_hosts={rx.host})
        assert rx.requests == []  # one minute is not a stall
        tick(conn, s_ingest, committed + 601, allow_hosts={rx.host})
        tick(conn, s_ingest, committed + 700, allow_hosts={rx.host})
        stalls = [b for b in rx.bodies() if b.get("subject") == "ingest" or b.get("event_action") == "trigger"]
        assert len(stalls) == 2  # webhook + PagerDuty, once each
        assert "bytes of traces are waiting" in stalls[0]["summary"]
        Tailer(conn, [trace]).poll()  # ingest catches up
        tick(conn, s_ingest, committed + 800, allow_hosts={rx.host})
        resolves = [b for b in rx.bodies() if b.get("event_action") == "resolve"]
        assert [r["dedup_key"] for r in resolves] == ["agentdeck/ingest/stalled"]


def test_a_failed_ingester_in_the_heartbeat_table_is_notified(esc_db):
    with Receiver() as rx:
        s = NotifySettings.model_validate({"routes": [{"url": rx.url(), "rules": ["ingest"]}]})
        conn = connect(esc_db)
        # The ingest helper's heartbeat table (when the store has it); created here as it will look.
        conn.execute("""CREATE TABLE IF NOT EXISTS ingesters (ingester TEXT PRIMARY KEY, pid INTEGER, host TEXT,
                        paths TEXT, started_at REAL, heartbeat_at REAL, state TEXT, detail TEXT)""")
        conn.execute("INSERT INTO ingesters (ingester, pid, host, paths, started_at, heartbeat_at, state, detail) "
                     "VALUES ('h:1', 1, 'h', '[]', ?, ?, 'failed', 'disk full')",
                     (FIXED_NOW, FIXED_NOW))
        tick(conn, s, FIXED_NOW + 1, allow_hosts={rx.host})
        [body] = rx.bodies()
        assert "ingester h:1 failed: disk full" in body["summary"]


def test_canary_turning_to_hold_is_notified_once(sample_db):
    from agentdeck.console.notify import rules

    with Receiver() as rx:
        s = NotifySettings.model_validate({"routes": [{"url": rx.url(), "rules": ["canary"]}],
                                           "rules": {"canary_window": "all"}})
        conn = connect(sample_db)
        tick(conn, s, FIXED_NOW, allow_hosts={rx.host})
        assert rx.requests == []  # first look: a new canary holds until it has data; remembered, not sent
        # A tick a while ago saw approval-agent's v2 promoted; today's sequential verdict is hold.
        from agentdeck.store.txn import atomic

        with atomic(conn):
            rules.remember(conn, "canary:approval-agent\x00v1\x00v2", {"verdict": "promote", "changes": 1}, FIXED_NOW)
        tick(conn, s, FIXED_NOW + 30, allow_hosts={rx.host})
        assert rx.requests == []  # analysed at most once a minute
        tick(conn, s, FIXED_NOW + 61, allow_hosts={rx.host})
        tick(conn, s, FIXED_NOW + 200, allow_hosts={rx.host})
        [body] = rx.bodies()
        assert body["rule"] == "canary" and body["subject"] == "approval-agent v1->v2"
        assert body["details"]["previous"] == "promote" and body["details"]["verdict"] == "hold"


def test_bell_and_desktop_are_per_process_and_quiet_at_start(esc_db):
    popups: list[tuple] = []
    local = LocalRoutes(desktop=lambda *a: popups.append(a) or True)
    s = NotifySettings.model_validate({"routes": ["bell", "desktop"], "rules": {"canary": "off"}})
    conn = connect(esc_db)
    with Receiver() as rx:  # another process (say `agentdeck notify`) already fired alerts for what is pending
        tick(conn, settings(rx.url(), canary="off"), FIXED_NOW - 10, allow_hosts={rx.host})
    first = tick(conn, s, FIXED_NOW - 5, local=local)
    assert not first.bell and popups == []  # old alerts: quiet when the console opens
    ingest_events(esc_db, _task("t-new", raised=FIXED_NOW, deadline=FIXED_NOW + 900, risk="high", system="iam",
                                operation="grant_role", params={}, reason="<b>urgent</b>"), esc_db.parent / "new")
    r = tick(conn, s, FIXED_NOW, local=local)
    assert r.bell and r.desktop >= 1
    assert any("urgent" in p[1] for p in popups)
    assert not tick(conn, s, FIXED_NOW + 1, local=local).bell  # rung once


def test_a_failing_route_is_tried_once_a_tick_not_once_per_notification(esc_db):
    with Receiver(statuses=[503, 503]) as rx:
        s = NotifySettings.model_validate({"routes": [rx.url()], "rules": {"canary": "off"}, "backoff": 10})
        conn = connect(esc_db)
        r = tick(conn, s, FIXED_NOW, allow_hosts={rx.host})
        assert len(r.fired) == 3 and len(rx.requests) == 1 and r.retrying == 1
        rows = [v for v in view(conn) if v.rule == "escalation"]
        assert sorted(v.attempts for v in rows) == [0, 0, 1] and {v.state for v in rows} == {"pending"}
        tick(conn, s, FIXED_NOW + 1, allow_hosts={rx.host})  # the two untried ones: one more 503
        tick(conn, s, FIXED_NOW + 30, allow_hosts={rx.host})  # the receiver is back: everything goes
        # soonest deadline first: high (503), then hostile (503), then all three
        assert Counter(b["subject"] for b in rx.bodies()) == {"esc-t-high": 2, "esc-t-hostile": 2, "esc-t-low": 1}
        assert {v.state for v in view(conn) if v.rule == "escalation"} == {"sent"}


def test_a_failed_ingester_followed_by_a_healthy_one_is_not_a_stall(esc_db):
    with Receiver() as rx:
        s = NotifySettings.model_validate({"routes": [{"url": rx.url(), "rules": ["ingest"]}]})
        conn = connect(esc_db)
        conn.execute("""CREATE TABLE IF NOT EXISTS ingesters (ingester TEXT PRIMARY KEY, pid INTEGER, host TEXT,
                        paths TEXT, started_at REAL, heartbeat_at REAL, state TEXT, detail TEXT)""")
        conn.execute("INSERT INTO ingesters (ingester, pid, host, paths, started_at, heartbeat_at, state, detail) "
                     "VALUES ('h:1', 1, 'h', '[]', ?, ?, 'failed', 'disk full')", (FIXED_NOW - 900, FIXED_NOW - 900))
        conn.execute("INSERT INTO ingesters (ingester, pid, host, paths, started_at, heartbeat_at, state, detail) "
                     "VALUES ('h:2', 2, 'h', '[]', ?, ?, 'running', NULL)", (FIXED_NOW - 800, FIXED_NOW - 5))
        tick(conn, s, FIXED_NOW, allow_hosts={rx.host})
        assert rx.requests == []
        # h:2 is killed: its heartbeat stops; ten minutes later that is a stall.
        tick(conn, s, FIXED_NOW + 601, allow_hosts={rx.host})
        [body] = rx.bodies()
        assert "ingester h:2 has not reported for 10 min" in body["summary"]
