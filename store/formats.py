"""Which trace format a line is in, decided per line so a file may mix them.

Native agentdeck events are JSON objects with a ``kind``; OpenTelemetry's
file exporter writes one ``ExportTraceServiceRequest`` a line, an object
whose first key is ``resourceSpans``. Nothing else is guessed: a line that
is neither is validated as native and rejected with the reason.
"""

from __future__ import annotations

from agentdeck.store import events as ev


def is_otlp(raw: bytes) -> bool:
    # Any whitespace, and the proto field name as well as its JSON name.
    head = raw[:64].lstrip()
    if not head.startswith(b"{"):
        return False
    head = head[1:].lstrip()
    return head.startswith(b'"resourceSpans"') or head.startswith(b'"resource_spans"')


def decode(raw: bytes) -> list[tuple[object, str]]:
    """Decode one line into ``(event, payload_json)`` pairs; raises on a bad line.

    A Collector line of logs gives the model messages it carries
    (store/otlp_logs.py), attached to their spans' steps. A line of metrics
    or profiles (sent to the same file as traces), or of logs without model
    messages, gives no events: it is counted in ``otlp_files.skipped``.
    """
    if not raw.startswith(b'{"v":'):  # the common case first, cheaply
        if is_otlp(raw):
            from agentdeck.store import otlp

            return otlp.decode_line(raw)
        from agentdeck.store import otlp_files, otlp_logs

        if otlp_logs.is_logs(raw):
            items = otlp_logs.decode_line(raw)
            if not items and not items.rejected:  # application logs, no model messages
                otlp_files.count_skipped("logs")
            return items

        if signal := otlp_files.other_signal(raw):
            otlp_files.count_skipped(signal)
            return []
    event = ev.parse_event(raw)
    return [(event, raw.decode("utf-8"))]
