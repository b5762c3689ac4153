"""The tailer, run on a background thread for the console.

It owns its own SQLite connection and posts ``Ingested`` messages; the UI
thread never touches trace files.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from textual.app import App

from agentdeck.console.messages import Ingested
from agentdeck.store.db import connect
from agentdeck.store.tailer import TailStats, Tailer


class IngestService:
    def __init__(self, app: App, db_path: Path, paths: list[Path]) -> None:
        self.app = app
        self.db_path = db_path
        self.paths = paths
        self.stop = threading.Event()
        self.tailer: Tailer | None = None

    def _on_batch(self, stats: TailStats) -> None:
        self.app.post_message(
            Ingested(stats.events, stats.rejects, set(stats.tasks), list(stats.escalations), time.time())
        )

    def run(self) -> None:
        """Thread body: follow the paths until stopped."""
        conn = connect(self.db_path)
        try:
            self.tailer = Tailer(conn, self.paths, on_batch=self._on_batch)
            self.tailer.run(self.stop)
        finally:
            conn.close()

    @property
    def problems(self) -> dict[str, str]:
        return dict(self.tailer.problems) if self.tailer else {}
