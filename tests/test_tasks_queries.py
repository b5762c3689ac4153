"""Keyset paging and filters over the tasks table (store.queries, DeckService.task_page): no Pilot."""

from __future__ import annotations

import pytest

from agentdeck.console.service.deck import DeckService
from agentdeck.console.service.settings import for_tests
from agentdeck.console.service.views import Window
from agentdeck.console.widgets.task_filter import FilterError, describe, parse_filter
from agentdeck.store import queries
from agentdeck.store.db import connect
from agentdeck.store.queries import TaskFilter
from tasks_support import ingest, task_lines, write_trace


@pytest.fixture
def deck(sample_db):
    return DeckService(for_tests(sample_db))


def all_keys(conn, filt=TaskFilter()):
    where, params = filt.where()
    rows = conn.execute(f"SELECT {queries.SEEN}, task_id FROM tasks WHERE {where} ORDER BY 1, 2", params).fetchall()
    return [(r[0], r[1]) for r in rows]


def test_pages_cover_every_task_once_in_order(conn, deck):
    expected = all_keys(conn)
    assert len(expected) > 3 * 50
    seen, anchor = [], None
    first = queries.tasks_from(conn, TaskFilter(), None, 50)
    anchor = queries.task_key(first[0])
    while True:
        page = deck.task_page(TaskFilter(), Window("at", anchor), 50)
        keys = [queries.task_key(r) for r in page.rows]
        seen.extend(keys if not seen else keys[1:] if keys[0] == seen[-1] else keys)
        if not page.newer:
            break
        anchor = keys[-1]
    assert seen == expected


def test_newest_page_is_the_tail_and_knows_older_exist(conn, deck):
    expected = all_keys(conn)
    page = deck.task_page(TaskFilter(), Window("follow"), 40)
    assert [queries.task_key(r) for r in page.rows] == expected[-40:]
    assert page.older and page.newer == 0


def test_anchor_window_counts_newer_and_steps_back(conn, deck):
    expected = all_keys(conn)
    anchor = expected[100]
    page = deck.task_page(TaskFilter(), Window("at", anchor), 30)
    assert [queries.task_key(r) for r in page.rows] == expected[100:130]
    assert page.newer == len(expected) - 130
    assert deck.task_page(TaskFilter(), Window("before", anchor, 15), 30).anchor == expected[85]
    assert deck.task_page(TaskFilter(), Window("before", expected[3], 15), 30).anchor == expected[0]
    oldest = deck.task_page(TaskFilter(), Window("oldest"), 30)
    assert oldest.anchor == expected[0] and not oldest.older


def test_keyset_order_breaks_ties_by_task_id(tmp_path):
    traces = tmp_path / "t"
    for tid in ("b", "a", "c"):  # same start time
        write_trace(traces / "x.jsonl", task_lines(tid, at=0))
    db = tmp_path / "s.db"
    ingest(db, traces)
    conn = connect(db)
    rows = queries.tasks_newest(conn, TaskFilter(), 10)
    assert [r["task_id"] for r in rows] == ["a", "b", "c"]
    key_b = queries.task_key(rows[1])
    assert [r["task_id"] for r in queries.tasks_from(conn, TaskFilter(), key_b, 10)] == ["b", "c"]
    assert queries.count_after(conn, TaskFilter(), key_b) == 1
    assert queries.key_before(conn, TaskFilter(), key_b, 5) == queries.task_key(rows[0])


@pytest.mark.parametrize(
    "text, column, expected",
    [
        ("outcome:failed", "outcome", {"failed"}),
        ("cohort:canary", "cohort", {"canary"}),
        ("version:v2", "version", {"v2"}),
        ("agent:records-agent", "agent", {"records-agent"}),
        ("outcome:running", "outcome", {None}),
    ],
)
def test_field_filters_return_only_matching_tasks(conn, text, column, expected):
    filt = parse_filter(text)
    rows = queries.tasks_newest(conn, filt, 1000)
    total = conn.execute(
        "SELECT count(*) FROM tasks WHERE " + (f"{column} IS NULL" if expected == {None} else f"{column} = ?"),
        [] if expected == {None} else list(expected),
    ).fetchone()[0]
    assert len(rows) == total
    assert {r[column] for r in rows} <= expected


def test_free_text_matches_any_text_column_and_escapes_wildcards(tmp_path):
    traces = tmp_path / "t"
    write_trace(traces / "x.jsonl", task_lines("t-1", request="refund 100% of order_7"))
    write_trace(traces / "x.jsonl", task_lines("t-2", at=10, request="refund 100 of order7", tool="payments.refund"))
    db = tmp_path / "s.db"
    ingest(db, traces)
    conn = connect(db)
    ids = lambda text: [r["task_id"] for r in queries.tasks_newest(conn, parse_filter(text), 10)]
    assert ids("100%") == ["t-1"]
    assert ids("order_7") == ["t-1"]
    assert ids("REFUND") == ["t-1", "t-2"]
    assert ids("payments.refund") == ["t-2"]
    assert ids("refund t-2") == ["t-2"]


def test_violations_filter(conn):
    some = conn.execute("SELECT task_id FROM tasks ORDER BY task_id LIMIT 2").fetchall()
    conn.execute("UPDATE tasks SET violations = 3 WHERE task_id IN (?, ?)", (some[0][0], some[1][0]))
    expected = {r[0] for r in conn.execute("SELECT task_id FROM tasks WHERE violations > 0")}
    assert {some[0][0], some[1][0]} <= expected
    rows = queries.tasks_newest(conn, parse_filter("violations"), 1000)
    assert {r["task_id"] for r in rows} == expected


def test_filter_text_round_trips_and_rejects_nonsense():
    filt = parse_filter('agent:"my agent" outcome:FAILED violations iam')
    assert filt == TaskFilter(agent="my agent", outcome="failed", violations=True, text=("iam",))
    assert parse_filter(describe(filt)) == filt
    with pytest.raises(FilterError, match="unknown filter 'colour:'"):
        parse_filter("colour:red")
    with pytest.raises(FilterError, match="outcome is one of"):
        parse_filter("outcome:great")


def test_paging_queries_seek_the_console_index(conn):
    sql = (f"EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE {queries._key_cmp('>=', (1.0, 'a'))[0]} "
           f"ORDER BY {queries.SEEN}, task_id LIMIT 5")
    plan = " ".join(r[3] for r in conn.execute(sql, [1.0, 1.0, "a"]))
    assert "SEARCH tasks USING INDEX tasks_console_seen" in plan
