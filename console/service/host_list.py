"""The allowlist of hosts a console may call (``--allow-host``), as settings hold it.

One parsing rule for the console's list and the notification routes' own
additions: a comma-separated string or any iterable, trimmed, lower-cased
(host names are case-insensitive), empty entries dropped.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator


def host_set(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        value = value.split(",")
    return frozenset(str(h).strip().lower() for h in value or () if str(h).strip())


HostList = Annotated[frozenset[str], BeforeValidator(host_set)]
