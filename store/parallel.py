"""Parsing a bulk import in other processes while this one writes.

Validating a line costs about as much as inserting its row, so a backlog
(``agentdeck ingest`` of existing files) is split into chunks of complete
lines that worker processes parse and turn into rows
(``store.ingest.prepare``); the ingesting process only commits them, in
file order, each with its offset, exactly as the serial path does. Worker
processes never touch the store.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
from concurrent.futures import Future, ProcessPoolExecutor


_BOOKS: dict = {}  # in a worker: contract books by token, unpickled once each


def parse_chunk(data: bytes, base: int, source_id: int, book_blob: bytes | None = None,
                book_token=None) -> tuple | None:
    """In a worker: the prepared rows, rejects and line count for one chunk of complete lines.

    None for a chunk holding OpenTelemetry spans; ``(None, [], lines)`` when
    preparing it failed (a line to isolate).
    """
    from agentdeck.store.ingest import decode_chunk, prepare

    gc.disable()  # many short-lived objects and no cycles: collection only costs here
    try:
        book = None
        if book_blob is not None:
            book = _BOOKS.get(book_token)
            if book is None:
                _BOOKS.clear()
                book = _BOOKS[book_token] = pickle.loads(book_blob)
        parsed, rejects, nlines = decode_chunk(data, base)
        if any(type(item) is not tuple for item in parsed):
            return None  # OpenTelemetry spans: the ingesting process reads this part itself
        try:
            return prepare(parsed, source_id, book, book_token), rejects, nlines
        except Exception:  # a line nothing expected: the ingesting process commits this chunk line by line
            return None, [], nlines
    finally:
        gc.enable()


def _warm() -> None:
    import agentdeck.store.tailer  # noqa: F401  (imports pydantic and builds the validators once)


def _exit_with_parent(parent: int) -> None:
    """In a worker: leave when the ingesting process is gone (even killed with SIGKILL).

    Ctrl-C reaches the whole process group; the ingesting process handles it
    (it stops between batches and closes the pool), so workers ignore it.
    """
    import signal
    import threading
    import time

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class ParsePool:
    """A few worker processes; ``submit`` a chunk, get a future of ``parse_chunk``'s result.

    Create it before starting threads (a progress bar, a watcher): on Linux
    the workers are forked at once, here, so they start in a few ms with the
    validators already built, and no other thread can hold a lock they
    inherit. Elsewhere they are spawned.
    """

    def __init__(self, workers: int) -> None:
        _warm()
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        self.workers = workers
        self._blob: tuple | None = None  # (book token, pickled book)
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                                         initializer=_exit_with_parent, initargs=(os.getpid(),))
        for future in [self._pool.submit(_warm) for _ in range(workers)]:
            future.result()

    def submit(self, data: bytes, base: int, source_id: int, book=None, book_token=None) -> Future:
        """Parse a chunk; with a contract ``book``, its whole tasks are checked there too.

        The book is pickled once per token (a few hundred us for a few
        contracts, against a few ms of parsing a chunk) and unpickled once
        per worker.
        """
        blob = None
        if book is not None:
            if self._blob is None or self._blob[0] != book_token:
                self._blob = (book_token, pickle.dumps(book))
            blob = self._blob[1]
        return self._pool.submit(parse_chunk, data, base, source_id, blob, book_token)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def default_workers() -> int:
    """Worker processes for a bulk import: one per core, at most four.

    Not one per core beyond the committing process: it spends much of its
    time inside SQLite and waiting, so on 2 cores two parse processes beside
    it ingest about 15% faster than one (bench/README.md).
    """
    return max(1, min(4, os.cpu_count() or 2))
