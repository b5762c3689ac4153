"""The live fleet really changes the system of record, and the service undoes exactly once."""

from __future__ import annotations

from conftest import HTTP

import json

import httpx

from agentdeck.replay.sor import SorService
from agentdeck.sample_data.fleet import Fleet


def test_fleet_actions_are_applied_in_the_system_of_record(tmp_path):
    with SorService(port=0) as service:
        fleet = Fleet(tmp_path, rate=1000, agents=1, seed=5, sor_url=service.url, ambiguous_wait=False)
        actions = []
        for _ in range(3000):
            fleet.write_one()
            if len(service.sor.actions) >= 3:
                break
        for f in fleet._files.values():
            f.close()
        events = [json.loads(line) for p in tmp_path.glob("*.jsonl") for line in p.read_text().splitlines()]
        actions = [e for e in events if e["kind"] == "action" and e["status"] == "ok"]
        assert len(actions) >= 3
        for a in actions:
            state = HTTP.get(f"{service.url}/actions/{a['action_id']}").json()
            assert state["operation"] == a["operation"] and state["params"] == a["params"]
            assert a["response"]["body"]["id"] == a["action_id"]  # the trace carries the system's answer


def test_fleet_reports_an_unreachable_system_as_a_failed_action(tmp_path):
    with SorService(port=0) as service:
        dead = service.url
    fleet = Fleet(tmp_path, rate=1000, agents=1, seed=5, sor_url=dead)
    for _ in range(400):
        fleet.write_one()
    for f in fleet._files.values():
        f.close()
    events = [json.loads(line) for p in tmp_path.glob("*.jsonl") for line in p.read_text().splitlines()]
    actions = [e for e in events if e["kind"] == "action"]
    assert actions and all(a["status"] == "failed" and a["compensation"] is None for a in actions)


def test_repeated_idempotency_key_returns_the_first_result_and_undoes_once():
    with SorService(port=0) as service:
        HTTP.post(f"{service.url}/actions", json={"action_id": "a1", "system": "iam", "operation": "grant_role"})
        first = HTTP.post(f"{service.url}/compensate", json={"action_id": "a1"}, headers={"Idempotency-Key": "k1"})
        again = HTTP.post(f"{service.url}/compensate", json={"action_id": "a1"}, headers={"Idempotency-Key": "k1"})
        other = HTTP.post(f"{service.url}/compensate", json={"action_id": "a1"}, headers={"Idempotency-Key": "k2"})
        assert first.status_code == again.status_code == 200 and first.json() == again.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        assert other.status_code == 409
        assert HTTP.get(f"{service.url}/actions/a1").json()["undo_count"] == 1
        missing_key = HTTP.post(f"{service.url}/compensate", json={"action_id": "a1"})
        assert missing_key.status_code == 400


def test_live_action_is_undone_from_the_console_through_its_hook(tmp_path):
    from agentdeck.replay import compensate
    from agentdeck.store.db import connect
    from agentdeck.store.tailer import Tailer

    traces = tmp_path / "traces"
    with SorService(port=0) as service:
        fleet = Fleet(traces, rate=1000, agents=1, seed=5, sor_url=service.url, ambiguous_wait=False)
        for _ in range(3000):
            fleet.write_one()
            if service.sor.actions:
                break
        for f in fleet._files.values():
            f.close()
        conn = connect(tmp_path / "store.db")
        Tailer(conn, [traces]).poll()
        (action_id,) = service.sor.actions
        plan = compensate.prepare(conn, action_id, {service.allow_entry})
        assert isinstance(plan, compensate.Plan) and plan.url == f"{service.url}/compensate"
        out = compensate.commit(conn, plan, operator="ops", now=1.0, allow_hosts={service.allow_entry})
        assert out.ok and service.sor.actions[action_id]["state"] == "compensated"
