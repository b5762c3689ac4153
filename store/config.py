"""Where the store and the traces live, and the operator's settings.

Each setting comes from the command line, then an environment variable,
then a default under ``./var`` (so a fresh clone runs with no setup).
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

DEFAULT_HOME = Path("var")
ENV_DB = "AGENTDECK_DB"
ENV_TRACES = "AGENTDECK_TRACES"
ENV_USER = "AGENTDECK_USER"
ENV_ALLOW = "AGENTDECK_ALLOW_HOSTS"


def db_path(cli: str | None = None) -> Path:
    return Path(cli or os.environ.get(ENV_DB) or DEFAULT_HOME / "agentdeck.db")


def traces_path(cli: str | None = None) -> Path:
    return Path(cli or os.environ.get(ENV_TRACES) or DEFAULT_HOME / "traces")


def operator(cli: str | None = None) -> str:
    """Who is deciding: configured identity, else the OS user."""
    if cli:
        return cli
    if os.environ.get(ENV_USER):
        return os.environ[ENV_USER]
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def allowed_hosts(cli: list[str] | None = None) -> frozenset[str]:
    """Hosts the console may call (callbacks, compensations). Empty means none.

    ``host`` or ``host:port``, comma-separated in the environment variable.
    """
    items = list(cli or [])
    env = os.environ.get(ENV_ALLOW, "")
    items += [h.strip() for h in env.split(",") if h.strip()]
    return frozenset(h.lower() for h in items)
