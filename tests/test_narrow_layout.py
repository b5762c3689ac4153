"""80 columns: priority columns and sideways scrolling, the header's counters, the footer's pinned keys."""

from __future__ import annotations

from hypothesis import given, strategies as st

from conftest import FIXED_NOW
from agentdeck.console.service.views import Counters
from agentdeck.console.widgets.chrome import counters_text
from agentdeck.console.widgets.footer import PINNED_ACTIONS
from agentdeck.console.widgets.task_table import COLUMNS, PINNED, _cell_width, column_view
from tasks_support import screen_lines, settle
from test_escalations_support import esc_db  # noqa: F401  (fixture)

NARROW, WIDE = (80, 24), (160, 45)
KEYS = [c[0] for c in COLUMNS]


def labels(view) -> list[str]:
    return [COLUMNS[i][0] for i in view.shown]


# --- which columns show (no UI) ---------------------------------------------------------


def test_at_80_columns_outcome_latency_cost_and_violations_show_beside_the_task():
    view = column_view(78)  # 80 less the scrollbar
    assert labels(view)[:2] == ["time", "task"]
    assert {"outcome", "latency", "cost", "violations"} <= set(labels(view))
    assert view.more_right and not view.more_left


def test_when_everything_fits_nothing_scrolls():
    full = sum(_cell_width(i) for i in range(len(COLUMNS)))
    view = column_view(full, offset=5)
    assert labels(view) == KEYS and view.offset == 0 and not view.more_left and not view.more_right


@given(st.integers(min_value=30, max_value=220))
def test_scrolling_right_reaches_every_column_and_never_overflows(width):
    seen: set[str] = set()
    offset, views = 0, []
    while True:
        view = column_view(width, offset)
        views.append(view)
        assert view.shown[:PINNED] == tuple(range(PINNED)), "the task columns stay put"
        assert sum(_cell_width(i) for i in view.shown) <= max(width, sum(_cell_width(i) for i in range(PINNED)))
        seen.update(labels(view))
        if not view.more_right:
            break
        assert view.offset == offset
        offset += 1
        assert offset < 50
    pinned = sum(_cell_width(i) for i in range(PINNED))
    if width >= pinned + max(_cell_width(i) for i in range(PINNED, len(COLUMNS))):
        assert seen == set(KEYS), "every column can be brought into view"
    assert column_view(width, offset + 10) == views[-1], "past the end is clamped"


# --- Tasks: → and ← as a person presses them ----------------------------------------------


async def test_right_and_left_scroll_the_task_columns_at_80x24(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=NARROW) as pilot:
        await settle(app, pilot)
        header = first = screen_lines(app)[3]
        assert "outcome" in header and "latency" in header and "cost" in header and "viol" in header
        assert header.rstrip().endswith("→") and "stage" not in header
        for _ in range(8):
            await pilot.press("right")
        await pilot.pause()
        header = screen_lines(app)[3]
        assert "stage" in header and "last tool" in header and "←" in header
        assert header.startswith(" time      task"), "time and task stay"
        assert "task-05" in screen_lines(app)[4], "rows still say which task they are"
        for _ in range(8):
            await pilot.press("left")
        await pilot.pause()
        assert screen_lines(app)[3] == first, "← brings the first view back"


async def test_paused_status_line_keeps_state_newer_and_filter_at_80x24(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=NARROW) as pilot:
        await settle(app, pilot)
        await pilot.press("k", "k")  # moving the cursor pauses follow mode
        await settle(app, pilot)
        status = screen_lines(app)[2]
        assert "PAUSED" in status and "f follows" in status
        # Whole to its end: the filter state, or its hint, never cut mid-phrase.
        assert status.rstrip().endswith(("filter: none", "(/ to filter)")), f"cut: {status!r}"
    async with make_app(sample_db).run_test(size=WIDE) as pilot:
        app = pilot.app
        await settle(app, pilot)
        await pilot.press("k", "k")
        await settle(app, pilot)
        assert "(/ to filter)" in screen_lines(app)[2], "wide: the hints stay"


async def test_right_changes_nothing_when_all_columns_fit(sample_db, make_app):
    app = make_app(sample_db)
    async with app.run_test(size=WIDE) as pilot:
        await settle(app, pilot)
        before = screen_lines(app)
        await pilot.press("right", "right")
        await pilot.pause()
        assert screen_lines(app) == before
        assert all(label in before[3] for label in ("agent", "stage", "last tool", "outcome", "viol"))


# --- the header and the footer at 80 columns -------------------------------------------------


def _counters(**kw) -> Counters:
    values = dict(tasks_per_min=61, errors=3, open_escalations=145, events=123_456, rejects=12,
                  last_ingest_at=FIXED_NOW - 5, last_event_ts=FIXED_NOW - 5.4)
    values.update(kw)
    return Counters(**values)  # type: ignore[arg-type]


def test_counters_on_two_narrow_lines_keep_ingest_lag_escalations_and_rejects():
    text = counters_text(_counters(), FIXED_NOW, tailing=True, width=25, lines=2)
    lines = text.plain.split("\n")
    assert len(lines) == 2 and all(len(line) <= 25 for line in lines)
    plain = text.plain
    assert "ingest 5s ago" in plain and "lag 0.4s" in plain
    assert "145 esc" in plain and "12 rej" in plain


def test_counters_use_the_long_words_when_they_fit_and_one_line_when_wide():
    wide = counters_text(_counters(), FIXED_NOW, tailing=True, width=200)
    assert "\n" not in wide.plain and "145 open esc" in wide.plain and "123,456 events" in wide.plain
    roomy = counters_text(_counters(rejects=0), FIXED_NOW, tailing=False, width=30, lines=2)
    assert "open esc" in roomy.plain and "errors/h" in roomy.plain


async def test_footer_keeps_help_and_quit_on_every_screen_at_80x24(esc_db, make_app):  # noqa: F811
    app = make_app(esc_db)
    async with app.run_test(size=NARROW) as pilot:
        await settle(app, pilot)
        for key in ("1", "2", "3", "4", "5"):
            await pilot.press(key)
            await settle(app, pilot)
            footer, header = screen_lines(app)[-1], "\n".join(screen_lines(app)[:2])
            assert "? Help" in footer and "q Quit" in footer and "^p palette" in footer, (key, footer)
            assert "rej" in header and "esc" in header, (key, header)
        await pilot.press("1", "enter")
        await settle(app, pilot)
        footer = screen_lines(app)[-1]
        assert "esc Back" in footer and "? Help" in footer and "q Quit" in footer


async def test_footer_shows_whole_keys_only_at_80x24_and_every_key_when_wide(esc_db, make_app):  # noqa: F811
    """A key that does not fit is left out, never cut mid-word ("s S" for "s Suite fails")."""

    def screen_keys(app) -> list[str]:
        return [f"{app.get_key_display(b)} {b.description}" for (_, b, _, _) in app.screen.active_bindings.values()
                if b.show and b.action not in PINNED_ACTIONS]

    for size in (NARROW, (200, 30)):
        app = make_app(esc_db)
        async with app.run_test(size=size) as pilot:
            for key in ("1", "2", "3", "4"):
                await pilot.press(key)
                await settle(app, pilot)
                await pilot.pause()
                shown = " ".join(screen_lines(app)[-1].split("▏")[0].split())
                keys = screen_keys(app)
                whole = [" ".join(keys[:n]) for n in range(1, len(keys) + 1)]
                assert shown in whole, (key, size, shown)
                if size != NARROW:
                    assert shown == whole[-1], (key, shown)
