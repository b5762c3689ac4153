"""Abandoned tasks: no task_end and silent past abandon_after shows "abandoned", computed when read."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from conftest import FIXED_NOW
from agentdeck.console.service.deck import DeckService
from agentdeck.console.service.settings import SettingsError, for_tests, resolve
from agentdeck.console.service.views import TaskFilter, Window
from agentdeck.console.widgets.task_table import TaskTable, task_cells
from agentdeck.store import queries
from agentdeck.store.db import connect
from tasks_support import _ts, ingest, settle, task_lines, write_trace

SILENCE = 1800.0


@pytest.fixture
def store(tmp_path) -> tuple[Path, Path]:
    """done: ended; silent: no task_end, last event ~1 h before FIXED_NOW; fresh: no task_end, last event 98 s ago."""
    traces = tmp_path / "t"
    write_trace(traces / "a.jsonl", task_lines("done", at=0) + task_lines("silent", at=10, outcome=None)
                + task_lines("fresh", at=3500, outcome=None))
    db = tmp_path / "s.db"
    ingest(db, traces)
    return db, traces


def _ids(rows) -> list[str]:
    return [r["task_id"] for r in rows]


def test_the_filter_and_the_column_use_the_cut_off_passed_in(store):
    db, _ = store
    conn = connect(db, readonly=True)
    cut = FIXED_NOW - SILENCE
    abandoned = replace(TaskFilter(outcome="abandoned"), abandoned_before=cut)
    running = replace(TaskFilter(outcome="running"), abandoned_before=cut)
    assert _ids(queries.tasks_newest(conn, abandoned, 50)) == ["silent"]
    assert _ids(queries.tasks_newest(conn, running, 50)) == ["fresh"]
    rows = queries.tasks_from(conn, TaskFilter(abandoned_before=cut), None, 50)
    assert {r["task_id"]: bool(r["abandoned"]) for r in rows} == {"done": False, "silent": True, "fresh": False}
    # 0 = never: nothing is abandoned, running is every task without an end.
    assert queries.tasks_newest(conn, TaskFilter(outcome="abandoned"), 50) == []
    assert sorted(_ids(queries.tasks_newest(conn, TaskFilter(outcome="running"), 50))) == ["fresh", "silent"]
    assert not any(r["abandoned"] for r in queries.tasks_newest(conn, TaskFilter(), 50))
    # The same rule for a single row (task detail, Replay).
    assert queries.is_abandoned(queries.task(conn, "silent"), cut)
    assert not queries.is_abandoned(queries.task(conn, "fresh"), cut)
    assert not queries.is_abandoned(queries.task(conn, "done"), FIXED_NOW + 10 * SILENCE)
    assert not queries.is_abandoned(queries.task(conn, "silent"), None)
    conn.close()


def test_service_shows_abandoned_everywhere_and_a_late_event_revives_it(store):
    db, traces = store
    deck = DeckService(for_tests(db, abandon_after=SILENCE), clock=lambda: FIXED_NOW)
    page = deck.task_page(TaskFilter(), Window())
    cells = {r["task_id"]: task_cells(r) for r in page.rows}
    outcome_col = 8
    assert (str(cells["silent"][outcome_col]), cells["silent"][outcome_col].style) == ("abandoned", "dim")
    assert str(cells["fresh"][outcome_col]) == "running" and str(cells["done"][outcome_col]) == "success"
    assert deck.task_detail("silent").abandoned and not deck.task_detail("fresh").abandoned
    view = deck.replay("silent")
    assert view is not None and view.abandoned
    assert _ids(deck.task_page(TaskFilter(outcome="abandoned"), Window()).rows) == ["silent"]

    # Nothing stored changed: the row is still without an outcome.
    conn = connect(db, readonly=True)
    assert tuple(conn.execute("SELECT outcome, ended FROM tasks WHERE task_id = 'silent'").fetchone()) == (None, None)
    conn.close()

    # A late event (the agent was only slow) brings it back to running, on every screen.
    write_trace(traces / "a.jsonl", [{"v": 1, "kind": "tool_call", "ts": _ts(3590), "task_id": "silent", "seq": 3,
                                      "call_id": "c2", "tool": "iam.lookup_user", "input": {"user": "bo"}}])
    ingest(db, traces)
    assert not deck.task_detail("silent").abandoned
    assert _ids(deck.task_page(TaskFilter(outcome="abandoned"), Window()).rows) == []
    again = deck.replay("silent", known=view.key)
    assert again is not None and not again.abandoned

    never = DeckService(for_tests(db, abandon_after=0), clock=lambda: FIXED_NOW + 10**6)
    assert not any(r["abandoned"] for r in never.task_page(TaskFilter(), Window()).rows)


def test_abandon_after_from_flag_environment_and_config_file(tmp_path):
    home = {"HOME": str(tmp_path)}
    assert resolve({}, env=home).abandon_after == 1800.0
    s = resolve({"abandon_after": "600"}, env={**home, "AGENTDECK_ABANDON_AFTER": "60"})
    assert (s.abandon_after, s.source("abandon_after")) == (600.0, "flag")
    s = resolve({}, env={**home, "AGENTDECK_ABANDON_AFTER": "60"})
    assert (s.abandon_after, s.source("abandon_after")) == (60.0, "env AGENTDECK_ABANDON_AFTER")
    cfg = tmp_path / "c.toml"
    cfg.write_text("abandon_after = 0\n")
    assert resolve({}, env=home, config=cfg).abandon_after == 0.0
    cfg.write_text('abandon_after = "soon"\n')
    with pytest.raises(SettingsError, match="abandon_after"):
        resolve({}, env=home, config=cfg)
    with pytest.raises(SettingsError, match="abandon_after"):
        resolve({"abandon_after": "-5"}, env=home)


def test_abandon_after_flag_on_agentdeck_console(tmp_path, monkeypatch):
    from agentdeck.console.cli import build_parser
    from agentdeck.console.commands.console import settings_from

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("AGENTDECK_CONFIG", raising=False)
    parser, _ = build_parser()
    args = parser.parse_args(["console", "--db", str(tmp_path / "s.db"), "--abandon-after", "90"])
    s = settings_from(args)
    assert (s.abandon_after, s.source("abandon_after")) == (90.0, "flag")


async def test_tasks_screen_shows_and_filters_abandoned(store, make_app):
    db, _ = store
    app = make_app(db, abandon_after=SILENCE)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(TaskTable)
        assert str(table.shown.cells["silent"][8]) == "abandoned"
        await pilot.press("slash", *"outcome:abandoned", "enter")
        await settle(app, pilot)
        assert table.shown.keys == ["silent"]
        await pilot.press("enter")
        await settle(app, pilot)
        from agentdeck.console.widgets.text_block import TextBlock

        shown = [str(s.render()) for s in app.screen.query("Static")] + [b.text.plain for b in app.screen.query(TextBlock)]
        assert "outcome abandoned" in " ".join(shown)
