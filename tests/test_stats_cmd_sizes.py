"""agentdeck stats: size by table, growth per day, what the retention rules would free."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from agentdeck.console.cli import main
from agentdeck.store import store_stats
from agentdeck.store.db import connect
from agentdeck.store.retention import RetentionPolicy
from test_prune_support import DAY, ingest, task_lines, write_trace

NOW = float(int(time.time()))


def _store(tmp_path):
    tasks = [task_lines(f"old-{i}", NOW - 60 * DAY + i, steps=20) for i in range(30)]
    tasks += [task_lines(f"today-{i}", NOW - 60 - i) for i in range(5)]
    tasks += [task_lines(f"yesterday-{i}", NOW - DAY - i) for i in range(3)]
    db = tmp_path / "agentdeck.db"
    ingest(db, write_trace(tmp_path / "t.jsonl", tasks))
    return db


def test_stats_shows_sizes_growth_and_what_prune_would_free(tmp_path, capsys):
    db = _store(tmp_path)
    assert main(["stats", "--db", str(db), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    tables = {t["name"]: t for t in s["tables"]}
    assert s["measured"] is True
    assert tables["events"]["rows"] == 30 * 43 + 8 * 9
    assert max(s["tables"], key=lambda t: t["bytes"])["name"] == "events"
    assert sum(t["bytes"] for t in s["tables"]) <= s["file_bytes"]
    days = {g["day"]: g for g in s["growth"]}
    today = datetime.fromtimestamp(NOW - 60, UTC).strftime("%Y-%m-%d")
    assert days[today]["events"] >= 9 * 1 and days[today]["bytes"] > 0
    assert (s["would_remove_tasks"], s["would_remove_events"]) == (30, 30 * 43)
    assert s["would_free_bytes"] > 0
    # The dry run agrees with what stats says the rules would remove.
    assert main(["prune", "--db", str(db), "--dry-run"]) == 0
    assert "would remove 30 tasks (1,290 events" in capsys.readouterr().out
    # After pruning, nothing more would be freed, and the text output says so.
    assert main(["prune", "--db", str(db)]) == 0
    capsys.readouterr()
    assert main(["stats", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "would remove 0 tasks (0 events)" in out
    assert "measured with dbstat" in out and "archived_tasks" in out


def test_without_dbstat_sizes_are_estimated_and_say_so(tmp_path, capsys, monkeypatch):
    db = _store(tmp_path)
    monkeypatch.setattr(store_stats, "_measured", lambda conn, owned: None)
    conn = connect(db, readonly=True)
    s = store_stats.collect(conn, RetentionPolicy(), NOW)
    conn.close()
    sizes = {t.name: t.bytes for t in s.tables}
    assert not s.measured
    assert sizes["events"] == max(sizes.values())
    assert abs(sum(sizes.values()) - s.file_bytes) <= s.file_bytes * 0.01
    assert main(["stats", "--db", str(db)]) == 0
    assert "ESTIMATED" in capsys.readouterr().out


def test_stats_without_a_store_is_a_usage_error(tmp_path, capsys):
    assert main(["stats", "--db", str(tmp_path / "none.db")]) == 2
    assert "no store" in capsys.readouterr().err


def test_stats_counts_the_archives_written(tmp_path, capsys):
    db = _store(tmp_path)
    assert main(["prune", "--db", str(db)]) == 0
    capsys.readouterr()
    assert main(["stats", "--db", str(db), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    files = list((tmp_path / "agentdeck.db-archive").glob("*.jsonl.gz"))
    assert s["archive_files"] == len(files) == 1
    assert s["archive_bytes"] == files[0].stat().st_size
