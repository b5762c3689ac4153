"""The decisions outbox: line format, exactly-once append, re-delivery after a crash."""

from __future__ import annotations

import json
from pathlib import Path

from agentdeck.console.service.delivery import DeliverySettings, deliver_one
from conftest import FIXED_NOW
from agentdeck.sample_data.fleet import OutboxReader
from agentdeck.store import decisions, outbox
from agentdeck.store.db import connect
from test_escalations_support import approving, esc_db, row_of, settle  # noqa: F401  (fixture)

LINE_FIELDS = {"v", "escalation_id", "task_id", "decision", "decided_by", "decided_at", "reason", "expired",
               "idempotency_key"}


def test_outbox_line_format_and_the_fleet_reads_it(esc_db, tmp_path):
    box = tmp_path / "outbox" / "decisions.jsonl"
    conn = connect(esc_db)
    decisions.decide(conn, "esc-t-low", "deny", by="alice", reason="wrong order", now=FIXED_NOW)
    assert deliver_one(conn, "esc-t-low", DeliverySettings(box, frozenset())) == "delivered"
    [raw] = box.read_bytes().splitlines()
    line = json.loads(raw)
    assert set(line) == LINE_FIELDS
    assert line == {
        "v": 1, "escalation_id": "esc-t-low", "task_id": "t-low", "decision": "deny", "decided_by": "alice",
        "decided_at": "2026-11-24T15:00:00.000Z", "reason": "wrong order", "expired": False,
        "idempotency_key": row_of(esc_db, "esc-t-low")["idempotency_key"],
    }
    got = OutboxReader(box).poll()
    assert got["esc-t-low"]["decision"] == "deny" and got["esc-t-low"]["decided_by"] == "alice"


def test_expiry_decision_is_delivered_like_a_human_one(esc_db, tmp_path):
    box = tmp_path / "box.jsonl"
    conn = connect(esc_db)
    [out] = decisions.expire_due(conn, now=FIXED_NOW, policy="deny")
    assert deliver_one(conn, out.escalation_id, DeliverySettings(box, frozenset())) == "delivered"
    [line] = outbox.read(box)
    assert (line["escalation_id"], line["decision"], line["decided_by"], line["expired"]) == (
        "esc-t-expired", "deny", "expiry-policy", True)


def test_delivered_decision_is_not_delivered_again(esc_db, tmp_path):
    box = tmp_path / "box.jsonl"
    conn = connect(esc_db)
    decisions.decide(conn, "esc-t-low", "approve", by="alice", now=FIXED_NOW)
    settings = DeliverySettings(box, frozenset())
    assert deliver_one(conn, "esc-t-low", settings) == "delivered"
    assert deliver_one(conn, "esc-t-low", settings) is None  # no longer pending: not ours to deliver
    assert len(box.read_bytes().splitlines()) == 1


def test_crash_between_outbox_append_and_its_record_does_not_duplicate(esc_db, tmp_path):
    box = tmp_path / "box.jsonl"
    conn = connect(esc_db)
    decisions.decide(conn, "esc-t-low", "approve", by="alice", now=FIXED_NOW)
    # The previous run noted its intent, appended the line, then died before recording outbox_at.
    conn.execute("UPDATE escalations SET outbox_intent = ? WHERE escalation_id = 'esc-t-low'", (FIXED_NOW,))
    assert outbox.append_once(box, outbox.line_for(decisions.escalation(conn, "esc-t-low")), check=False)
    assert row_of(esc_db, "esc-t-low")["outbox_at"] is None
    assert deliver_one(conn, "esc-t-low", DeliverySettings(box, frozenset())) == "delivered"
    assert len(box.read_bytes().splitlines()) == 1


async def test_pending_deliveries_are_redelivered_on_startup(esc_db, make_app, tmp_path):
    box = tmp_path / "outbox" / "decisions.jsonl"
    conn = connect(esc_db)
    # A previous console committed two decisions and died before delivering them.
    decisions.decide(conn, "esc-t-low", "approve", by="alice", now=FIXED_NOW)
    decisions.decide(conn, "esc-t-high", "deny", by="alice", reason="not now", now=FIXED_NOW)
    conn.close()
    assert not box.exists()
    app = make_app(esc_db, outbox=box)
    async with app.run_test(size=(140, 40)) as pilot:
        for _ in range(100):
            await settle(pilot, 1)
            if all(row_of(esc_db, e)["delivery"] == "delivered" for e in ("esc-t-low", "esc-t-high")):
                break
    assert sorted(line["escalation_id"] for line in outbox.read(box)) == ["esc-t-high", "esc-t-low"]
    assert len(box.read_bytes().splitlines()) == 2


async def test_without_an_outbox_the_screen_says_so_and_delivery_fails_clearly(esc_db, make_app):
    app = make_app(esc_db)  # no trace folder, no outbox
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        status = str(app.screen.query_one("#esc-status").render())
        assert "outbox off" in status
        await pilot.press("down", "down", "down")  # esc-t-low: low risk, no callback
        await settle(pilot)
        assert app.screen.query_one("#esc-table").selected_id() == "esc-t-low"
        await approving(pilot)
        await pilot.press("enter")
        for _ in range(100):
            await settle(pilot, 1)
            if row_of(esc_db, "esc-t-low")["delivery"] != "pending":
                break
    row = row_of(esc_db, "esc-t-low")
    assert row["status"] == "approved"  # the decision is recorded regardless
    assert row["delivery"] == "failed" and "outbox is off" in row["delivery_error"]


def test_outbox_read_skips_junk_and_duplicates(tmp_path: Path):
    box = tmp_path / "box.jsonl"
    line = outbox.OutboxLine(escalation_id="e1", task_id="t1", decision="approve", decided_by="a",
                             decided_at="2026-11-24T15:00:00.000Z", idempotency_key="k1")
    box.write_text(line.to_json() + "\nnot json\n" + line.to_json() + "\n")
    assert [item["idempotency_key"] for item in outbox.read(box)] == ["k1"]
    assert outbox.append_once(box, line) is False


async def test_expiry_sweep_decides_audits_and_delivers_on_start(esc_db, make_app, tmp_path):
    box = tmp_path / "box.jsonl"
    app = make_app(esc_db, outbox=box, tick=1.0)  # a ticking console sweeps expired escalations
    async with app.run_test(size=(140, 40)) as pilot:
        for _ in range(100):
            await settle(pilot, 1)
            if row_of(esc_db, "esc-t-expired")["delivery"] == "delivered":
                break
    row = row_of(esc_db, "esc-t-expired")
    assert (row["status"], row["decided_by"], row["delivery"]) == ("denied", "expiry-policy", "delivered")
    assert row_of(esc_db, "esc-t-high")["status"] == "pending"  # not yet due
    [line] = outbox.read(box)
    assert (line["escalation_id"], line["decided_by"], line["expired"]) == ("esc-t-expired", "expiry-policy", True)
    conn = connect(esc_db)
    [(actor,)] = conn.execute("SELECT actor FROM audit WHERE subject = 'esc-t-expired'").fetchall()
    assert actor == "expiry-policy"


def test_outbox_location(tmp_path):
    folder = tmp_path / "traces"
    folder.mkdir()
    (folder / "a.jsonl").write_text("")
    assert outbox.resolve(None, [folder]) == folder / "outbox" / "decisions.jsonl"
    assert outbox.resolve(None, [folder / "a.jsonl"]) == folder / "outbox" / "decisions.jsonl"
    assert outbox.resolve(None, []) is None
    assert outbox.resolve("off", [folder]) is None
    assert outbox.resolve(str(tmp_path / "x.jsonl"), [folder]) == tmp_path / "x.jsonl"


def test_bad_expiry_policy_in_environment_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from agentdeck.console.cli import main

    monkeypatch.setenv("AGENTDECK_ON_EXPIRY", "sometimes")
    assert main(["console", "--db", str(tmp_path / "s.db"), "--traces", str(tmp_path / "t")]) == 2
    assert "on-expiry policy must be one of deny, approve, keep" in capsys.readouterr().err


async def test_unexpected_delivery_error_is_recorded_not_fatal(esc_db, make_app, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(outbox, "append_once", broken)
    app = make_app(esc_db, outbox=tmp_path / "box.jsonl")
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("down", "down", "down")
        await settle(pilot)
        await approving(pilot)
        await pilot.press("enter")
        for _ in range(100):
            await settle(pilot, 1)
            if row_of(esc_db, "esc-t-low")["delivery"] != "pending":
                break
        assert app.is_running
    row = row_of(esc_db, "esc-t-low")
    assert row["status"] == "approved"
    assert row["delivery"] == "failed" and "disk on fire" in row["delivery_error"]
    assert row["delivery_claimed_until"] is None  # retry with r can take it at once
