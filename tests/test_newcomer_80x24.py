"""A newcomer at 80x24 with only the README: clear the queue, replay a task, undo an action.

Every key pressed here is one the README names ("Escalations and decisions",
"Replay, compensation and evidence", "Keys in the console"), and every check
is on what the 80x24 terminal shows, not on the app's internals — except
where the README promises something stored (the outbox, the audit trail).
The data: the bundled sample data plus four agents waiting for a human
(as the demo's live fleet raises them), and the sample system of record on
127.0.0.1 for the undo.
"""

from __future__ import annotations

import json

import httpx

from agentdeck.store.db import connect
from conftest import HTTP, point_hook_at
from tasks_support import screen_lines, settle
from test_escalations_support import esc_db  # noqa: F401  (fixture)

SIZE = (80, 24)


def shown(app) -> str:
    lines = screen_lines(app)
    assert len(lines) == SIZE[1] and all(len(line) <= SIZE[0] for line in lines)
    return "\n".join(lines)


def footer(app) -> str:
    return screen_lines(app)[-1]


async def press(pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot.app, pilot)


async def test_a_newcomer_clears_the_queue_replays_a_task_and_undoes_an_action_at_80x24(
        esc_db, make_app, sor, tmp_path):  # noqa: F811
    point_hook_at(esc_db, sor.url)
    outbox = tmp_path / "outbox" / "decisions.jsonl"
    app = make_app(esc_db, outbox=outbox, allow_hosts=frozenset({sor.allow_entry}))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        # The console opens on Tasks; the way out and to every key is on screen.
        screen = shown(app)
        assert "1 Tasks" in screen and "2 Escalations" in screen
        assert "? Help" in footer(app) and "q Quit" in footer(app)
        assert "outcome" in screen and "latency" in screen and "cost" in screen, "the columns that matter fit"

        # --- clear the queue: "Screen 2 lists the agents waiting for a human" ---------------
        await press(pilot, "2")
        screen = shown(app)
        assert "Pending — 4" in screen
        assert "? Help" in footer(app) and "q Quit" in footer(app)
        decisions = [("d", "past its deadline, nobody asked again"),   # the expired one (policy decides)
                     ("a", "owner confirmed on the call"),             # high risk: a reason is required
                     ("d", "note field looks like an injection"),      # medium risk deny: reason required
                     ("a", "")]                                        # low risk approve: no reason needed
        for left, (key, reason) in zip(range(4, 0, -1), decisions):
            assert f"Pending — {left}" in shown(app)
            await press(pilot, key)
            screen = shown(app)
            assert ("Approve esc-t-" if key == "a" else "Deny esc-t-") in screen, "the reason dialog is up"
            assert "Cancel" in screen and ("Approve" if key == "a" else "Deny") in screen, "its buttons show"
            await press(pilot, *reason, "enter")
            assert "Enter confirms" not in shown(app), "the dialog closed: the decision was taken"
        screen = shown(app)
        assert "Pending — 0" in screen
        written = [json.loads(line) for line in outbox.read_text().splitlines()]
        assert len(written) == 4, "each decision reached the agents' outbox once"
        # `h` shows the decided ones with their delivery state.
        await press(pilot, "h")
        screen = shown(app)
        assert "Decided —" in screen and "delivery" in screen and "proposed action" in screen

        # --- replay a task: "r replays the selected task" -------------------------------------
        await press(pilot, "1", "r")
        screen = shown(app)
        replayed = app.replay_task
        assert app.current_mode == "replay" and replayed and replayed in screen
        assert "task_start" in screen and "outcome" in screen
        await press(pilot, "n", "n")
        assert "#3/" in shown(app), "n steps through the decision path"

        # --- undo an action: "press o and type a task id", "] jumps", "c" on an action ----
        await press(pilot, "o", *"task-0001", "enter")
        screen = shown(app)
        assert "task-0001" in screen and "refund" in screen
        await press(pilot, "right_square_bracket", "right_square_bracket", "right_square_bracket")
        assert "action refund on payments" in shown(app)
        await press(pilot, "c")
        screen = shown(app)
        assert "Compensate act-0001" in screen and f"POST {sor.url}/compensate"[:60] in screen
        assert "reason (required: high risk)" in screen and "Compensate" in screen and "Cancel" in screen
        await press(pilot, "enter")  # no reason: nothing runs
        assert "A reason is required" in shown(app)
        assert HTTP.get(f"{sor.url}/actions/act-0001").json()["state"] == "applied"
        await press(pilot, *"refund was paid twice", "enter")
        assert "Compensated (attempt 1)" in shown(app)
        assert HTTP.get(f"{sor.url}/actions/act-0001").json()["state"] == "compensated"
        await press(pilot, "escape")
        screen = shown(app)
        assert "Compensated: by tester" in screen, "the step says it was undone, in the pane's first lines"
        assert "outcome success (undone: 1 action compensated)" in screen
        assert "? Help" in footer(app) and "q Quit" in footer(app)

    conn = connect(esc_db)
    requested = conn.execute("SELECT actor, detail FROM audit WHERE kind = 'compensation.requested'").fetchone()
    conn.close()
    assert requested[0] == "tester" and json.loads(requested[1])["reason"] == "refund was paid twice"
