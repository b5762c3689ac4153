"""A store a newer agentdeck migrated must be refused, whatever it added."""
import sqlite3

import pytest

from agentdeck.store.db import connect
from agentdeck.store.txn import StoreTooNew


def test_a_store_with_a_newer_versions_new_area_is_refused(tmp_path):
    # A newer agentdeck that adds a whole migration area (as 'receiver', 'canary' ... were added) leaves
    # every area this version knows at its own count: only user_version and the unknown meta row say so.
    db = tmp_path / "newer.db"
    connect(db).close()
    raw = sqlite3.connect(db)
    (target,) = raw.execute("PRAGMA user_version").fetchone()
    raw.execute("CREATE TABLE future_things (id INTEGER PRIMARY KEY)")
    raw.execute("INSERT INTO meta (key, value) VALUES ('schema:future', '1')")
    raw.execute(f"PRAGMA user_version = {target + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(StoreTooNew):
        connect(db).close()
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA user_version").fetchone() == (target + 1,)  # not rewound
    raw.close()
