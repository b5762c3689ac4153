"""autonomy.jsonl: written once per change even across a crash, and read by the fleet whatever else the file holds."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXED_NOW
from test_release_queue import _release_template, autonomy, deck_for, rel  # noqa: F401
from agentdeck.console.service.release_delivery import autonomy_path, publish_pending
from agentdeck.sample_data.fleet import STAGES, AutonomyReader
from agentdeck.store import release
from agentdeck.store.db import connect


def test_a_crash_between_the_append_and_its_record_does_not_write_the_line_twice(rel):
    deck = deck_for(rel)
    deck.release_tick()
    before = autonomy(rel)
    conn = connect(rel / "store.db")
    # As if the console died after appending the demotion's line but before recording it.
    demotion = conn.execute("SELECT * FROM stage_changes WHERE cause = 'demoted'").fetchone()
    conn.execute("UPDATE stage_changes SET published_at = NULL, publish_intent = ? WHERE id = ?",
                 (FIXED_NOW, demotion["id"]))
    publish_pending(conn, autonomy_path(deck.delivery.outbox), deck.delivery)
    assert autonomy(rel) == before
    assert conn.execute("SELECT published_at FROM stage_changes WHERE id = ?", (demotion["id"],)).fetchone()[0]
    # And a line never appended (intent recorded, then the crash) is appended on the retry.
    conn.execute("UPDATE stage_changes SET published_at = NULL, publish_intent = ? WHERE id = ?",
                 (FIXED_NOW, demotion["id"]))
    path = rel / "traces" / "outbox" / "autonomy.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in before if d["seq"] != demotion["id"]))
    publish_pending(conn, autonomy_path(deck.delivery.outbox), deck.delivery)
    after = autonomy(rel)
    assert sorted(after, key=lambda d: d["seq"]) == sorted(before, key=lambda d: d["seq"])
    assert [d["seq"] for d in after].count(demotion["id"]) == 1
    assert release.line_for(demotion).idempotency_key == after[-1]["idempotency_key"]


line = st.fixed_dictionaries({"agent": st.sampled_from(["a", "b"]), "version": st.sampled_from(["v1", "v2"]),
                              "seq": st.integers(0, 50), "stage": st.sampled_from(STAGES)})
junk = st.one_of(st.binary(max_size=40).filter(lambda b: b"\n" not in b),
                 st.just(b'{"agent": "a", "version": "v1", "seq": "x", "stage": "bounded"}'),
                 st.just(b'{"agent": "a", "version": "v1", "seq": 99, "stage": "godmode"}'),
                 st.just(b"[1, 2]"), st.just(b'{"agent": null}'))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.one_of(line.map(lambda d: json.dumps(d).encode()), junk), max_size=30),
       split=st.integers(0, 30))
def test_fleet_reads_the_highest_seq_per_version_and_skips_anything_else(tmp_path_factory, entries, split):
    path = Path(tmp_path_factory.mktemp("autonomy")) / "autonomy.jsonl"
    reader = AutonomyReader(path)
    assert reader.stage("a", "v1") is None  # no file yet: the contract's stage applies
    data = b"".join(e + b"\n" for e in entries)
    cut = min(split * 7, len(data))
    with open(path, "wb") as f:
        f.write(data[:cut])  # read once part way (maybe mid-line), then the rest is appended
    reader.poll()
    with open(path, "ab") as f:
        f.write(data[cut:])
    expected: dict[tuple[str, str], tuple[int, str]] = {}
    for e in entries:
        try:
            d = json.loads(e)
            key, seq, stage = (d["agent"], d["version"]), d["seq"], d["stage"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(seq, int) and stage in STAGES and seq >= expected.get(key, (-1, ""))[0]:
            expected[key] = (seq, stage)
    assert {k: v[1] for k, v in reader.poll().items()} == {k: v[1] for k, v in expected.items()}


def test_publishing_records_its_times_on_the_console_clock(rel):
    """When a change was published is the console's time (the one its decisions and audit use), not the host's."""
    deck = deck_for(rel)
    deck.release_tick()
    conn = connect(rel / "store.db")
    rows = conn.execute("SELECT published_at, publish_intent FROM stage_changes").fetchall()
    assert rows and all(r["published_at"] == deck.now() for r in rows)
    assert all(r["publish_intent"] in (None, deck.now()) for r in rows)


def test_the_fleet_knows_the_same_stages_the_console_publishes():
    assert STAGES == release.STAGES
