"""The allowlist of hosts a console may call (``--allow-host``), as settings hold it.

One parsing rule for the console's list and the notification routes' own
additions: a comma-separated string or any iterable, trimmed, lower-cased
(host names are case-insensitive), empty entries dropped. Plain Python: the
console's ``Settings`` apply it before the first frame, without pydantic
(``console/notify/settings.py`` wraps it as a pydantic field type, ``HostList``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def host_set(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        value = value.split(",")
    if value is not None and not isinstance(value, Iterable):  # e.g. `allow_hosts = true` in the config file
        raise ValueError(f"must be host names (a list, or text with commas between them), not {value!r}")
    return frozenset(str(h).strip().lower() for h in value or () if str(h).strip())
