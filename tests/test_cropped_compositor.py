"""Deck screens draw a partial update from only the widgets in it (console/screens/cropped_compositor.py): what
reaches the terminal must be what Textual's own compositor sends for the same update, on every screen, for the
areas the console updates (a table line, a whole table, the header's counters, a footer key, several at once)
and for odd ones (a few cells inside a table, areas whose left edge is no widget's edge on some lines)."""

from __future__ import annotations

from rich.console import Console
from textual._compositor import ChopsUpdate, Compositor
from textual.geometry import Region

from agentdeck.console.screens.cropped_compositor import CroppedCompositor
from tasks_support import settle
from test_escalations_support import esc_db  # noqa: F401 (a fixture)


def sent(compositor: Compositor, regions: list[Region], console: Console) -> str:
    """What a partial update of ``regions`` writes to the terminal."""
    regions = [r.intersection(compositor.size.region) for r in regions]
    regions = [r for r in regions if r]
    crop = Region.from_union(regions).intersection(compositor.size.region)
    spans = list(compositor._regions_to_spans(regions))
    chops = compositor._render_chops(crop, {y for y, _, _ in spans}.__contains__)
    return ChopsUpdate(chops, spans, [cuts[1:] for cuts in compositor.cuts]).render_segments(console)


def textual_sent(compositor: Compositor, regions: list[Region], console: Console) -> str:
    cls, compositor.__class__ = compositor.__class__, Compositor
    try:
        return sent(compositor, regions, console)
    finally:
        compositor.__class__ = cls


def areas(app) -> list[list[Region]]:
    screen = app.screen
    width, height = app.size
    widgets = [w for w in screen._compositor.visible_widgets if w is not screen]
    out = [[w.region] for w in widgets if w.region]
    out += [[Region(0, y, width, 1)] for y in range(height)]  # every line (a table line's refresh)
    out += [[Region(5, 4, 3, 1)], [Region(width // 2, 1, 7, height - 2)]]  # cells inside widgets
    out += [[a.region, b.region] for a, b in zip(widgets, widgets[3:]) if a.region and b.region]
    out.append([Region(0, 0, width, height)])
    return out


async def check(app, pilot) -> int:
    await settle(app, pilot)
    compositor = app.screen._compositor
    assert isinstance(compositor, CroppedCompositor)
    checked = 0
    for regions in areas(app):
        assert sent(compositor, regions, app.console) == textual_sent(compositor, regions, app.console), regions
        checked += 1
    return checked


async def test_partial_updates_send_what_textual_sends_on_every_screen(sample_db, make_app):
    app = make_app(sample_db)
    for size in ((80, 24), (140, 40)):
        async with app.run_test(size=size) as pilot:
            assert await check(app, pilot) > 30  # Tasks
            await pilot.press("k", "k")  # the cursor moved: paused
            assert await check(app, pilot) > 30
            await pilot.press("enter")  # a task's detail
            await settle(app, pilot)
            assert await check(app, pilot) > 20
            for key in ("escape", "2", "3", "4", "5"):
                await pilot.press(key)
                assert await check(app, pilot) > 20, key
        app = make_app(sample_db)


def cells(update) -> list[list[tuple[str, object]]]:
    """What a whole-screen update shows: each line's cells, a character and its style (however segmented)."""
    from textual.strip import Strip

    return [[(char, segment.style) for segment in Strip.join(line) for char in segment.text] for line in update.strips]


def record_frames_from_kept(monkeypatch) -> list[tuple[str, list, list]]:
    """From now on, each frame a screen writes whole from its kept frame is recorded beside a whole render of the
    same screen: (screen class, its cells, the whole render's cells)."""
    from textual._compositor import LayoutUpdate

    from agentdeck.console.screens.cropped_compositor import FrameKeepingCompositor

    kept: list[tuple[str, list, list]] = []
    render_update = FrameKeepingCompositor.render_update

    def checked(self, full=False, screen_stack=None, simplify=False):
        from_frame = self.whole_from_frame and not full and self._frame_usable() \
            and self.size.region not in self._dirty_regions
        update = render_update(self, full, screen_stack, simplify)
        if from_frame:
            assert isinstance(update, LayoutUpdate)
            whole = Compositor.render_full_update(self)
            kept.append((type(self.root).__name__, cells(update), cells(whole)))
        return update

    monkeypatch.setattr(FrameKeepingCompositor, "render_update", checked)
    return kept


async def test_a_switch_draws_from_the_kept_frame_exactly_what_a_whole_render_draws(esc_db, tmp_path, make_app,
                                                                                    monkeypatch):
    """A switch writes the screen whole from the frame kept when it was last shown plus what changed since
    (FrameKeepingCompositor): each such frame must be what rendering every widget again writes, with rows,
    cursor moves, a detail, a dialog opened and closed and a store change while the screen was away."""
    from conftest import FIXED_NOW
    from tasks_support import ingest, task_lines, write_trace
    from test_escalations_support import _task, ingest_events

    from agentdeck.console import switch_ahead

    # Only a switch whose read answered draws from the kept frame: the read says when each happens. A read
    # outlasting WAIT_S's 0.15 s (a loaded machine; emulated with 0.3 s escalation queue reads, this failed)
    # switched first, as designed, and left fewer switches, or none to Escalations, to check.
    monkeypatch.setattr(switch_ahead, "WAIT_S", 20.0)
    kept = record_frames_from_kept(monkeypatch)
    app = make_app(esc_db)
    async with app.run_test(size=(120, 40)) as pilot:
        for keys in (("2",), ("j", "j"), ("1",), ("k",), ("4",), ("2",), ("h",), ("3",), ("2", "h"), ("1",)):
            await pilot.press(*keys)
            await settle(app, pilot)
        n = FIXED_NOW
        ingest_events(esc_db, _task("t-new", raised=n - 10, deadline=n + 300, risk="high", system="iam",
                                    operation="grant_role", params={"user": "zoe", "role": "admin"}), tmp_path / "more")
        write_trace(tmp_path / "tasks" / "t.jsonl", task_lines("t-switch-new", at=9000))
        ingest(esc_db, tmp_path / "tasks")
        app.store_written()
        await settle(app, pilot)
        for keys in (("2",), ("d",), ("escape",), ("1",), ("3",), ("4",), ("2",), ("3",), ("4",), ("1",)):
            await pilot.press(*keys)
            await settle(app, pilot)
    for screen, sent_cells, whole_cells in kept:
        for y, (line, expected) in enumerate(zip(sent_cells, whole_cells, strict=True)):
            assert line == expected, f"{screen} line {y}: the frame drawn from the kept one differs from a whole render"
    assert {screen for screen, _, _ in kept} >= {"TasksScreen", "EscalationsScreen", "CanaryScreen", "ReplayScreen"}
    assert len(kept) >= 10, f"switches drew from the kept frame only {len(kept)} times"


async def test_enter_and_escape_draw_from_the_kept_frame_exactly_what_a_whole_render_draws(esc_db, tmp_path, make_app,
                                                                                          monkeypatch):
    """Enter pushes a task's detail and escape pops back to the list, each written whole from the frame the screen
    kept when it was last shown plus what changed since: each such frame must be what rendering every widget again
    writes, with another task opened each time, a move in the detail, and new tasks stored while the detail is up."""
    from agentdeck.console.screens.task_detail import TaskDetailScreen
    from agentdeck.console.screens.tasks import TasksScreen
    from tasks_support import ingest, task_lines, write_trace

    kept = record_frames_from_kept(monkeypatch)
    write_trace(tmp_path / "tasks" / "a.jsonl", [e for i in range(6) for e in task_lines(f"t-{i}", at=8000 + i)])
    ingest(esc_db, tmp_path / "tasks")
    app = make_app(esc_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        for round, keys in enumerate((("k",), ("k",), ("j", "k", "k"), ("k",))):
            await pilot.press(*keys, "enter")
            await settle(app, pilot)
            assert isinstance(app.screen, TaskDetailScreen)
            await pilot.press("j")
            await settle(app, pilot)
            if round % 2:  # the list changes under the detail: drawn when it is shown again
                write_trace(tmp_path / "tasks" / "a.jsonl", task_lines(f"t-new-{round}", at=9000 + round))
                ingest(esc_db, tmp_path / "tasks")
                app.store_written()
                await settle(app, pilot)
            await pilot.press("escape")
            await settle(app, pilot)
            assert isinstance(app.screen, TasksScreen)
    for screen, sent_cells, whole_cells in kept:
        for y, (line, expected) in enumerate(zip(sent_cells, whole_cells, strict=True)):
            assert line == expected, f"{screen} line {y}: the frame drawn from the kept one differs from a whole render"
    shown = [screen for screen, _, _ in kept]
    assert shown.count("TaskDetailScreen") >= 3 and shown.count("TasksScreen") >= 4, shown
