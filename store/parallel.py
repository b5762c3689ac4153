"""Parsing a bulk import in other processes while this one writes.

Validating a line costs about as much as inserting its row, so a backlog
(``agentdeck ingest`` of existing files) is split into byte ranges that
worker processes read themselves, cut at line ends (``parse_range``), parse
and turn into rows (``store.ingest.prepare``); the ingesting process only
commits them, in file order, each with its offset, exactly as the serial
path does. Worker processes never touch the store.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from concurrent.futures import Future, ProcessPoolExecutor

from agentdeck.store import gc_pause

_BOOKS: dict = {}  # in a worker: contract books by token, unpickled once each


def parse_chunk(data: bytes, base: int, source_id: int, book_blob: bytes | None = None,
                book_token=None) -> tuple | None:
    """In a worker: the prepared rows, rejects, line count and span items (or None) for one chunk
    of complete lines.

    A chunk of OpenTelemetry spans comes back with its span items (without
    their events) for the ingesting process to ``claim``. None for a chunk
    the serial path must read (native events and spans mixed, pretty-printed
    documents, lines of other signals); ``(None, [], lines, None)`` when
    preparing it failed (a line to isolate).
    """
    with gc_pause.paused():  # many short-lived objects and no cycles: collection only costs here
        return _parse_chunk(data, base, source_id, book_blob, book_token)


def _parse_chunk(data: bytes, base: int, source_id: int, book_blob: bytes | None, book_token) -> tuple | None:
    from agentdeck.store import otlp_files
    from agentdeck.store.ingest import decode_chunk_native, prepare

    book = None
    if book_blob is not None:
        book = _BOOKS.get(book_token)
        if book is None:
            _BOOKS.clear()
            book = _BOOKS[book_token] = pickle.loads(book_blob)
    if _serial_only(data):
        return None
    skipped = sum(otlp_files.skipped.values())
    parsed, rejects, nlines, native = decode_chunk_native(data, base)
    if sum(otlp_files.skipped.values()) != skipped:
        return None  # lines of other signals: counted where the operator sees the count
    spans = [] if native else _light_spans(parsed)
    if spans is None:
        return None  # native events and spans mixed: the ingesting process reads this part itself
    try:
        # Tasks built from spans are checked against contracts where they are
        # claimed (claim may reframe them), so no book here for spans.
        return (prepare(parsed, source_id, None if spans else book, None if spans else book_token),
                rejects, nlines, spans or None)
    except Exception:  # a line nothing expected: the ingesting process commits this chunk line by line
        return None, [], nlines, None


# How far past its nominal end a range reads to finish its last line before
# giving the rest to the serial path (a line that long is rare; the serial
# path reads and rejects oversized lines without holding them whole).
RANGE_OVERRUN = 1024 * 1024
_READ_AHEAD = 16 * 1024


def parse_range(ref: tuple, lo: int, hi: int, size: int, source_id: int, book_blob: bytes | None = None,
                book_token=None) -> tuple | None:
    """In a worker: read the lines of one byte range of a file itself and ``parse_chunk`` them.

    The ingesting process hands out nominal ranges ``[lo, hi)`` (``lo`` the
    previous range's ``hi``) without reading the file; each range holds the
    lines that *start* in it, so two neighbours agree on their common edge
    from the file alone: a range starts just after the first newline at or
    past ``lo - 1`` (at ``lo`` itself for the first, ``ref[4]``) and ends
    just after the first newline at or past ``hi - 1``, never past the last
    newline before ``size``. Returns ``(start, end, parse_chunk's result)``,
    or None when this worker cannot read the range (the file is not the one
    named, a line runs on past ``RANGE_OVERRUN``, no complete line starts in
    it): the ingesting process then reads from there itself. It checks that
    each range starts where the one before ended.

    ``ref``: (path, the ingesting process's /proc fd path, st_dev, st_ino,
    the exact first offset or -1). Saves the ingesting process reading and
    piping every byte of a backlog to its workers.
    """
    fd = _open_ref(ref)
    if fd is None:
        return None
    try:
        first = ref[4]
        at = first if first >= 0 and first == lo else max(lo - 1, 0)
        want = min(hi + _READ_AHEAD, size) - at
        data = os.pread(fd, want, at)
        if first >= 0 and first == lo:
            cut = 0
        else:
            nl = data.find(b"\n")
            if nl < 0:
                return None
            cut = nl + 1
        if hi >= size:
            stop = data.rfind(b"\n") + 1
        else:
            nl = data.find(b"\n", hi - 1 - at)
            while nl < 0:  # the range's last line runs past what was read
                if at + len(data) >= size:  # it is the file's partial last line: left for later
                    nl = data.rfind(b"\n")
                    break
                if at + len(data) > hi + RANGE_OVERRUN:
                    return None
                more = os.pread(fd, min(RANGE_OVERRUN, size - at - len(data)), at + len(data))
                if not more:
                    return None
                scan = len(data)
                data += more
                nl = data.find(b"\n", scan)
            stop = nl + 1
        if stop <= cut:
            return None
        return at + cut, at + stop, parse_chunk(data[cut:stop], at + cut, source_id, book_blob, book_token)
    finally:
        os.close(fd)


def _open_ref(ref: tuple) -> int | None:
    """The file a range belongs to: through the ingesting process's own descriptor when /proc
    has it (the same inode even after a rename), else by name; None unless it is that inode."""
    for name in (ref[1], ref[0]):
        if not name:
            continue
        try:
            fd = os.open(name, os.O_RDONLY)
        except OSError:
            continue
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) == (ref[2], ref[3]):
            return fd
        os.close(fd)
    return None


def _serial_only(data: bytes) -> bool:
    """A chunk holding a pretty-printed OTLP document (``{`` alone on a line): only the serial path
    joins its lines (store/otlp_files.py)."""
    return data.startswith((b"{\n", b"{\r\n")) or b"\n{\n" in data or b"\n{\r\n" in data


def _light_spans(parsed: list) -> list | None:
    """The chunk's span items, for ``claim`` in the ingesting process, sent back without their
    validated events: ``[]`` for a chunk of native events only, None for a mix (read serially).

    Sending the events back would mean pickling a pydantic model each; the
    rows are in the prepared batch already, and an item ``claim`` rewrites
    is validated again from its payload there (store/ingest.py ``full_items``).
    """
    from agentdeck.store.otlp import SpanItem

    spans = _SpanColumns(item for item in parsed if type(item) is SpanItem)
    if spans and len(spans) != len(parsed):
        return None
    return spans


class _SpanColumns(list):
    """Span items that travel to the ingesting process as four lists (payloads, keys, metas,
    senders) and arrive there as the list of items without their events (``_light_items``).
    Pickled one by one, each item cost a ``__reduce__`` call and its tuple of arguments:
    twice the pickling time of the whole result (measured 2026-11-30, 12,000 spans:
    0.103 s against 0.045 s), in the parse processes that are the bottleneck on 2 cores."""

    def __reduce__(self):  # type: ignore[override]
        return (_light_items, ([item[1] for item in self], [item.key for item in self],
                               [item.meta for item in self], [item.source for item in self]))


def _light_items(payloads: list, keys: list, metas: list, sources: list) -> list:
    from agentdeck.store.otlp import SpanItem

    new = tuple.__new__
    out = []
    for payload, key, meta, source in zip(payloads, keys, metas, sources):
        item = new(SpanItem, (None, payload))
        item.key, item.meta, item.source = key, meta, source
        out.append(item)
    return out


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
    """A few worker processes; ``submit_range`` a byte range, get a future of ``parse_range``'s result.

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

    def submit_range(self, ref: tuple, lo: int, hi: int, size: int, source_id: int, book=None,
                     book_token=None) -> Future:
        """Parse the lines of bytes ``[lo, hi)`` of a file, read by the worker (``parse_range``)."""
        return self._pool.submit(parse_range, ref, lo, hi, size, source_id, self._book_blob(book, book_token),
                                 book_token)

    def _book_blob(self, book, book_token) -> bytes | None:
        if book is None:
            return None
        if self._blob is None or self._blob[0] != book_token:
            self._blob = (book_token, pickle.dumps(book))
        return self._blob[1]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def default_workers() -> int:
    """Worker processes for a bulk import: one per core, at most four.

    Not one per core beyond the committing process: it spends much of its
    time inside SQLite and waiting, so on 2 cores two parse processes beside
    it ingest about 15% faster than one (bench/README.md).
    """
    return max(1, min(4, os.cpu_count() or 2))
