"""The release loop end to end (issue 16, "Done when"; docs/autonomy.md "Demo").

A roll back verdict demotes approval-agent v2 to assisted; the sample fleet
reads the published stage and its next v2 action waits in the Escalations
queue; a promotion approved from the queue changes the published stage and
the fleet acts at the new one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from conftest import FIXED_NOW
from release_support import write_cohorts
from test_release_queue import autonomy, contracts, deck_for, items, published_stage
from agentdeck.sample_data.fleet import Fleet
from agentdeck.store import decisions
from agentdeck.store.contract import ContractCheck
from agentdeck.store.db import connect
from agentdeck.store.tailer import Tailer

MAX_EVENTS = 20_000  # bound on every wait below: the fleet writes one event a call


def fleet_events(folder: Path) -> list[dict]:
    out = []
    for path in sorted(folder.glob("demo-*.jsonl")):
        out += [json.loads(line) for line in path.read_text().splitlines()]
    return out


def by_task(events: list[dict]) -> dict[str, list[dict]]:
    tasks: dict[str, list[dict]] = {}
    for e in events:
        tasks.setdefault(e["task_id"], []).append(e)
    return tasks


def is_v2(events: list[dict], agent: str) -> bool:
    start = events[0]
    return start["kind"] == "task_start" and start["agent"] == agent and start["agent_version"]["id"] == "v2"


def run_until(fleet: Fleet, done, what: str) -> None:
    for _ in range(MAX_EVENTS):
        fleet.write_one()
        if done():
            return
    raise AssertionError(f"the fleet wrote {MAX_EVENTS} events without {what}")


def test_rollback_demotes_v2_its_next_action_waits_and_an_approved_promotion_is_obeyed(tmp_path):
    traces = tmp_path / "traces"
    write_cohorts(traces, "approval-agent", start=FIXED_NOW - 7200, baseline_n=200, canary_n=120, canary_fail_every=3)
    write_cohorts(traces, "records-agent", start=FIXED_NOW - 7200, baseline_n=1000, canary_n=1000)
    contracts(traces)
    conn = connect(tmp_path / "store.db")
    tailer = Tailer(conn, [traces], post_commit=[ContractCheck()])
    tailer.poll()

    # 1. The console's tick: the live verdict rolls approval-agent v2 back -> demoted to assisted, published.
    deck = deck_for(tmp_path)
    deck.release_tick()
    assert published_stage(tmp_path, "approval-agent", "v2") == "assisted"
    assert published_stage(tmp_path, "records-agent", "v2") == "partial"

    # 2. The fleet obeys: its next approval-agent v2 action is asked for first, and waits.
    fleet = Fleet(traces, rate=1000, agents=2, concurrency=6, seed=7, canary_share=1.0, name="demo", wait=3600,
                  clock=lambda: datetime.fromtimestamp(FIXED_NOW, UTC))

    def asked() -> list[dict]:
        return [e for t in by_task(fleet_events(traces)).values() if is_v2(t, "approval-agent")
                for e in t if e["kind"] == "escalation" and e["reason"].startswith("assisted stage")]

    run_until(fleet, lambda: bool(asked()), "an approval-agent v2 task asking before it acts")
    tasks = {k: t for k, t in by_task(fleet_events(traces)).items() if is_v2(t, "approval-agent")}
    assert tasks and all(t[0]["stage"] == "assisted" for t in tasks.values())
    # Nothing acted alone: no approval-agent v2 action without an approved escalation (none is approved yet).
    assert not [e for t in tasks.values() for e in t if e["kind"] == "action"]
    tailer.poll()
    waiting = asked()[0]["escalation_id"]
    queue = {r["escalation_id"]: r for r in decisions.pending(connect(tmp_path / "store.db"))}
    assert waiting in queue and queue[waiting]["reason"] == "assisted stage: every action needs a person's approval"

    # A person approves that action from the queue: the agent hears it and acts.
    assert deck.decide(waiting, "approve", "checked the refund").ok
    task_id = next(t for t, evs in tasks.items() if any(e.get("escalation_id") == waiting for e in evs))
    run_until(fleet, lambda: any(e["kind"] == "action" and e["task_id"] == task_id for e in fleet_events(traces)),
              "the approved task acting")

    # 3. A promotion approved from the queue changes the published stage, and the fleet acts at it.
    up = next(r for r in items(tmp_path / "store.db") if r["agent"] == "records-agent")
    assert up["title"] == "promote records-agent v2 from partial to bounded"
    assert deck.decide(up["escalation_id"], "approve", "metrics and suite within tolerance").ok
    assert published_stage(tmp_path, "records-agent", "v2") == "bounded"
    assert autonomy(tmp_path)[-1]["cause"] == "promoted"
    assert fleet.autonomy.stage("records-agent", "v2") == "bounded"
    before = set(by_task(fleet_events(traces)))

    def fresh() -> list[list[dict]]:
        return [t for k, t in by_task(fleet_events(traces)).items() if k not in before and is_v2(t, "records-agent")]

    run_until(fleet, lambda: bool(fresh()), "a new records-agent v2 task")
    assert [t[0]["stage"] for t in fresh()] == ["bounded"]
    # approval-agent v2 stays assisted until someone decides its roll back item.
    assert fleet.autonomy.stage("approval-agent", "v2") == "assisted"
