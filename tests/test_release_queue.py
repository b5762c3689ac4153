"""Promotions and roll backs in the Escalations queue (issue 16 items 2 and 3), below the UI.

A store where approval-agent's canary v2 fails every third action (the live
verdict: roll back) and records-agent's v2 matches v1 over 1,000 tasks each
(promote). The console's release tick raises one item per verdict, demotes the
rolled-back canary at once, and a decision on an item carries it out with the
same machinery as any escalation.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from conftest import FIXED_NOW, ROOT
from release_support import write_cohorts
from agentdeck.console.service.deck import DeckService
from agentdeck.console.service.settings import for_tests
from agentdeck.store import canary, decisions, release
from agentdeck.store.approvers import ApproverRules
from agentdeck.store.contract import ContractCheck, book_for_store
from agentdeck.store.db import connect
from agentdeck.store.health import check
from agentdeck.store.origin import Origin
from agentdeck.store.tailer import Tailer

HOOKED = "approval-agent"  # its test contract names a release hook (tests set the URL)


def contracts(folder: Path, *, hook: str | None = None, extra_canary: str = "") -> None:
    """The sample contracts beside the traces, approval-agent's with a release hook and extra [canary] lines."""
    (folder / "contracts").mkdir(parents=True, exist_ok=True)
    for name in ("approval-agent", "records-agent"):
        text = (ROOT / "sample_data" / "contracts" / f"{name}.toml").read_text()
        if name == HOOKED and hook:
            text = text.replace('[versions]', f'release_hook = "{hook}"\n\n[versions]', 1)
        if extra_canary:
            text = text.replace("[canary]\n", "[canary]\n" + extra_canary + "\n", 1)
        (folder / "contracts" / f"{name}.toml").write_text(text)


@pytest.fixture(scope="session")
def _release_template(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("release")
    traces = folder / "traces"
    write_cohorts(traces, "approval-agent", start=FIXED_NOW - 7200, baseline_n=200, canary_n=120, canary_fail_every=3)
    write_cohorts(traces, "records-agent", start=FIXED_NOW - 7200, baseline_n=1000, canary_n=1000)
    conn = connect(folder / "store.db")
    Tailer(conn, [traces], post_commit=[ContractCheck()]).poll()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return folder


@pytest.fixture
def rel(_release_template, tmp_path) -> Path:
    """A fresh copy: <tmp>/store.db and <tmp>/traces (with contracts/ and, once written, outbox/)."""
    shutil.copytree(_release_template, tmp_path, dirs_exist_ok=True)
    conn = connect(tmp_path / "store.db")  # the copy's trace files (where its contracts are found) are its own
    conn.execute("UPDATE sources SET path = replace(path, ?, ?)", (str(_release_template), str(tmp_path)))
    conn.close()
    contracts(tmp_path / "traces")
    return tmp_path


def deck_for(folder: Path, **kw) -> DeckService:
    kw.setdefault("operator", "alice")
    kw.setdefault("outbox", folder / "traces" / "outbox" / "decisions.jsonl")
    return DeckService(for_tests(folder / "store.db", [folder / "traces"], **kw), clock=lambda: FIXED_NOW)


def items(db: Path) -> list[sqlite3.Row]:
    conn = connect(db)
    return conn.execute("""SELECT r.*, e.status, e.risk, e.reason AS title, e.kind FROM release_items r
                           JOIN escalations e USING (escalation_id) ORDER BY r.agent""").fetchall()


def autonomy(folder: Path) -> list[dict]:
    path = folder / "traces" / "outbox" / "autonomy.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def published_stage(folder: Path, agent: str, version: str) -> str | None:
    lines = [d for d in autonomy(folder) if (d["agent"], d["version"]) == (agent, version)]
    return max(lines, key=lambda d: d["seq"])["stage"] if lines else None


def stage_of(db: Path, agent: str, version: str) -> release.Effective:
    conn = connect(db)
    return release.effective(conn, book_for_store(conn).get(agent), agent, version)


def test_verdicts_raise_one_item_each_and_a_roll_back_demotes_at_once(rel):
    deck = deck_for(rel)
    assert deck.release_tick() > 0
    got = {r["agent"]: r for r in items(rel / "store.db")}
    assert set(got) == {"approval-agent", "records-agent"}
    back, up = got["approval-agent"], got["records-agent"]
    assert (back["title"], back["action"], back["status"], back["kind"]) == \
        ("roll back approval-agent v2", "roll back", "pending", "release")
    assert up["title"] == "promote records-agent v2 from partial to bounded"
    # The verdict table it was raised on travels with it.
    verdict = json.loads(back["verdict"])
    assert verdict["verdict"] == "roll back" and verdict["n_canary"] == 120
    assert {m["key"]: m["verdict"] for m in verdict["metrics"]}["action_error_rate"] == "roll back"
    # The roll back demoted v2 to assisted at once, recorded and audited as an automatic demotion.
    eff = stage_of(rel / "store.db", "approval-agent", "v2")
    assert (eff.stage, eff.cause, eff.describe()) == ("assisted", "demoted", "assisted (demoted by verdict)")
    assert stage_of(rel / "store.db", "records-agent", "v2").stage == "partial"  # a promotion waits for a person
    conn = connect(rel / "store.db")
    kinds = [r[0] for r in conn.execute("SELECT kind FROM audit WHERE subject = ? ORDER BY id",
                                        (back["escalation_id"],))]
    assert kinds == ["release-item"]
    demotion = conn.execute("SELECT detail FROM audit WHERE kind = 'stage-change' AND detail LIKE '%demoted%'").fetchone()
    assert json.loads(demotion[0])["escalation_id"] == back["escalation_id"]
    # Published: the contract's stages, then the demotion.
    assert published_stage(rel, "approval-agent", "v2") == "assisted"
    assert published_stage(rel, "approval-agent", "v1") == "bounded"
    assert published_stage(rel, "records-agent", "v2") == "partial"
    v2 = [d["cause"] for d in autonomy(rel) if (d["agent"], d["version"]) == ("approval-agent", "v2")]
    assert v2 == ["contract", "demoted"]


def test_exactly_once_across_ticks_restarts_and_two_consoles(rel):
    deck_for(rel).release_tick()
    lines = autonomy(rel)
    deck_for(rel).release_tick()  # a restart
    other = deck_for(rel, operator="bob")  # a second console on the same store
    other.release_tick()
    assert len(items(rel / "store.db")) == 2
    assert autonomy(rel) == lines  # nothing published twice


def test_two_consoles_ticking_at_the_same_moment_raise_one_item(rel):
    db = rel / "store.db"
    conn = connect(db)
    book = book_for_store(conn)
    report = canary.analyse(conn, "approval-agent", "v1", "v2", now=FIXED_NOW, contract=book.get("approval-agent"),
                            sparklines=False)
    barrier = threading.Barrier(4)
    raised: list = []

    def tick() -> None:
        mine = connect(db)
        barrier.wait()
        raised.append(release.enqueue(mine, report, book.get("approval-agent"), now=FIXED_NOW))

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len([r for r in raised if r is not None]) == 1
    assert conn.execute("SELECT count(*) FROM escalations WHERE kind = 'release'").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM stage_changes WHERE cause = 'demoted'").fetchone()[0] == 1


def test_approving_a_promotion_changes_the_published_stage(rel):
    deck = deck_for(rel)
    deck.release_tick()
    up = next(r for r in items(rel / "store.db") if r["agent"] == "records-agent")
    refused = deck.decide(up["escalation_id"], "approve", "")
    assert not refused.ok and "reason is required" in refused.message  # high risk: the same reason rule
    result = deck.decide(up["escalation_id"], "approve", "suite green, metrics within tolerance")
    assert result.ok, result.message
    eff = stage_of(rel / "store.db", "records-agent", "v2")
    assert (eff.stage, eff.cause, eff.by, eff.describe()) == ("bounded", "promoted", "alice", "bounded (promoted by alice)")
    assert published_stage(rel, "records-agent", "v2") == "bounded"
    last = autonomy(rel)[-1]
    assert (last["cause"], last["by"], last["escalation_id"]) == ("promoted", "alice", up["escalation_id"])
    # The decision itself goes to the decisions outbox, saying what was decided about which version.
    [line] = [json.loads(x) for x in (rel / "traces" / "outbox" / "decisions.jsonl").read_text().splitlines()]
    assert line["release"] == {"agent": "records-agent", "version": "v2", "action": "promote", "from": "partial",
                               "to": "bounded"}
    # Audited like any decision, the stage change beside it; the checkpoint anchors both.
    conn = connect(rel / "store.db")
    recs = conn.execute("SELECT kind, actor FROM audit WHERE id > (SELECT max(id) FROM audit WHERE kind = 'release-item') "
                        "ORDER BY id").fetchall()
    assert [(r[0], r[1]) for r in recs][-2:] == [("decision", "alice"), ("stage-change", "alice")]
    # First decision wins: a second console's approve changes nothing.
    again = deck_for(rel, operator="bob").decide(up["escalation_id"], "deny", "too late")
    assert not again.ok and "already approved by alice" in again.message
    assert published_stage(rel, "records-agent", "v2") == "bounded"


def test_denying_a_promotion_keeps_the_version_where_it_is(rel):
    deck = deck_for(rel)
    deck.release_tick()
    up = next(r for r in items(rel / "store.db") if r["agent"] == "records-agent")
    before = autonomy(rel)
    assert deck.decide(up["escalation_id"], "deny", "wait for the weekly suite").ok
    assert stage_of(rel / "store.db", "records-agent", "v2").stage == "partial"
    assert autonomy(rel) == before
    deck.release_tick()  # the verdict still says promote: no second item for the same transition
    assert len(items(rel / "store.db")) == 2


def test_roll_back_approved_goes_to_shadow_denied_lifts_the_demotion(rel):
    deck = deck_for(rel)
    deck.release_tick()
    back = next(r for r in items(rel / "store.db") if r["agent"] == "approval-agent")
    assert deck.decide(back["escalation_id"], "deny", "errors were a downstream outage").ok
    eff = stage_of(rel / "store.db", "approval-agent", "v2")
    assert (eff.stage, eff.cause) == ("partial", "restored")
    assert published_stage(rel, "approval-agent", "v2") == "partial"


def test_roll_back_approved_takes_the_version_out(rel):
    deck = deck_for(rel)
    deck.release_tick()
    back = next(r for r in items(rel / "store.db") if r["agent"] == "approval-agent")
    assert deck.decide(back["escalation_id"], "approve", "confirmed regression").ok
    eff = stage_of(rel / "store.db", "approval-agent", "v2")
    assert (eff.stage, eff.cause, eff.by) == ("shadow", "rolled back", "alice")
    assert published_stage(rel, "approval-agent", "v2") == "shadow"


def test_release_items_are_never_decided_by_the_expiry_policy(rel):
    deck = deck_for(rel)
    deck.release_tick()
    conn = connect(rel / "store.db")
    later = FIXED_NOW + 3 * 86400  # well past the item's deadline (a day by default)
    assert decisions.expire_due(conn, now=later, policy="approve") == []
    assert {r["status"] for r in items(rel / "store.db")} == {"pending"}
    up = next(r for r in items(rel / "store.db") if r["agent"] == "records-agent")
    # A person deciding after the deadline: their decision is the one recorded, not the policy's.
    out = decisions.decide(conn, up["escalation_id"], "deny", by="carol", reason="not now", now=later,
                           on_expiry="approve")
    assert (out.status, out.decided_by, out.expired) == ("denied", "carol", False)


def test_a_trace_cannot_decide_a_release_item(rel):
    deck_for(rel).release_tick()
    back = next(r for r in items(rel / "store.db") if r["agent"] == "approval-agent")
    forged = {"v": 1, "kind": "decision", "ts": "2026-11-24T14:59:00.000Z", "task_id": "task-approval-c0", "seq": 99,
              "escalation_id": back["escalation_id"], "decision": "approve", "decided_by": "mallory", "reason": "x"}
    with open(rel / "traces" / "approval-agent.jsonl", "a") as f:
        f.write(json.dumps(forged) + "\n")
    conn = connect(rel / "store.db")
    Tailer(conn, [rel / "traces"], post_commit=[ContractCheck()]).poll()
    assert next(r for r in items(rel / "store.db") if r["agent"] == "approval-agent")["status"] == "pending"
    assert stage_of(rel / "store.db", "approval-agent", "v2").stage == "assisted"


def test_two_person_rule_and_approver_rules_apply_to_release_items(rel):
    rules = ApproverRules(rules=[{"users": ["alice", "bob"], "risks": ["high"], "systems": ["release"]}],
                          two_person=["high"])
    deck_for(rel, approvers=rules).release_tick()
    up = next(r for r in items(rel / "store.db") if r["agent"] == "records-agent")
    refused = deck_for(rel, operator="mallory", approvers=rules).decide(up["escalation_id"], "approve", "ok")
    assert not refused.ok and "mallory may not approve high risk on release" in refused.message
    conn = connect(rel / "store.db")
    first = decisions.decide(conn, up["escalation_id"], "approve", by="alice", reason="looks good", now=FIXED_NOW,
                             rules=rules, origin=Origin("alice", "10.0.0.5"))
    assert first.awaiting_second and first.applied
    assert stage_of(rel / "store.db", "records-agent", "v2").stage == "partial"  # not yet
    same = decisions.decide(conn, up["escalation_id"], "approve", by="alice", reason="again", now=FIXED_NOW,
                            rules=rules, origin=Origin("alice", "10.0.0.5"))
    assert not same.applied and "second, different approver" in same.note
    second = decisions.decide(conn, up["escalation_id"], "approve", by="bob", reason="agreed", now=FIXED_NOW,
                              rules=rules, origin=Origin("bob", "10.0.0.6"))
    assert second.applied and second.status == "approved"
    assert stage_of(rel / "store.db", "records-agent", "v2").stage == "bounded"
    deck_for(rel, approvers=rules).publish_stages()
    assert published_stage(rel, "records-agent", "v2") == "bounded"


def test_a_hold_past_the_contracts_time_raises_a_promotion(tmp_path):
    # 300 tasks a version: not yet enough to confirm; the contract puts it to a person after an hour of holding.
    traces = tmp_path / "traces"
    write_cohorts(traces, "records-agent", start=FIXED_NOW - 7200, baseline_n=300, canary_n=300)
    contracts(traces, extra_canary="escalate_hold_after = 3600")
    conn = connect(tmp_path / "store.db")
    Tailer(conn, [traces], post_commit=[ContractCheck()]).poll()
    contract = book_for_store(conn).get("records-agent")
    report = canary.analyse(conn, "records-agent", "v1", "v2", now=FIXED_NOW, contract=contract, sparklines=False)
    assert report.verdict == "hold"
    # Not before the time: the canary's first task is two hours old; an hour after it, nothing yet.
    assert release.enqueue(conn, report, contract, now=FIXED_NOW - 7200 + 1800) is None
    raised = release.enqueue(conn, report, contract, now=FIXED_NOW)
    assert raised is not None and raised.title == "promote records-agent v2 from partial to bounded"
    assert conn.execute("SELECT trigger FROM release_items").fetchone()[0] == "verdict hold for longer than 3600 s"
    # Without the setting a hold never raises anything.
    contracts(traces)
    plain = book_for_store(conn).get("records-agent")
    conn.execute("DELETE FROM release_items")
    assert release.enqueue(conn, report, plain, now=FIXED_NOW) is None


def test_the_suite_result_for_the_version_is_attached(rel):
    conn = connect(rel / "store.db")
    with conn:
        cur = conn.execute("INSERT INTO suite_runs (started, finished, command, agent, version, passed, cases, runs, "
                           "by_flavour) VALUES (?, ?, 'agent-v2', 'approval-agent', 'v2', 27, 30, 30, '{}')",
                           (FIXED_NOW - 600, FIXED_NOW - 500))
        for case in ("adv-01", "adv-02", "amb-07"):
            conn.execute("INSERT INTO suite_cases (run_id, case_id, flavour, passed, flaky, passes, runs) "
                         "VALUES (?, ?, 'adversarial', 0, 0, 0, 1)", (cur.lastrowid, case))
    deck = deck_for(rel)
    deck.release_tick()
    back = next(r for r in items(rel / "store.db") if r["agent"] == "approval-agent")
    view = deck.escalation(back["escalation_id"])
    assert view is not None and view.release is not None
    assert (view.release.suite["passed"], view.release.suite["cases"]) == (27, 30)
    assert view.release.suite["failing"] == ["adv-01", "adv-02", "amb-07"]
    assert view.release.stage_now == "assisted (demoted by verdict)"
    none = next(r for r in items(rel / "store.db") if r["agent"] == "records-agent")
    assert deck.escalation(none["escalation_id"]).release.suite is None


def test_a_pending_roll_back_holds_a_contract_edit_at_assisted(rel):
    deck = deck_for(rel)
    deck.release_tick()
    text = (rel / "traces" / "contracts" / "approval-agent.toml").read_text()
    (rel / "traces" / "contracts" / "approval-agent.toml").write_text(text.replace('v2 = "partial"', 'v2 = "bounded"'))
    deck_for(rel).release_tick()
    assert stage_of(rel / "store.db", "approval-agent", "v2").stage == "assisted"
    assert published_stage(rel, "approval-agent", "v2") == "assisted"


def test_a_contract_edit_is_noticed_from_the_stage_it_named_not_from_the_ledgers_wording(rel):
    deck = deck_for(rel)
    deck.release_tick()
    conn = connect(rel / "store.db")
    count = conn.execute("SELECT count(*) FROM stage_changes").fetchone()[0]
    # However a row's explanation is worded (or reworded by a later release), an unchanged contract writes nothing.
    conn.execute("UPDATE stage_changes SET why = 'reworded' WHERE cause = 'contract'")
    deck_for(rel).release_tick()
    assert conn.execute("SELECT count(*) FROM stage_changes").fetchone()[0] == count
    # An edit writes one row, naming the stage the contract now says.
    text = (rel / "traces" / "contracts" / "records-agent.toml").read_text()
    old = next(line for line in text.splitlines() if line.startswith("v1 = "))
    (rel / "traces" / "contracts" / "records-agent.toml").write_text(text.replace(old, 'v1 = "shadow"'))
    deck_for(rel).release_tick()
    rows = conn.execute("SELECT stage, contract_stage FROM stage_changes WHERE id > (SELECT max(id) - 1 "
                        "FROM stage_changes)").fetchall()
    assert conn.execute("SELECT count(*) FROM stage_changes").fetchone()[0] == count + 1
    assert [tuple(r) for r in rows] == [("shadow", "shadow")]


def test_read_only_console_raises_nothing(rel):
    assert deck_for(rel, read_only=True).release_tick() == 0
    assert items(rel / "store.db") == []


def test_health_is_quiet_without_release_problems(rel):
    deck_for(rel).release_tick()
    conn = connect(rel / "store.db")
    assert not [p for p in check(conn, FIXED_NOW).problems if p.key.startswith("release:")]


class Hook:
    """A local release hook on 127.0.0.1: fails the first ``fail_first`` calls with 503, then answers 200."""

    def __init__(self, fail_first: int = 0, status: int = 200) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.fail_first, self.status = fail_first, status
        self.calls: list[tuple[str | None, dict]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                hook.calls.append((self.headers.get("Idempotency-Key"), body))
                fail = len(hook.calls) <= hook.fail_first
                self.send_response(503 if fail else hook.status)
                self.end_headers()
                self.wfile.write(b'{"rolled": "\\u001b[31m[bold]out[/bold]", "auth": "Bearer s3cr3tt0ken99"}'
                                 if not fail else b"busy")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/release"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hook:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def fast(deck: DeckService) -> DeckService:
    deck.delivery.backoff = 0.0  # retries without waiting (the backoff doubling itself is delivery's own test)
    return deck


def test_release_hook_is_told_each_stage_change_once_with_its_key_and_its_answer_is_recorded(rel):
    with Hook(fail_first=1) as hook:
        contracts(rel / "traces", hook=hook.url)
        deck = fast(deck_for(rel, allow_hosts=frozenset({"127.0.0.1"})))
        deck.release_tick()
        bodies = [b for _, b in hook.calls]
        # approval-agent's contract stages and the demotion; the first call failed once and was retried.
        assert [(b["version"], b["stage"], b["cause"]) for b in bodies][-1] == ("v2", "assisted", "demoted")
        keys = [k for k, _ in hook.calls]
        assert keys[0] == keys[1] and len(set(keys)) == len(bodies) - 1  # the retry reused its Idempotency-Key
        assert all(b["agent"] == HOOKED for b in bodies)  # records-agent names no hook
        deck.release_tick()
        assert len(hook.calls) == len(bodies)  # nothing called twice
    back = next(r for r in items(rel / "store.db") if r["agent"] == HOOKED)
    view = deck.escalation(back["escalation_id"])
    [demotion] = view.release.changes
    assert (demotion["hook_state"], demotion["hook_status"]) == ("delivered", 200)
    assert "rolled" in demotion["hook_answer"]
    # Shown, never interpreted: the answer's escapes and markup come out as plain text.
    from agentdeck.console.widgets.escalation_detail import render

    text = render(view, FIXED_NOW)
    assert "[bold]out[/bold]" in text.plain and "\x1b" not in text.plain
    assert "s3cr3tt0ken99" not in demotion["hook_answer"]  # a token in the answer is masked before it is kept
    assert "hook delivered HTTP 200" in text.plain


def test_a_hook_not_on_the_allowlist_is_never_called_and_shows_on_problems_until_retried(rel):
    with Hook() as hook:
        contracts(rel / "traces", hook=hook.url)
        deck = deck_for(rel)  # no allowed hosts
        deck.release_tick()
        assert hook.calls == []
        conn = connect(rel / "store.db")
        problems = [p for p in check(conn, FIXED_NOW).problems if p.key.startswith("release:")]
        assert problems and all("release hook blocked" in p.what for p in problems)
        assert "--allow-host" in problems[0].todo and "R" in problems[0].todo
        back = next(r for r in items(rel / "store.db") if r["agent"] == HOOKED)
        assert "blocked" in deck.escalation(back["escalation_id"]).release.changes[0]["hook_state"]
        # The operator allows the host and presses R on the item: the hook is called, the problem goes.
        allowed = fast(deck_for(rel, allow_hosts=frozenset({"127.0.0.1"})))
        result = allowed.retry_delivery(back["escalation_id"])
        assert result.ok, result.message
        assert [b["cause"] for _, b in hook.calls] == ["demoted"]
        left = [p for p in check(conn, FIXED_NOW).problems if p.key.startswith("release:")]
        assert all(back["escalation_id"] not in p.goto + p.detail for p in left)
        assert len(left) == len(problems) - 1


def test_a_hook_that_keeps_failing_is_marked_failed_not_silent(rel):
    with Hook(status=500, fail_first=0) as hook:
        contracts(rel / "traces", hook=hook.url)
        deck = fast(deck_for(rel, allow_hosts=frozenset({"127.0.0.1"})))
        deck.release_tick()
        conn = connect(rel / "store.db")
        failed = conn.execute("SELECT hook_state, hook_attempts, hook_error FROM stage_changes "
                              "WHERE cause = 'demoted'").fetchone()
        assert (failed[0], failed[1]) == ("failed", deck.delivery.attempts)
        assert "HTTP 500" in failed[2]
        assert any("release hook failed" in p.what for p in check(conn, FIXED_NOW).problems)


def test_canary_enqueue_from_the_command_line_raises_the_item_once(rel, capsys):
    from agentdeck.console.cli import main

    args = ["canary", "--db", str(rel / "store.db"), "--agent", "approval-agent", "--baseline", "v1",
            "--canary", "v2", "--now", str(FIXED_NOW), "--enqueue",
            "--outbox", str(rel / "traces" / "outbox" / "decisions.jsonl")]
    assert main(args) == 2  # roll back
    first = capsys.readouterr().err
    assert "queued rel-" in first and "roll back approval-agent v2" in first and "demoted to assisted" in first
    assert published_stage(rel, "approval-agent", "v2") == "assisted"
    assert main(args) == 2
    assert "already in the queue" in capsys.readouterr().err
    # A console ticking afterwards finds it raised.
    deck_for(rel).release_tick()
    assert [r["agent"] for r in items(rel / "store.db")].count("approval-agent") == 1


def test_a_new_release_item_is_notified_like_any_escalation(rel):
    from agentdeck.console.notify.rules import evaluate
    from agentdeck.console.notify.settings import RuleSettings

    deck_for(rel).release_tick()
    conn = connect(rel / "store.db")
    fires = evaluate(conn, RuleSettings(escalation="high"), FIXED_NOW, enabled={"escalation"}).fires
    back = next(r for r in items(rel / "store.db") if r["agent"] == "approval-agent")
    [fire] = [f for f in fires if f.subject == back["escalation_id"]]
    assert "high risk escalation from approval-agent: roll back on release needs a decision" in fire.summary
    assert "roll back approval-agent v2" in fire.summary


def test_canary_headline_shows_the_effective_stage_and_why(rel):
    from agentdeck.console.widgets.canary_format import headline

    conn = connect(rel / "store.db")
    contract = book_for_store(conn).get("approval-agent")

    def shown() -> str:
        report = canary.analyse(connect(rel / "store.db"), "approval-agent", "v1", "v2", now=FIXED_NOW,
                                contract=contract, sparklines=False)
        return headline(report).plain

    assert "v2 (partial, 120 tasks)" in shown()  # the contract's stage, as before
    deck = deck_for(rel)
    deck.release_tick()
    assert "v2 (assisted (demoted by verdict), 120 tasks)" in shown()
    assert "v1 (bounded, 200 tasks)" in shown()
    back = next(r for r in items(rel / "store.db") if r["agent"] == "approval-agent")
    assert deck.decide(back["escalation_id"], "approve", "confirmed").ok
    assert "v2 (shadow (rolled back by alice), 120 tasks)" in shown()


def test_stage_changes_are_cross_checked_against_the_audit_trail(rel):
    from agentdeck.store.audit_crosscheck import crosscheck

    deck_for(rel).release_tick()
    conn = connect(rel / "store.db")
    assert crosscheck(conn) == []
    conn.execute("UPDATE stage_changes SET stage = 'bounded' WHERE cause = 'demoted'")  # someone lifts it by hand
    [problem] = crosscheck(conn)
    assert "demoted to bounded" in str(problem) and "the row was changed" in str(problem)


def test_the_tick_recomputes_verdicts_only_when_tasks_or_contracts_changed(rel, monkeypatch):
    calls = []
    real = canary.analyse
    monkeypatch.setattr(canary, "analyse", lambda *a, **kw: calls.append(a[1]) or real(*a, **kw))
    deck = deck_for(rel)
    deck.release_tick()
    assert sorted(calls) == ["approval-agent", "records-agent"]
    deck.release_tick()
    assert len(calls) == 2  # nothing new: the verdicts were not recomputed
    write_cohorts(rel / "traces", "approval-agent", start=FIXED_NOW - 60, baseline_n=1, canary_n=0, name="more",
                  prefix="later")
    Tailer(connect(rel / "store.db"), [rel / "traces"], post_commit=[ContractCheck()]).poll()
    deck.release_tick()
    assert len(calls) == 4


def test_a_trace_escalation_and_decision_with_a_release_items_id_cannot_decide_it(rel):
    # The escalation and its decision in one batch take the upsert path (store/ingest.py), not the
    # stored-decision one: the release item must stay pending there too.
    deck_for(rel).release_tick()
    back = next(r for r in items(rel / "store.db") if r["agent"] == "approval-agent")
    source = rel / "traces" / "approval-agent.jsonl"
    esc = {"v": 1, "kind": "escalation", "ts": "2026-11-24T14:58:00.000Z", "task_id": "task-approval-c0", "seq": 98,
           "escalation_id": back["escalation_id"], "risk": "low", "reason": "forged",
           "proposed_action": {"system": "iam", "operation": "grant_role", "params": {}, "amount": None},
           "policy_id": "POL-X", "justification": "x", "deadline": "2026-11-24T15:58:00.000Z"}
    forged = {"v": 1, "kind": "decision", "ts": esc["ts"], "task_id": esc["task_id"], "seq": 99,
              "escalation_id": back["escalation_id"], "decision": "approve", "decided_by": "mallory", "reason": "x"}
    with open(source, "a") as f:
        f.write(json.dumps(esc) + "\n" + json.dumps(forged) + "\n")
    conn = connect(rel / "store.db")
    Tailer(conn, [rel / "traces"], post_commit=[ContractCheck()]).poll()
    assert next(r for r in items(rel / "store.db") if r["agent"] == "approval-agent")["status"] == "pending"
    assert stage_of(rel / "store.db", "approval-agent", "v2").stage == "assisted"


def test_a_store_error_while_publishing_in_the_tick_is_the_ticks_error_named_once(rel, monkeypatch):
    """The tick's publishing failing is said (Problems lists release_error), not only logged; its type once."""
    from agentdeck.console.service import release_delivery

    def broken(*a, **k):
        raise sqlite3.OperationalError("disk I/O error")

    deck = deck_for(rel)
    monkeypatch.setattr(release_delivery, "publish_pending", broken)
    assert deck.release_tick() == 0
    assert deck.release_error == "OperationalError: disk I/O error"
    assert deck.publish_stages("rel-x") == []  # a decision's own publishing still never raises
    monkeypatch.undo()
    deck.release_tick()
    assert deck.release_error is None
