"""The console's application layer without the Pilot: what each key's one trip does to the store.

``DeckService`` is what the screens call on their workers; each action here
is one call that records, delivers or runs, and returns the one result the
operator sees.
"""

from __future__ import annotations

import json

import httpx


from conftest import HTTP, FIXED_NOW, point_hook_at
from agentdeck.console.service.deck import DeckService
from agentdeck.console.service.settings import for_tests
from agentdeck.console.service.views import TaskFilter, Window
from agentdeck.replay.evidence import verify_packet
from agentdeck.store.db import connect
from tasks_support import ingest, task_lines, write_trace
from test_escalations_support import audit_records, esc_db, row_of  # noqa: F401  (fixture)


def deck_on(db, **kw) -> DeckService:
    kw.setdefault("operator", "alice")
    return DeckService(for_tests(db, **kw), clock=lambda: FIXED_NOW)


def test_decide_records_delivers_and_reads_the_queue_back_in_one_call(esc_db, tmp_path):
    box = tmp_path / "box.jsonl"
    deck = deck_on(esc_db, outbox=box)
    result = deck.decide("esc-t-low", "approve", "")
    assert result.ok and result.changed and result.detail["delivery"] == "delivered"
    assert "Approved esc-t-low" in result.message and "Delivered" in result.message
    # The queue it read back no longer holds the decision: the screen needs no second read.
    assert "esc-t-low" not in [r["escalation_id"] for r in result.detail["queue"].rows]
    row = row_of(esc_db, "esc-t-low")
    assert (row["status"], row["decided_by"], row["delivery"]) == ("approved", "alice", "delivered")
    assert [rec["kind"] for rec in audit_records(esc_db, "esc-t-low")] == ["decision"]
    [line] = [json.loads(raw) for raw in box.read_text().splitlines()]
    assert line["escalation_id"] == "esc-t-low" and line["decision"] == "approve"


def test_second_decision_changes_nothing_and_says_who_decided(esc_db, tmp_path):
    first = deck_on(esc_db, outbox=tmp_path / "box.jsonl")
    second = deck_on(esc_db, operator="bob", outbox=tmp_path / "box.jsonl")
    assert first.decide("esc-t-low", "approve", "").ok
    again = second.decide("esc-t-low", "deny", "changed my mind")
    assert not again.ok and not again.changed and again.severity == "warning"
    assert "already approved by alice" in again.message
    assert row_of(esc_db, "esc-t-low")["status"] == "approved"


def test_deny_without_a_reason_is_refused_and_nothing_is_written(esc_db):
    result = deck_on(esc_db).decide("esc-t-low", "deny", "")
    assert not result.ok and result.severity == "error" and "reason is required" in result.message
    assert row_of(esc_db, "esc-t-low")["status"] == "pending"
    assert audit_records(esc_db, "esc-t-low") == []


def test_a_failed_delivery_is_said_and_retry_delivers_in_one_call(esc_db, tmp_path):
    deck = deck_on(esc_db)  # no outbox and no callback: nowhere to deliver
    result = deck.decide("esc-t-low", "approve", "")
    assert result.changed and result.detail["delivery"] == "failed" and result.severity == "warning"
    assert "Delivery failed" in result.message
    fixed = deck_on(esc_db, outbox=tmp_path / "box.jsonl")
    retried = fixed.retry_delivery("esc-t-low")
    assert retried.ok and retried.detail["delivery"] == "delivered"
    assert [rec["kind"] for rec in audit_records(esc_db, "esc-t-low")] == ["decision", "delivery-retry"]
    assert not fixed.retry_delivery("esc-t-low").ok  # delivered: nothing to retry


def test_expired_escalations_are_swept_by_the_policy(esc_db, tmp_path):
    deck = deck_on(esc_db, outbox=tmp_path / "box.jsonl", on_expiry="deny")
    assert deck.sweep_expired() >= 1
    row = row_of(esc_db, "esc-t-expired")
    assert (row["status"], row["decided_by"], row["delivery"]) == ("denied", "expiry-policy", "delivered")


def test_escalation_view_says_why_a_callback_is_blocked(esc_db):
    view = deck_on(esc_db).escalation("esc-t-hostile")
    assert view is not None and "not on the operator's allowlist" in (view.callback_problem or "")
    assert deck_on(esc_db, allow_hosts=frozenset({"hooks.example.com:80"})).escalation("esc-t-hostile") \
        .callback_problem is None


def test_task_detail_masks_secrets_in_payloads(tmp_path, sample_db):
    traces = tmp_path / "t"
    write_trace(traces / "a.jsonl", task_lines("leaky", output={"api_key": "sk-live-abcdefghijklmnop1234",
                                                                "note": "Bearer abcdefghijklmnopqrstuvwxyz"}))
    ingest(sample_db, traces)
    detail = deck_on(sample_db).task_detail("leaky")
    text = "\n".join(e["payload"] for e in detail.events)
    assert "abcdefghijklmnop1234" not in text and "abcdefghijklmnopqrstuvwxyz" not in text
    assert "[REDACTED]" in text and detail.redactions >= 2
    # The store keeps what the agent wrote: masking is for the screen.
    raw = connect(sample_db).execute("SELECT payload FROM events WHERE task_id = 'leaky' AND kind = 'tool_result'")
    assert "sk-live-abcdefghijklmnop1234" in raw.fetchone()[0]


def test_the_open_task_is_read_again_only_when_it_changed(tmp_path, sample_db):
    traces = tmp_path / "t"
    write_trace(traces / "a.jsonl", task_lines("open-one", outcome=None))
    ingest(sample_db, traces)
    deck = deck_on(sample_db)
    shown = deck.task_detail("open-one")
    assert [e["kind"] for e in shown.events] == ["task_start", "tool_call", "tool_result"]
    # Nothing new for it (other tasks may come and go): the screen keeps what it shows.
    write_trace(traces / "b.jsonl", task_lines("another"))
    ingest(sample_db, traces)
    assert deck.task_detail_if_changed("open-one", shown.key) is None
    # Its end arrives: read again, with the new event and the outcome.
    end = task_lines("open-one")[-1]
    write_trace(traces / "a.jsonl", [end])
    ingest(sample_db, traces)
    again = deck.task_detail_if_changed("open-one", shown.key)
    assert again is not None and again.events[-1]["kind"] == "task_end" and again.task["outcome"] == "success"
    # Nothing known yet (first open): always read.
    assert deck.task_detail_if_changed("open-one", None) == again


def test_replay_is_rebuilt_only_when_the_task_changed(sample_db):
    deck = deck_on(sample_db)
    view = deck.replay("task-0001")
    assert view is not None and view.rec is not None and view.rec.task_id == "task-0001"
    assert deck.replay("task-0001", view.key) is None  # nothing changed: nothing rebuilt
    assert deck.replay("req-0001").rec.task_id == "task-0001"  # by request id too
    missing = deck.replay("nope")
    assert missing is not None and missing.rec is None



def test_replay_is_rebuilt_when_a_decisions_delivery_or_the_tasks_violations_change(sample_db):
    """Neither writes an event or an audit record: Replay kept showing a decision's delivery as it was when the
    task was first opened (pending, while the agent had long received it), and violations from before a
    contract recheck."""
    from agentdeck.store.txn import atomic

    deck = deck_on(sample_db)
    conn = connect(sample_db)
    esc = conn.execute("SELECT escalation_id, task_id FROM escalations WHERE status != 'pending' "
                       "ORDER BY escalation_id LIMIT 1").fetchone()
    view = deck.replay(esc["task_id"])
    assert view is not None and view.rec is not None
    with atomic(conn):
        conn.execute("UPDATE escalations SET delivery = 'failed' WHERE escalation_id = ?", (esc["escalation_id"],))
    again = deck.replay(esc["task_id"], view.key)
    assert again is not None, "a delivery's new state did not reach Replay"
    assert again.rec is not None
    assert [e.delivery for e in again.rec.escalations if e.escalation_id == esc["escalation_id"]] == ["failed"]
    with atomic(conn):
        conn.execute("UPDATE tasks SET violations = violations + 1 WHERE task_id = ?", (esc["task_id"],))
    assert deck.replay(esc["task_id"], again.key) is not None, "a contract recheck's violations did not reach Replay"
    assert deck.replay(esc["task_id"], deck.replay(esc["task_id"]).key) is None  # and unchanged: not rebuilt

def test_going_back_to_an_unchanged_task_reuses_its_reconstruction_and_a_change_rebuilds_it(sample_db, tmp_path):
    traces = tmp_path / "t"
    lines = task_lines("grow-1", outcome=None)
    write_trace(traces / "a.jsonl", lines)
    ingest(sample_db, traces)
    deck = deck_on(sample_db)
    first = deck.replay("grow-1")
    deck.replay("task-0001")  # another task in between, as when flipping between two in Replay
    again = deck.replay("grow-1")
    assert again is not None and again.rec is first.rec  # not rebuilt
    write_trace(traces / "a.jsonl", task_lines("grow-1", outcome="success")[-1:])  # its task_end arrives
    ingest(sample_db, traces)
    fresh = deck.replay("grow-1")
    assert fresh is not None and fresh.rec is not first.rec
    assert [s.kind for s in fresh.rec.steps][-1] == "task_end" and fresh.rec.outcome == "success"

def test_replay_json_tree_data_is_masked(tmp_path, sample_db):
    traces = tmp_path / "t"
    write_trace(traces / "a.jsonl", task_lines("leaky", output={"password": "hunter2hunter2"}))
    ingest(sample_db, traces)
    view = deck_on(sample_db).replay("leaky")
    step = next(s for s in view.rec.steps if s.kind == "tool_result")
    shown, masked = view.shown_data(step)
    assert masked == 1 and "hunter2hunter2" not in json.dumps(shown)


def test_export_writes_a_verifiable_packet_never_overwriting_one(sample_db, tmp_path):
    deck = deck_on(sample_db, evidence_dir=tmp_path / "ev")
    first = deck.export_evidence("task-0001")
    second = deck.export_evidence("task-0001")  # same second (fixed clock)
    assert first.ok and second.ok and first.detail["path"] != second.detail["path"]
    packets = sorted((tmp_path / "ev").glob("*.md"))
    assert len(packets) == 2
    conn = connect(sample_db)
    assert verify_packet(packets[0].read_text(), conn) == []
    assert conn.execute("SELECT count(*) FROM audit WHERE kind = 'evidence.export'").fetchone()[0] == 2
    unknown = deck.export_evidence("no-such-task")
    assert not unknown.ok and "Export failed" in unknown.message


def test_compensation_prompt_then_one_call_runs_it_and_a_second_is_refused(sample_db, sor):
    point_hook_at(sample_db, sor.url)
    refused = deck_on(sample_db).compensation_prompt("act-0001")
    assert refused.plan is None and "allowlist" in (refused.refusal or "")
    deck = deck_on(sample_db, allow_hosts=frozenset({sor.allow_entry}))
    prompt = deck.compensation_prompt("act-0001")
    assert prompt.plan is not None and prompt.plan.idempotency_key == "undo-act-0001"
    # High risk: undoing needs a reason, as approving did; without one nothing runs or is recorded.
    assert prompt.plan.reason_required
    missing = deck.compensate(prompt)
    assert not missing.ok and not missing.changed and "reason is required" in missing.message
    assert HTTP.get(f"{sor.url}/actions/act-0001").json()["state"] == "applied"
    conn = connect(sample_db)
    assert conn.execute("SELECT count(*) FROM compensations").fetchone()[0] == 0
    conn.close()
    done = deck.compensate(prompt, reason="duplicate refund")
    assert done.ok and done.changed and "Compensated (attempt 1)" in done.message
    again = deck.compensate(deck.compensation_prompt("act-0001"), reason="again")
    assert not again.ok and "already compensated" in again.message


def test_task_pages_follow_and_jump_to_the_oldest(sample_db):
    deck = deck_on(sample_db)
    newest = deck.task_page(TaskFilter(), Window("follow"), 10)
    oldest = deck.task_page(TaskFilter(), Window("oldest"), 10)
    assert newest.anchor is None and newest.older and newest.newer == 0
    assert not oldest.older and oldest.newer > 0 and oldest.rows[0]["task_id"] != newest.rows[-1]["task_id"]


def test_startup_masks_plans_an_older_version_stored_in_clear(sample_db):
    conn = connect(sample_db)
    clear = {"kind": "http", "method": "POST", "url": "http://127.0.0.1:9/c", "headers":
             {"Authorization": "Bearer old-token-0123456789"}, "body": None, "idempotency_key": "k"}
    conn.execute("""INSERT INTO compensations (action_id, task_id, attempt, requested_by, requested_at, target, plan,
                    idempotency_key, status) VALUES ('act-x', 'task-x', 1, 'old', 1.0, 'POST h', ?, 'k', 'failed')""",
                 (json.dumps(clear),))
    conn.close()
    assert deck_on(sample_db).startup(sweep=False) >= 1
    plan = connect(sample_db).execute("SELECT plan FROM compensations WHERE action_id = 'act-x'").fetchone()[0]
    assert "old-token" not in plan


def test_the_service_layer_imports_no_textual():
    import subprocess
    import sys

    code = ("import sys, agentdeck.console.service.deck, agentdeck.console.service.settings, "
            "agentdeck.console.service.views, agentdeck.console.service.delivery; "
            "print(sorted(m for m in ('textual', 'httpx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
