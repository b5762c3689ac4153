"""The Replay screen driven with the Pilot: navigation, play, opening by id, compensation, export."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from textual.widgets import Input, Static

from agentdeck.console.widgets.compensation_dialog import CompensationDialog
from agentdeck.console.widgets.replay_timeline import ReplayTimeline
from agentdeck.replay.evidence import verify_packet
from agentdeck.store.db import connect
from conftest import HTTP, point_hook_at
from tasks_support import screen_lines

SAMPLE_TRACES = Path(__file__).resolve().parents[1] / "sample_data" / "traces"


async def settle(app, pilot) -> None:
    for _ in range(3):
        await pilot.pause()
        await app.settled()
    await pilot.pause()


async def until(pilot, condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.02)


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def open_task(app, pilot, task: str) -> ReplayTimeline:
    app.open_replay(task)
    await settle(app, pilot)
    return app.screen.query_one(ReplayTimeline)


async def test_keys_walk_the_decision_path(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        timeline = await open_task(app, pilot, "req-0001")
        assert app.current_mode == "replay" and len(timeline.steps) == 10
        assert "task-0001" in text_of(app, "#replay-info") and "POL-REFUND-3@4" in text_of(app, "#replay-info")
        await pilot.press("n", "n")
        assert timeline.cursor == 2 and "payments.lookup_order" in text_of(app, "#detail-head")
        await pilot.pause()
        assert "Result seq 3: ok in" in text_of(app, "#detail-context")
        await pilot.press("n")
        await pilot.pause()
        assert 'Call seq 2 input: {"user": "alice"}' in text_of(app, "#detail-context")
        await pilot.press("n", "n")
        await pilot.pause()
        assert "Verdict: escalate by POL-REFUND-3@4" in text_of(app, "#detail-context")
        await pilot.press("G")
        assert timeline.cursor == 9
        await pilot.press("g")
        assert timeline.cursor == 0
        await pilot.press("right_square_bracket")
        assert timeline.cursor == 6
        await pilot.pause()
        assert "approved by tom.r" in text_of(app, "#detail-context")
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert timeline.cursor == 8
        await pilot.pause()
        context = text_of(app, "#detail-context")
        assert "Changed refunded: 0 → 2390.45" in context and "press c" in context
        await pilot.press("p")
        assert timeline.cursor == 7


async def test_space_plays_and_pauses(sample_db, make_app, monkeypatch):
    # Slow enough that a loaded machine notices step 2 well before the end: at the end, space starts the
    # replay again from the first step instead of pausing (CI once saw 0.1 s play all ten steps first).
    monkeypatch.setattr("agentdeck.console.screens.replay.PLAY_INTERVAL", 0.3)
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        timeline = await open_task(app, pilot, "task-0001")
        await pilot.press("space")
        await until(pilot, lambda: timeline.cursor >= 2)
        await pilot.press("space")
        # (the pause said on screen: the key was handled, not still on its way)
        await until(pilot, lambda: "paused" in text_of(app, "#replay-status"))
        stopped_at = timeline.cursor
        await pilot.pause(0.7)  # two ticks' time: a paused replay does not move
        assert timeline.cursor == stopped_at < 9
        await pilot.press("space")
        await until(pilot, lambda: "end of the task" in text_of(app, "#replay-status"))
        assert timeline.cursor == 9


async def test_without_a_task_an_id_can_be_typed(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("4")
        await settle(app, pilot)
        box = app.screen.query_one("#replay-open", Input)
        assert box.display and not box.has_focus  # the number keys still switch screens
        await pilot.press("o")
        assert box.has_focus
        await pilot.press(*"nope", "enter")
        await settle(app, pilot)
        assert "No task or request 'nope'" in text_of(app, "#replay-info") and box.has_focus
        await pilot.press(*"req-0011", "enter")
        await settle(app, pilot)
        assert "task-0011" in text_of(app, "#replay-info") and not box.display


async def compensate_refund(app, pilot) -> None:
    """On Replay: open task-0001, jump to its refund (the third decision point) and press c."""
    await open_task(app, pilot, "task-0001")
    await pilot.press("right_square_bracket", "right_square_bracket", "right_square_bracket", "c")
    await settle(app, pilot)


async def test_compensate_from_the_screen_then_refused_the_second_time(sample_db, make_app, sor):
    point_hook_at(sample_db, sor.url)
    app = make_app(sample_db, allow_hosts=frozenset({sor.allow_entry}))
    async with app.run_test(size=(140, 40)) as pilot:
        await compensate_refund(app, pilot)
        dialog = app.screen
        assert isinstance(dialog, CompensationDialog)
        plan_text = str(dialog.query_one("#comp-plan", Static).render())
        assert f"POST {sor.url}/compensate" in plan_text and "Idempotency-Key: undo-act-0001" in plan_text
        assert HTTP.get(f"{sor.url}/actions/act-0001").json()["state"] == "applied"  # nothing ran yet
        # A high-risk action: undoing it needs a reason, as approving it did. Enter alone runs nothing.
        assert dialog.query_one("#comp-reason").has_focus
        await pilot.press("enter")
        await settle(app, pilot)
        assert "A reason is required" in text_of(app, "#comp-hint")  # under the reason box, always in view
        assert HTTP.get(f"{sor.url}/actions/act-0001").json()["state"] == "applied"
        await pilot.press(*"refund was a duplicate", "enter")
        await settle(app, pilot)
        assert "Compensated (attempt 1)" in text_of(app, "#comp-status")
        assert HTTP.get(f"{sor.url}/actions/act-0001").json()["state"] == "compensated"
        conn = connect(sample_db)
        assert conn.execute("SELECT reason FROM compensations").fetchall()[0][0] == "refund was a duplicate"
        detail = conn.execute("SELECT detail FROM audit WHERE kind = 'compensation.requested'").fetchone()[0]
        assert json.loads(detail)["reason"] == "refund was a duplicate"  # recorded before it ran
        conn.close()
        await pilot.press("escape")
        await settle(app, pilot)
        assert "Compensated: by tester" in text_of(app, "#detail-context")
        await pilot.press("c")
        await settle(app, pilot)
        assert "already compensated by tester" in str(app.screen.query_one("#comp-plan", Static).render())
        await pilot.press("escape")
        await settle(app, pilot)
        assert not isinstance(app.screen, CompensationDialog)


async def test_failed_compensation_can_be_retried_in_the_dialog(sample_db, make_app, sor):
    point_hook_at(sample_db, sor.url)
    sor.sor.fail_next = 1
    app = make_app(sample_db, allow_hosts=frozenset({sor.allow_entry}))
    async with app.run_test(size=(140, 40)) as pilot:
        await compensate_refund(app, pilot)
        await pilot.press(*"duplicate", "enter")
        await settle(app, pilot)
        assert "Failed (attempt 1)" in text_of(app, "#comp-status")
        assert app.screen.query_one("#retry").has_focus
        await pilot.press("enter")
        await settle(app, pilot)
        assert "Compensated (attempt 2)" in text_of(app, "#comp-status")
        assert HTTP.get(f"{sor.url}/actions/act-0001").json()["undo_count"] == 1


async def test_compensate_key_off_an_action_says_what_to_do(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        await open_task(app, pilot, "task-0001")
        await pilot.press("c")
        assert "Move to an action step" in text_of(app, "#replay-status")
        assert not isinstance(app.screen, CompensationDialog)


async def test_export_writes_a_verifiable_packet_and_says_where(sample_db, make_app, tmp_path, monkeypatch):
    app = make_app(sample_db, evidence_dir=str(tmp_path / "ev"))
    async with app.run_test(size=(140, 40)) as pilot:
        await open_task(app, pilot, "task-0001")
        await pilot.press("e")
        await settle(app, pilot)
        (packet,) = (tmp_path / "ev").glob("*.md")
        assert str(packet.resolve()) in text_of(app, "#replay-status")
        await pilot.press("e")  # same second (fixed clock): a second file, the first is kept
        await settle(app, pilot)
        assert len(list((tmp_path / "ev").glob("*.md"))) == 2
    conn = connect(sample_db)
    assert verify_packet(packet.read_text(), conn) == []
    assert conn.execute("SELECT count(*) FROM audit WHERE kind = 'evidence.export'").fetchone()[0] == 2


async def test_trace_markup_is_shown_literally(tmp_path, make_app):
    hostile = "[@click=app.quit]boom[/] [bold red]x\x1b[2J"
    lines = [
        {"v": 1, "kind": "task_start", "ts": "2026-11-24T10:00:00Z", "task_id": "t-hostile", "seq": 0, "request_id": "r-h",
         "agent": "a[b]", "agent_version": {"id": "v[1]"}, "request": hostile},
        {"v": 1, "kind": "plan", "ts": "2026-11-24T10:00:01Z", "task_id": "t-hostile", "seq": 1, "summary": hostile},
        {"v": 1, "kind": "tool_call", "ts": "2026-11-24T10:00:02Z", "task_id": "t-hostile", "seq": 3, "call_id": "c",
         "tool": "x", "input": {"[red]k": hostile, "big": "y" * 50_000}},
    ]
    folder = tmp_path / "tr"
    folder.mkdir()
    (folder / "h.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    from agentdeck.store.tailer import Tailer

    conn = connect(tmp_path / "h.db")
    Tailer(conn, [folder]).poll()
    conn.close()
    app = make_app(tmp_path / "h.db")
    async with app.run_test(size=(140, 40)) as pilot:
        timeline = await open_task(app, pilot, "r-h")
        assert [s.kind for s in timeline.steps] == ["task_start", "plan", "gap", "tool_call"]
        line = "".join(seg.text for seg in timeline.render_line(1))
        assert "[@click=app.quit]boom[/]" in line and "␛[2J" in line and "\x1b" not in line
        await pilot.press("n")
        await pilot.pause()
        assert "[@click=app.quit]boom[/]" in text_of(app, "#detail-head")
        await pilot.press("G")
        await pilot.pause()
        await pilot.click("#replay-timeline", offset=(5, 1))  # clicking a hostile line is just a click
        assert app.is_running and timeline.cursor == 1


async def test_json_is_foldable_and_large_payloads_are_bounded(tmp_path, make_app):
    from textual.widgets import Tree

    from agentdeck.store.tailer import Tailer

    big = {"v": 1, "kind": "tool_result", "ts": "2026-11-24T10:00:00Z", "task_id": "t-big", "seq": 0, "call_id": "c",
           "tool": "x", "output": {"blob": "z" * 100_000, "rows": [{"i": i} for i in range(5000)]}}
    folder = tmp_path / "tr"
    folder.mkdir()
    (folder / "b.jsonl").write_text(json.dumps(big) + "\n")
    conn = connect(tmp_path / "b.db")
    Tailer(conn, [folder]).poll()
    conn.close()
    app = make_app(tmp_path / "b.db")
    async with app.run_test(size=(140, 40)) as pilot:
        await open_task(app, pilot, "t-big")
        tree = app.screen.query_one("#detail-json", Tree)

        def labels(node):
            for child in node.children:
                yield str(child.label)
                yield from labels(child)

        shown = list(labels(tree.root))
        assert any("(100,000 chars)" in s for s in shown)
        assert any("more not shown" in s for s in shown)
        assert len(shown) <= 450 and max(len(s) for s in shown) < 400
        output = next(n for n in tree.root.children if str(n.label).startswith("output"))
        assert output.is_expanded
        await pilot.press("tab")
        assert tree.has_focus
        tree.move_cursor(output)
        await pilot.press("enter")
        assert not output.is_expanded


async def test_confirmation_shows_hostile_hook_text_literally(sample_db, make_app):
    conn = connect(sample_db)
    hook = {"type": "http", "method": "POST", "url": "http://127.0.0.1:8765/compensate",
            "headers": {"X-Note": "[@click=app.quit]x[/]", "Authorization": "Bearer sekrit-token-123456"},
            "body": {"note": "[bold red]boom\x1b[2J"},
            "idempotency_key": "undo-[b]"}
    conn.execute("UPDATE actions SET compensation = ? WHERE action_id = 'act-0001'", (json.dumps(hook),))
    conn.close()
    app = make_app(sample_db, allow_hosts=frozenset({"127.0.0.1:8765"}))
    async with app.run_test(size=(140, 40)) as pilot:
        await compensate_refund(app, pilot)
        shown = str(app.screen.query_one("#comp-plan", Static).render())
        assert "X-Note: [@click=app.quit]x[/]" in shown and "undo-[b]" in shown
        assert "[bold red]boom\\u001b[2J" in shown and "\x1b" not in shown
        assert "sekrit-token" not in shown and "Authorization: [REDACTED]" in shown and "1 secret value(s) masked" in shown
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.is_running and not isinstance(app.screen, CompensationDialog)


async def test_a_running_task_grows_live_and_the_cursor_stays(sample_db, make_app, tmp_path):
    from test_replay_reconstruct import _events

    traces = tmp_path / "live"
    traces.mkdir()
    events = _events("live")
    path = traces / "agent.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events[:4]))
    app = make_app(sample_db, traces=[traces])
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: (app.counters is not None and app.data_version > 0))
        app.open_replay("req-live")  # no settle(): the tailer worker never completes
        await pilot.pause()
        timeline = app.screen.query_one(ReplayTimeline)
        await until(pilot, lambda: len(timeline.steps) == 4)
        await pilot.press("n", "n")
        with path.open("a") as f:
            f.write("".join(json.dumps(e) + "\n" for e in events[4:]))
        await until(pilot, lambda: len(timeline.steps) == len(events))
        assert timeline.cursor == 2 and "outcome success" in text_of(app, "#replay-info")


async def test_result_and_close_button_both_show_at_80x24(sample_db, make_app, sor):
    # The result goes under the plan in the dialog's scroll; it must not push Close off a 24-row screen.
    point_hook_at(sample_db, sor.url)
    sor.sor.fail_next = 1
    app = make_app(sample_db, allow_hosts=frozenset({sor.allow_entry}))
    async with app.run_test(size=(80, 24)) as pilot:
        await compensate_refund(app, pilot)
        await pilot.press(*"duplicate", "enter")
        await settle(app, pilot)
        dialog = app.screen
        assert isinstance(dialog, CompensationDialog)
        screen = dialog.region
        status = dialog.query_one("#comp-status", Static)
        assert "Failed (attempt 1)" in text_of(app, "#comp-status")
        # Scrolled into view: the status's top line is inside the visible part of the scroll.
        assert dialog.query_one("VerticalScroll").region.contains(status.region.x, status.region.y)
        for bid in ("cancel", "retry"):
            assert screen.contains_region(dialog.query_one(f"#{bid}").region), bid
        assert str(dialog.query_one("#cancel").label) == "Close"  # type: ignore[attr-defined]


async def test_a_successful_compensation_shows_its_outcome_line_first_at_80x24(sample_db, make_app, sor):
    # The answer's JSON body is longer than the dialog's scroll at 24 rows: the outcome line
    # ("Compensated (attempt 1)") is what must be in view, not the body's closing braces.
    point_hook_at(sample_db, sor.url)
    app = make_app(sample_db, allow_hosts=frozenset({sor.allow_entry}))
    async with app.run_test(size=(80, 24)) as pilot:
        await compensate_refund(app, pilot)
        await pilot.press(*"duplicate", "enter")
        await settle(app, pilot)
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, CompensationDialog)
        assert "Compensated (attempt 1)" in text_of(app, "#comp-status")
        status = dialog.query_one("#comp-status", Static)
        scroll = dialog.query_one("VerticalScroll")
        assert status.region.height > scroll.region.height, "the body does not fit: the test needs it not to"
        assert scroll.region.contains(status.region.x, status.region.y), (status.region, scroll.region)
        assert any("Compensated (attempt 1)" in line for line in screen_lines(app))


async def _open_while_changes_come(app, pilot, change) -> list:
    """Open task-0001 on Replay; during its rebuild ``change()`` runs on the worker and the app hears a store
    change (data_version). Returns the views the service's replay answered for it."""
    deck = app.deck
    answered: list = []
    inner = deck.replay

    def replay(wanted, known=None):
        view = inner(wanted, known)
        if wanted == "task-0001" and not answered:
            change()
            app.call_from_thread(lambda: setattr(app, "data_version", app.data_version + 1))
        answered.append(view)
        return view

    deck.replay = replay
    app.open_replay("task-0001")
    await settle(app, pilot)
    return answered


async def test_a_change_heard_during_a_rebuild_that_left_the_task_alone_needs_no_second_read(sample_db, make_app):
    """A busy fleet commits while a big task is rebuilt: its key checked again after the rebuild covers them."""
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        answered = await _open_while_changes_come(app, pilot, lambda: None)
        screen = app.screen
        assert len(answered) == 1 and answered[0].rec.task_id == "task-0001"
        assert screen.rec.task_id == "task-0001" and screen._changes_covered >= screen._changes_heard


async def test_a_change_to_the_task_during_its_rebuild_is_read_again(sample_db, make_app):
    """The same, but the change touched what the reconstruction shows (an audit record): read again, shown."""
    from agentdeck.store import audit
    from agentdeck.store.txn import atomic

    def record() -> None:
        with connect(sample_db) as conn, atomic(conn):
            audit.append(conn, ts=1.0, actor="t", kind="note", subject="task-0001", detail={"n": 1})

    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        answered = await _open_while_changes_come(app, pilot, record)
        screen = app.screen
        assert len(answered) == 2 and answered[1] is not None  # read again: the key had changed
        assert any(a["kind"] == "note" for a in screen.rec.audit)


async def test_timeline_lines_follow_the_cursor_and_the_task_though_lines_are_kept(sample_db, make_app):
    """Built lines are kept between frames: the cursor's highlight still moves with j/k, and another task's
    steps at the same indexes are drawn as its own, not the last task's."""
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        timeline = await open_task(app, pilot, "task-0001")
        cursor_bg = timeline.get_component_rich_style("replay-timeline--cursor").bgcolor

        def highlighted() -> list[int]:
            return [y for y in range(5) if any(seg.style and seg.style.bgcolor == cursor_bg
                                               for seg in timeline.render_line(y))]

        def text(y: int) -> str:
            return "".join(seg.text for seg in timeline.render_line(y))

        assert highlighted() == [0] and "task_start" in text(0) and "plan" in text(1)
        await pilot.press("j", "j")
        await settle(app, pilot)
        assert highlighted() == [2]
        await pilot.press("k")
        await settle(app, pilot)
        assert highlighted() == [1]
        other = next(r[0] for r in connect(sample_db).execute(
            "SELECT task_id FROM tasks WHERE task_id != 'task-0001' AND events > 3 ORDER BY task_id"))
        before = [text(y) for y in range(3)]
        timeline = await open_task(app, pilot, other)
        after = [text(y) for y in range(3)]
        assert after != before and all(f"{s.seq:>7}" in line and s.kind in line
                                       for s, line in zip(app.screen.rec.steps, after))


async def _open_and_hear_after_the_answer(app, pilot, monkeypatch, numbered_before_check: bool) -> list:
    """Open task-0001 on Replay; a store change is heard just after its answer is shown, numbered (as the store
    watcher numbers what it posts) before the rebuild's check, or after it. Returns the service's answers."""
    from agentdeck.console.messages import Ingested
    from agentdeck.console.screens.replay import ReplayScreen

    deck = app.deck
    answered: list = []
    seqs: list[int] = []
    inner, loaded = deck.replay, ReplayScreen._loaded

    def replay(wanted, known=None):
        view = inner(wanted, known)
        if wanted == "task-0001" and not answered and numbered_before_check:
            seqs.append(app.next_change_seq())  # the watcher noticed a commit before the check began
        answered.append(view)
        return view

    def loaded_then_heard(self, wanted, view, checked=None):
        loaded(self, wanted, view, checked)
        if view is not None and not seqs:
            seqs.append(app.next_change_seq())  # noticed only now, after the check
        if view is not None and len(seqs) == 1:
            app.post_message(Ingested(seq=seqs[0]))  # heard after the answer, whenever it was numbered
            seqs.append(0)

    deck.replay = replay
    monkeypatch.setattr(ReplayScreen, "_loaded", loaded_then_heard)
    app.open_replay("task-0001")
    await settle(app, pilot)
    await until(pilot, lambda: app.change_heard >= seqs[0])  # the change was heard
    await settle(app, pilot)
    return answered


async def test_a_change_committed_before_the_check_but_heard_after_the_answer_is_not_read_again(
        sample_db, make_app, monkeypatch):
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        answered = await _open_and_hear_after_the_answer(app, pilot, monkeypatch, numbered_before_check=True)
        screen = app.screen
        assert len(answered) == 1 and screen.rec.task_id == "task-0001"
        assert screen._changes_heard >= 1 and screen._changes_covered >= screen._changes_heard


async def test_a_change_known_only_after_the_check_is_read_again(sample_db, make_app, monkeypatch):
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        answered = await _open_and_hear_after_the_answer(app, pilot, monkeypatch, numbered_before_check=False)
        assert len(answered) == 2 and app.screen.rec.task_id == "task-0001"
