"""A task's payload, opened with enter on its event, scrolls with the keys every list answers to (less/vim)."""

from __future__ import annotations

from tasks_support import ingest, settle, task_lines, write_trace


async def test_j_k_g_G_and_the_half_and_whole_page_keys_scroll_the_payload(sample_db, make_app, tmp_path):
    write_trace(tmp_path / "t" / "a.jsonl", task_lines("zz-long", at=99000, output={"rows": list(range(120))}))
    ingest(sample_db, tmp_path / "t")
    app = make_app(sample_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("G", "enter")
        await settle(app, pilot)
        await pilot.press("j", "j", "enter")  # the tool result's payload, focused
        await settle(app, pilot)
        box = app.screen.query_one("#detail-payload-box")
        assert app.focused is box and box.max_scroll_y > 50
        page = box.scrollable_content_region.height
        seen = []
        for key in ("j", "j", "k", "G", "g", "ctrl+d", "ctrl+f", "ctrl+b", "ctrl+u"):
            await pilot.press(key)
            await settle(app, pilot)
            seen.append(box.scroll_y)
        assert seen == [1, 2, 1, box.max_scroll_y, 0, page // 2, page // 2 + page, page // 2, 0]
        assert app.screen.query_one("#detail-payload").text.plain.startswith("event 2 ")


async def test_tab_moves_between_the_events_and_the_payload(sample_db, make_app):
    """tab ("Table/payload" in the keys panel) was bound to a screen action that does not exist: it did nothing."""
    app = make_app(sample_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        events, box = app.screen.query_one("#detail-events"), app.screen.query_one("#detail-payload-box")
        assert app.focused is events
        await pilot.press("tab")
        assert app.focused is box
        await pilot.press("j")  # (the payload scrolls, the event stays)
        await settle(app, pilot)
        assert box.scroll_y == 1 and events.cursor_row == 0
        await pilot.press("tab")
        assert app.focused is events
