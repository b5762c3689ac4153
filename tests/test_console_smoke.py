"""The console opens on the sample store and every screen is reachable by its number key."""

from __future__ import annotations

from agentdeck.console.widgets.task_table import TaskTable


async def test_number_keys_switch_screens(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        assert app.current_mode == "tasks"
        for key, mode in (("2", "escalations"), ("3", "canary"), ("4", "replay"), ("1", "tasks")):
            await pilot.press(key)
            # A screen shown before is switched to once its data is read (SwitchAhead: WAIT_S at most): on a
            # loaded machine that read was still out when the key's press returned.
            await app.settled()
            assert app.current_mode == mode
        await app.settled()
        await pilot.pause()
        assert app.screen.query_one(TaskTable).row_count > 0


async def test_ctrl_c_quits_like_q(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert not app.is_running


async def test_an_error_in_a_read_is_logged_and_shown_not_swallowed(sample_db, make_app, caplog):
    from textual.widgets._toast import Toast

    app = make_app(sample_db)
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        await app.settled()

        def broken(*_args, **_kw):
            raise RuntimeError("disk on fire")

        app.deck.task_detail = broken
        app.open_task("task-0001")
        await app.settled()
        await pilot.pause()
        shown = [str(toast.render()) for toast in app.screen.query(Toast)]
        assert app.is_running
    assert any("disk on fire" in text and "see the log" in text for text in shown), shown
    assert any("disk on fire" in r.getMessage() or (r.exc_info and "disk on fire" in str(r.exc_info[1]))
               for r in caplog.records)
