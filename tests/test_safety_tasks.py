"""Hostile trace text is shown as the characters it is, in the Tasks list and a task's detail.

A crafted trace (markup, click actions, ANSI/OSC 8 escape sequences, C1
controls) is ingested into a temporary store and opened with the Pilot: the
literal text must be visible, and no control character may reach the
terminal, and clicking the "[@click=app.quit]" text must not quit.
"""

from __future__ import annotations

import pytest

from agentdeck.console.safe import clean, plain
from agentdeck.console.screens.task_detail import TaskDetailScreen
from agentdeck.console.widgets.task_table import TaskTable
from tasks_support import ingest, screen_lines, screen_text, settle, task_lines, write_trace

SIZE = (140, 40)
ESC = "\x1b"
ANSI_RED = f"{ESC}[31mRED{ESC}[0m"
OSC8_LINK = f"{ESC}]8;;https://evil.example/{ESC}\\click{ESC}]8;;{ESC}\\"
CONTROL_CHARS = {chr(c) for c in range(0x20) if c not in (0x0a,)} | {chr(c) for c in range(0x7f, 0xa0)}


@pytest.fixture
def hostile_db(tmp_path):
    traces = tmp_path / "traces"
    evil = task_lines(
        "evil-1",
        agent="[b]a[/]",
        version="[/]",
        request="[@click=app.quit]click me[/] and [bold]bold?[/]",
        tool=f"{ESC}[2Jwipe",
        output={"log": ANSI_RED, "link": OSC8_LINK, "c1": "\x9b31mC1", "bidi": "abc\u202edcba"},
    )
    clicker = task_lines("evil-2", at=60, agent="[@click=app.quit]", tool="[@click=app.quit]", outcome="failed")
    write_trace(traces / "evil.jsonl", evil + clicker)
    db = tmp_path / "hostile.db"
    ingest(db, traces)
    return db


def assert_no_control_chars_rendered(app) -> None:
    for strip in app.screen._compositor.render_strips():
        for segment in strip:
            bad = CONTROL_CHARS & set(segment.text)
            assert not bad, f"control character {bad!r} reached the terminal in {segment.text!r}"


async def test_tasks_list_shows_trace_text_literally(hostile_db, make_app):
    app = make_app(hostile_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        text = screen_text(app)
        assert "[b]a[/]" in text  # agent, not bold "a"
        assert "␛[2Jwipe" in text  # the ESC shown, not a cleared screen
        assert "[@click=app.q" in text  # (cut to the column width)
        assert_no_control_chars_rendered(app)

        # Click right on the "[@click=app.quit]" text: it is text, not an action.
        await pilot.press("k")  # (the cursor elsewhere, so the click moves it there)
        row = next(y for y, line in enumerate(screen_lines(app)) if "[@click=app.q" in line)
        column = screen_lines(app)[row].index("[@click=app.q")
        await pilot.click(offset=(column + 3, row))
        await pilot.pause()
        assert app._running and app.return_code is None
        assert app.screen.query_one(TaskTable).cursor_task == "evil-2"


async def test_task_detail_shows_payloads_literally(hostile_db, make_app):
    app = make_app(hostile_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.open_task("evil-1")
        await settle(app, pilot)
        assert isinstance(app.screen, TaskDetailScreen)
        text = screen_text(app)
        assert "[@click=app.quit]click me[/] and [bold]bold?[/]" in text  # the request, in the summary
        assert "[b]a[/] [/]" in text  # agent and version
        assert "␛[2Jwipe" in text  # tool name in the events list
        assert_no_control_chars_rendered(app)

        await pilot.press("j", "j")  # the tool_result: its payload in the side pane
        await pilot.pause()
        text = screen_text(app)
        assert '"log": "\\u001b[31mRED\\u001b[0m"' in text  # JSON escapes, shown as typed
        assert "\\u001b]8;;https://evil.example/" in text
        assert '"c1": "\\x9b31mC1"' in text  # a raw C1 CSI made visible
        assert '"bidi": "abc\\u202edcba"' in text  # no right-to-left override
        assert_no_control_chars_rendered(app)
        await pilot.click(offset=(2, 1))  # stray clicks do nothing either
        assert app._running and app.return_code is None


async def test_palette_shows_trace_text_literally(hostile_db, make_app):
    app = make_app(hostile_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+p", *"evil-2")
        await settle(app, pilot)
        text = screen_text(app)
        assert "Open task evil-2" in text
        assert "req-evil-2 · [@click=app.quit] · failed" in text
        assert_no_control_chars_rendered(app)


@pytest.mark.parametrize(
    "raw, shown",
    [
        (ANSI_RED, "␛[31mRED␛[0m"),
        (OSC8_LINK, "␛]8;;https://evil.example/␛\\click␛]8;;␛\\"),
        ("a\rb", "a\\x0db"),
        ("\x9d8;;x\x07", "\\x9d8;;x\\x07"),
        ("abc\u202edcba\u2066", "abc\\u202edcba\\u2066"),
        ("ad\u200bmin", "ad\\u200bmin"),  # zero-width space: no look-alike ids
        ("bad \ud800 surrogate", "bad \\ud800 surrogate"),  # would crash the terminal encoder
        ("[bold]x[/]", "[bold]x[/]"),
    ],
)
def test_clean_makes_every_control_visible(raw, shown):
    assert clean(raw) == shown
    assert plain(raw).plain == shown
    assert plain(raw).spans == []


def test_single_line_and_limit():
    assert clean("a\nb\tc", single_line=True) == "a⏎b c"
    assert clean("x" * 50, 10) == "x" * 9 + "…"
