"""What the operator sees after enter and escape on Tasks is what Textual draws, whatever happened meanwhile.

Enter and escape write the detail and the list from the frames those screens kept when last shown, plus what
changed since (console/screens/cropped_compositor.py); the list under the detail no longer re-reads while covered
(AgentDeck._background_screens). Every update the app writes is applied to a model of the terminal
(terminal_support.Terminal) and compared, after each step, with Textual's own render of every widget of the screen
now: a resize, toasts coming and going, a theme change, the help panel, the palette, a screen switch and back, the
mouse, store changes and a task still running, a hostile payload scrolled."""

from __future__ import annotations

import pytest
from textual import events
from textual.command import CommandList

from tasks_support import ingest, settle, task_lines, wait_until, write_trace
from terminal_support import Terminal, differences


async def same(app, pilot, terminal, what: str) -> None:
    await settle(app, pilot)
    diff = differences(app, terminal)
    assert not diff, f"after {what}:\n" + "\n".join(diff[:8])


SCENARIOS: dict[str, list[tuple]] = {
    "resize": [("enter",), ("resize", (100, 30)), ("escape",), ("enter",), ("resize", (80, 24)), ("escape",)],
    "resize-width": [("enter",), ("resize", (90, 24)), ("escape",)],
    "toast-expires-away": [("notify-short",), ("enter",), ("expire",), ("escape",)],
    "toast-expires-in-detail": [("enter",), ("notify-short",), ("escape",), ("enter",), ("expire",), ("escape",)],
    "toast": [("enter",), ("notify",), ("escape",), ("enter",)],
    "theme": [("enter",), ("theme",), ("escape",), ("enter",), ("theme2",), ("escape",)],
    "help": [("enter",), ("?",), ("?",), ("escape",)],
    "help-open-escape": [("enter",), ("?",), ("escape",), ("escape",)],
    "switch": [("enter",), ("2",), ("1",), ("escape",), ("3",), ("1",)],
    "palette": [("enter",), ("ctrl+p",), ("escape",), ("escape",)],
    "palette-open-from-escalations": [("2",), ("ctrl+p",), ("type", "task-0590"), ("enter",), ("expect", "TaskDetailScreen"),
                                      ("escape",), ("expect", "TasksScreen"), ("2",), ("ctrl+p",), ("type", "task-0591"), ("enter",), ("escape",)],
    "palette-open-from-detail-away": [("enter",), ("2",), ("ctrl+p",), ("type", "task-0590"), ("enter",),
                                      ("expect", "TaskDetailScreen"), ("escape",), ("expect", "TasksScreen"), ("1",)],
    "hover-list": [("hover", "#tasks", (20, 5)), ("enter",), ("escape",), ("hover", "#tasks", (20, 8)), ("enter",),
                   ("escape",)],
    "hover-detail": [("enter",), ("hover", "#detail-events", (10, 3)), ("escape",), ("enter",),
                     ("hover", "#detail-payload", (3, 2)), ("escape",), ("k",), ("enter",)],
    "click-detail": [("enter",), ("click", "#detail-events", (10, 3)), ("escape",), ("enter",)],
    "select-payload": [("enter",), ("drag", "#detail-payload", (0, 1), (8, 3)), ("escape",), ("k",), ("enter",),
                       ("escape",), ("enter",)],
    "keys-at-once": [("enter",), ("2", "escape"), ("1",), ("escape", "enter"), ("escape", "2", "1"), ("enter", "escape"),
                     ("enter", "2"), ("1",), ("j", "enter", "escape", "k", "enter"), ("escape",)],
    "replay-and-back": [("enter",), ("r",), ("expect", "ReplayScreen"), ("1",), ("expect", "TaskDetailScreen"),
                        ("escape",), ("4",), ("1",), ("enter",), ("r", "1", "escape")],
    "filter": [("/",), ("a",), ("enter",), ("enter",), ("escape",), ("escape",)],
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_enter_and_escape_show_what_textual_draws(sample_db, make_app, name):
    app = make_app(sample_db)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        terminal = Terminal(app)
        await settle(app, pilot)
        app.screen.refresh()
        await same(app, pilot, terminal, "start")
        for step in SCENARIOS[name]:
            if step[0] == "resize":
                await pilot.resize_terminal(*step[1])
            elif step[0] == "notify":
                app.notify("hello there", timeout=30)
            elif step[0] == "expect":
                await settle(app, pilot)
                assert type(app.screen).__name__ == step[1]
                continue
            elif step[0] == "type":
                typed = step[1]
                await pilot.press(*typed)
                await wait_until(pilot, lambda: any(typed in str(option.prompt)  # noqa: B023 (awaited here)
                                                    for option in app.screen.query_one(CommandList).options))
            elif step[0] == "hover":
                await pilot.hover(step[1], offset=step[2])
            elif step[0] == "click":
                await pilot.click(step[1], offset=step[2])
            elif step[0] == "drag":
                await pilot.mouse_down(step[1], offset=step[2])
                await pilot.hover(step[1], offset=step[3])
                await pilot.mouse_up(step[1], offset=step[3])
            elif step[0] == "notify-short":
                app.notify("short lived", timeout=0.5)
            elif step[0] == "expire":
                await wait_until(pilot, lambda: not app._notifications and not app.screen.query("Toast"), 10)
            elif step[0] == "theme":
                app.theme = "textual-light"
            elif step[0] == "theme2":
                app.theme = "textual-dark"
            else:
                await pilot.press(*step)
            await same(app, pilot, terminal, f"{name}: {step}")


@pytest.mark.parametrize("paused", [False, True])
async def test_a_task_stored_while_the_detail_is_open_is_on_the_list_after_escape(sample_db, make_app, tmp_path, paused):
    app = make_app(sample_db)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        terminal = Terminal(app)
        await settle(app, pilot)
        if paused:
            await pilot.press("k")
        await pilot.press("enter")
        await same(app, pilot, terminal, "enter")
        for i in range(3):
            write_trace(tmp_path / "t" / "a.jsonl", task_lines(f"zz-new-{i}", at=99000 + i))
            ingest(sample_db, tmp_path / "t")
            app.store_written()
            await same(app, pilot, terminal, f"store change {i}")
        await pilot.press("escape")
        await same(app, pilot, terminal, "escape")
        await pilot.press("G")
        await same(app, pilot, terminal, "G")
        assert "zz-new-2" in "\n".join(terminal.text())


HOSTILE = {"note": "漢字かな交じり文😀 e\u0301 " * 20, "blob": "x" * 500, "tabs": "a\tb\t\tc",
           "markup": "[bold red]not bold[/] [@click=app.quit]q[/]", "esc": "\x1b[31mred\x1b[0m",
           "trail": "ends with spaces     ", "lines": ["", "  ", "one"] * 30}


@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
async def test_a_long_hostile_payload_scrolls_as_textual_draws_it(sample_db, make_app, tmp_path, size):
    write_trace(tmp_path / "t" / "a.jsonl", task_lines("zz-hostile", at=99000, output=HOSTILE))
    ingest(sample_db, tmp_path / "t")
    app = make_app(sample_db)
    async with app.run_test(size=size, notifications=True) as pilot:
        terminal = Terminal(app)
        await settle(app, pilot)
        await pilot.press("G", "enter")
        await same(app, pilot, terminal, "enter")
        for keys in (("j", "j"), ("enter",), ("pagedown",), ("down", "down"), ("end",), ("pageup",), ("home",)):
            await pilot.press(*keys)
            await same(app, pilot, terminal, str(keys))
        await pilot.resize_terminal(size[0] - 7, size[1])
        await same(app, pilot, terminal, "narrower")
        box = app.screen.query_one("#detail-payload-box")
        for wheel in (events.MouseScrollDown,) * 4 + (events.MouseScrollUp,):  # the mouse wheel over the payload
            await pilot._post_mouse_events([wheel], box, (3, 3))
            await same(app, pilot, terminal, wheel.__name__)
        assert box.scroll_y > 0 and app.screen.query_one("#detail-payload").text.plain.startswith("event 2 ")
        await pilot.press("escape")
        await same(app, pilot, terminal, "escape")


async def test_a_running_task_updates_live_in_its_detail_and_the_list_after_escape(sample_db, make_app, tmp_path):
    events = task_lines("zz-run", at=99000, outcome=None, output={"note": "漢字 " * 40})
    write_trace(tmp_path / "t" / "a.jsonl", events[:2])
    ingest(sample_db, tmp_path / "t")
    app = make_app(sample_db)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        terminal = Terminal(app)
        await settle(app, pilot)
        await pilot.press("G", "enter")
        await same(app, pilot, terminal, "enter")
        assert "zz-run" in "\n".join(terminal.text())
        end = task_lines("zz-run", at=99000)[3]
        for i, more in enumerate([[events[2]], task_lines("zz-other", at=99100), [end]]):
            write_trace(tmp_path / "t" / "a.jsonl", more)
            ingest(sample_db, tmp_path / "t")
            app.store_written()
            await same(app, pilot, terminal, f"change {i}")
            await pilot.press("j")
            await same(app, pilot, terminal, f"j {i}")
        shown = "\n".join(terminal.text())
        assert "task_end" in shown and "outcome success" in shown, shown
        await pilot.press("escape")
        await same(app, pilot, terminal, "escape")
        await pilot.press("f")
        await same(app, pilot, terminal, "f")
        assert "zz-other" in "\n".join(terminal.text())
